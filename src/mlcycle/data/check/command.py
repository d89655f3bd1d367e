"""``mlcycle data check``: the good-data report of the project's dataset.

Loads the configured dataset (``data=NAME``) as training does, runs the four sections
(label issues and duplicates, coverage, the learning curve, timeliness), writes
``report.json``, ``report.html`` and ``plots/`` into the output folder (default
``reports/data_check/`` in the project) and prints a short summary.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.data.check.settings import check_settings
from mlcycle.exceptions import MlcycleError

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.config.project import Project
    from mlcycle.config.structured import Config
    from mlcycle.data.dataset import Dataset
    from mlcycle.data.schema import Schema

__all__ = ["DEFAULT_OUT", "CheckResult", "run_check", "summary_lines"]

#: The output folder, relative to the project root, when ``--out`` is not given.
DEFAULT_OUT = Path("reports") / "data_check"


@dataclass(frozen=True)
class CheckResult:
    """What one check wrote."""

    doc: dict[str, Any]
    json_path: Path
    html_path: Path


def _file_rows(data: Dataset, raw: pd.DataFrame, label: str) -> tuple[Any, pd.DataFrame]:
    """Each dataset row's position in the data file, and the raw labelled rows.

    :func:`~mlcycle.data.load.load_dataset` drops rows without a label; the report
    numbers rows as they are in the file.
    """
    from mlcycle.data._values import missing_mask

    labelled = ~missing_mask(raw[label])
    rows = np.flatnonzero(labelled)
    if len(rows) != len(data):  # the file changed between the two reads
        rows = np.arange(len(data))
    return rows, raw.loc[labelled].reset_index(drop=True)


def _without(schema: Schema, column: str | None) -> Schema:
    """``schema`` without the feature ``column`` (itself when it has no such feature)."""
    if column is None or column not in schema.feature_names:
        return schema
    kept = [f for f in schema.features if f.name != column]
    return dataclasses.replace(schema, features=kept)


def _timeliness(
    cfg: Config, project: Project, data: Dataset, raw: pd.DataFrame, store: str | None, now: float
) -> dict[str, Any]:
    from mlcycle.data.check.timeliness import (
        champion_training,
        data_file_age,
        feedback_since,
        store_location,
        time_column_age,
    )

    out: dict[str, Any] = {
        "data_file": data_file_age(data.path, now),
        "time_column": None,
    }
    if cfg.data.time_column:
        out["time_column"] = time_column_age(raw, cfg.data.time_column, now)
        out["time_column"]["is_feature"] = cfg.data.time_column in data.schema.feature_names
    location, exists = store_location(cfg, project, store)
    feedback: dict[str, Any] = {"store": location, "min_new_rows": cfg.retrain.min_new_rows}
    if not exists:
        feedback.update(
            available=False,
            reason=f"there is no monitoring store at {location} (no model served with "
            "monitoring yet; --store reads another)",
        )
    else:
        champion = champion_training(cfg, project)
        since = champion.pop("trained_at_seconds", None)
        try:
            counts = feedback_since(location, since, str(cfg.tracking.registered_model))
        except MlcycleError as exc:  # e.g. a database that is down: reported, not raised
            feedback.update(available=False, reason=f"the monitoring store failed: {exc}")
        else:
            feedback.update(available=True, champion=champion, since=champion.get("trained_at"))
            feedback.update(counts)
    out["feedback"] = feedback
    return out


def run_check(
    *,
    out: Path | None = None,
    folds: int | None = None,
    max_issues: int | None = None,
    store: str | None = None,
    overrides: list[str] | None = None,
    project: Project | None = None,
) -> CheckResult:
    """Check the configured dataset and write the report.

    Parameters
    ----------
    out
        The report folder (relative to the project root); default ``reports/data_check``.
    folds
        Overrides ``data.check.folds``.
    max_issues
        Overrides ``data.check.max_issues``.
    store
        The monitoring store (a SQLite file or SQLAlchemy URL); default
        ``serve.monitor.store``, else ``monitor.db`` in the project.
    overrides
        Config overrides (``data=NAME``, ``model=gbdt``, ``data.check.rare_count=5``, ...).
    project
        The project; discovered from the working folder when omitted.

    Returns
    -------
    CheckResult
        The document and the paths written.

    Raises
    ------
    ConfigError
        A ``data.check`` value out of range, or a metric the learning curve cannot score.
    DataError
        The data cannot be loaded, or a class has fewer rows than folds.
    """
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project
    from mlcycle.data.check import coverage
    from mlcycle.data.check.cv import check_class_sizes
    from mlcycle.data.check.duplicates import find_duplicates
    from mlcycle.data.check.html import render_html
    from mlcycle.data.check.label_issues import find_label_issues, out_of_sample_probabilities
    from mlcycle.data.check.learning_curve import learning_curve
    from mlcycle.data.check.plots import save_plots
    from mlcycle.data.check.report import build_report, write_json, write_text
    from mlcycle.data.check.scoring import curve_metric
    from mlcycle.data.check.timeliness import iso
    from mlcycle.data.load import load_dataset, read_table

    project = project or Project.discover()
    cfg = to_config(compose(overrides, project=project))
    settings = cfg.data.check
    if folds is not None:
        settings.folds = folds
    if max_issues is not None:
        settings.max_issues = max_issues
    check_settings(settings)
    seed = settings.seed if settings.seed is not None else cfg.train.seed
    now = time.time()

    data = load_dataset(cfg.data, project)
    n_classes = len(set(data.y.tolist()))
    metric = curve_metric(
        settings.metric or cfg.evaluate.primary_metric,
        n_classes,
        setting="data.check.metric" if settings.metric else "evaluate.primary_metric",
    )
    check_class_sizes(data.y, settings.folds)
    raw = read_table(data.path, cfg.data.format)
    raw = raw.set_axis([str(c) for c in raw.columns], axis=1)
    rows, raw_labelled = _file_rows(data, raw, cfg.data.label)
    timeliness = _timeliness(cfg, project, data, raw_labelled, store, now)

    timings: dict[str, float] = {}
    started = time.perf_counter()
    notes: list[str] = []
    probs, classes = out_of_sample_probabilities(
        data, cfg.model, cfg.train.preprocess, folds=settings.folds, seed=seed, notes=notes
    )
    issues = find_label_issues(data.y, probs, classes, rows=rows, max_issues=settings.max_issues)
    issues.notes = notes + issues.notes
    timings["label_issues"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    schema = data.schema
    # A time column the schema also lists is a feature, but every row's time differs:
    # rows are compared, and categories and slices counted, without it.
    compared = _without(schema, cfg.data.time_column)
    duplicates = find_duplicates(
        data.frame[compared.feature_names], data.y, rows=rows, max_listed=settings.max_issues
    )
    cov: dict[str, Any] = {
        "classes": coverage.class_balance(data.y, rare_class_share=settings.rare_class_share),
        "rare_categories": coverage.rare_categories(
            data.frame, compared, rare_count=settings.rare_count
        ),
        "small_slices": coverage.small_slices(
            data.frame, compared, min_rows=settings.min_slice_rows, bins=settings.slice_bins
        ),
        "features": coverage.feature_health(
            data.frame, schema, max_missing_rate=settings.max_missing_rate
        ),
    }
    timings["duplicates_and_coverage"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    curve = learning_curve(
        data,
        cfg.model,
        cfg.train.preprocess,
        metric,
        folds=settings.folds,
        seed=seed,
        fractions=[float(f) for f in settings.curve_sizes],
        min_gain=settings.min_gain,
    )
    timings["learning_curve"] = round(time.perf_counter() - started, 3)

    folder = project.path(out or DEFAULT_OUT)
    flagged = [i.quality for i in issues.issues]
    written = save_plots(
        folder / "plots",
        counts=cov["classes"]["counts"],
        rare_classes=cov["classes"]["rare"],
        quality=issues.quality,
        issue_threshold=max(flagged) if flagged else None,
        features=cov["features"],
        curve=curve,
    )
    version = data.version
    doc = build_report(
        created_at=iso(now),
        dataset={
            "name": cfg.data.name,
            "path": version.path,
            "md5": version.md5,
            "tracked": version.tracked,
            "rows": len(data),
            "rows_in_file": len(raw),
            "features": schema.feature_names,
            "classes": classes,
        },
        settings={
            **dataclasses.asdict(settings),
            "seed": seed,
            "metric": metric.name,
            "model": str(cfg.model.name),
        },
        sections={
            "label_issues": issues.to_dict(),
            "duplicates": duplicates.to_dict(),
            "coverage": cov,
            "size": curve.to_dict(),
            "timeliness": timeliness,
        },
        plots={name: path.relative_to(folder).as_posix() for name, path in written.items()},
    )
    doc["timings_s"] = timings
    json_path = write_json(doc, folder / "report.json")
    html_path = write_text(render_html(doc, folder), folder / "report.html")
    return CheckResult(doc=doc, json_path=json_path, html_path=html_path)


def summary_lines(result: CheckResult, root: Path | None = None) -> list[str]:
    """The short summary ``mlcycle data check`` prints (paths relative to ``root``)."""

    def shown(path: Path) -> str:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix() if root else str(path)
        except ValueError:
            return str(path)

    doc = result.doc
    ds, li, dup, size = doc["dataset"], doc["label_issues"], doc["duplicates"], doc["size"]
    found = doc["findings"]
    by_severity = {s: sum(f["severity"] == s for f in found) for s in ("high", "warning", "info")}
    fb = doc["timeliness"]["feedback"]
    if not fb["available"] and str(fb["reason"]).startswith("there is no monitoring store"):
        feedback = f"not counted: no monitoring store at {shown(Path(fb['store']))}"
    elif not fb["available"]:
        feedback = f"not counted: {fb['reason']}"
    elif fb["champion"].get("version"):
        feedback = (
            f"{fb['labels']} label(s) since the champion (version "
            f"{fb['champion']['version']}) was trained"
        )
    else:
        feedback = f"{fb['labels']} label(s) in the store; no champion to compare with"
    lines = [
        f"data check of {ds['name']}: {ds['rows']} rows, {len(ds['features'])} features, "
        f"{len(ds['classes'])} classes (md5 {ds['md5'][:12]})",
        f"  label issues:   {li['found']} likely mislabelled row(s) ({100 * li['share']:.1f}%)",
        f"  duplicates:     {dup['conflicting_groups']} group(s) with conflicting labels, "
        f"{dup['exact_extra_rows']} exact duplicate row(s)",
        f"  findings:       {len(found)} ({by_severity['high']} high, {by_severity['warning']} "
        f"warning, {by_severity['info']} info)",
        f"  learning curve: {size['verdict']} ({size['metric']} +{size['gain_if_doubled']:.3f} "
        f"if the data doubled; must beat {size['threshold']:.3f})",
        f"  feedback:       {feedback}",
    ]
    for f in found[:3]:
        lines.append(f"  {f['rank']}. [{f['severity']}] {f['text']}")
    lines.append(f"report: {shown(result.html_path)}")
    lines.append(f"        {shown(result.json_path)}")
    return lines
