"""``mlcycle analyze``: error analysis of a model on slices of the project's data.

::

    mlcycle analyze [MODEL] [--split test|val|train] [--out DIR] [--baseline-model REF]
                    [--top N] [KEY=VALUE ...]

MODEL is a bundle folder or a registry reference (``models:/NAME@ALIAS``, ``@ALIAS``, a
version); the default is the registry's ``@champion``, or the newest version when there
is no champion yet (said in a note). The model's ONNX graph, the one that is served,
scores the chosen split of the configured dataset (the same deterministic split as
training); :func:`mlcycle.evaluate.analysis.analyze` scores every declared and automatic
slice and ranks them by potential gain. Writes ``reports/analysis/analysis.json``,
``analysis.html`` and the two plots (or into ``--out``) and prints the table, the
per-class figures, the notes and a YAML snippet of the slices worth declaring.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.exceptions import RegistryError, SchemaError

if TYPE_CHECKING:
    from mlcycle.bundle import Bundle
    from mlcycle.config.project import Project
    from mlcycle.config.structured import Config
    from mlcycle.data.dataset import Dataset
    from mlcycle.tracking import TrackingContext

__all__ = [
    "DESCRIPTION",
    "OPTIONS",
    "REPORT_DIR",
    "SPLITS",
    "add_arguments",
    "main",
    "run",
    "write_report",
]

DESCRIPTION = "error analysis: score slices of the data, rank them by gap x share"
#: Where the report goes, relative to the project root.
REPORT_DIR = Path("reports") / "analysis"
SPLITS = ("test", "val", "train")
#: The command's options (for bash completion).
OPTIONS = ("--baseline-model", "--help", "--out", "--split", "--top")
#: Automatic slices printed as a YAML snippet (and kept in ``suggested``).
SUGGESTED = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the command's arguments to ``p``."""
    p.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="bundle folder or registry reference (models:/NAME@ALIAS, @ALIAS, a version); "
        "default: @champion, else the newest version",
    )
    p.add_argument(
        "--split", choices=SPLITS, default="test", help="the split to analyse (default test)"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"folder for analysis.json, analysis.html and plots (default "
        f"{REPORT_DIR.as_posix()} in the project)",
    )
    p.add_argument(
        "--baseline-model",
        metavar="REF",
        help="an older model to compare with on every slice (bundle folder or registry "
        "reference); used before the human-level figures of evaluate.baselines",
    )
    p.add_argument(
        "--top", type=int, default=20, metavar="N", help="ranked slices printed (default 20)"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides (e.g. 'analyze.slices=[{name: big, where: {x: {min: 3}}}]')",
    )


def main(argv: Sequence[str], prog: str = "mlcycle analyze") -> None:
    """Run ``mlcycle analyze ARGS``: analyse, write the report, print the table.

    Raises
    ------
    MlcycleError
        A bad slice or setting (``ConfigError``), a model that does not exist
        (``RegistryError``), a model that does not fit the data (``SchemaError``).
    """
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    ns = p.parse_args(list(argv))
    if ns.model and "=" in ns.model and not Path(ns.model).is_dir():
        # `mlcycle analyze key=value`: argparse hands the first override to MODEL
        ns.overrides.insert(0, ns.model)
        ns.model = None
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project

    project = Project.discover()
    cfg = to_config(compose(ns.overrides, project=project))
    doc = run(cfg, project, ns.model, split=ns.split, baseline_model=ns.baseline_model)
    out = ns.out if ns.out is not None else project.path(REPORT_DIR)
    if not out.is_absolute():
        out = Path.cwd() / out
    paths = write_report(doc, out)
    _print(doc, top=max(ns.top, 0))
    for path in paths:
        print(f"wrote {path}")


@dataclass
class _Model:
    bundle: Bundle
    ref: str
    name: str
    version: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version or None,
            "path": str(self.bundle.path),
        }


def _is_registry_ref(ref: str) -> bool:
    text = ref.strip()
    return text.startswith(("models:/", "runs:/", "@")) or text.lstrip("vV").isdigit()


def _load(ref: str | None, cfg: Config, project: Project, ctx: list[TrackingContext]) -> _Model:
    """The bundle ``ref`` names (default ``@champion``, else the newest version)."""
    from mlcycle.bundle import Bundle

    if ref and not _is_registry_ref(ref):
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            raise RegistryError(
                f"{ref!r} is neither a bundle folder nor a model reference (models:/NAME@ALIAS,"
                " models:/NAME/VERSION, @ALIAS or a version number)"
            )
        bundle = Bundle.load(folder.resolve())
        return _Model(bundle, ref, bundle.model_name, "")
    from mlcycle.registry import list_versions, lookup_version, parse_model_ref, resolve_bundle
    from mlcycle.tracking import configure_tracking

    if not ctx:
        ctx.append(configure_tracking(cfg.tracking, project))
    tc = ctx[0]
    name = cfg.tracking.registered_model
    note = ""
    text = (ref or "").strip()
    if not text:
        text = "@champion"
        if lookup_version(tc, text, default_name=name) is None:
            versions = list_versions(tc, name, metrics=())
            if not versions:
                raise RegistryError(
                    f"no registered versions of {name!r} yet, so no @champion to analyse; "
                    "train one with `mlcycle train`, or pass a bundle folder"
                )
            text = versions[0].version
            note = (
                f"{name!r} has no @champion yet: analysing its newest version {text} "
                "(make a version champion with `mlcycle promote VERSION`)"
            )
    path = resolve_bundle(tc, text, name=name)
    bundle = Bundle.load(path)
    if text.startswith("runs:/"):
        return _Model(bundle, text, bundle.model_name, "", note)
    mref = parse_model_ref(text, default_name=name)
    return _Model(bundle, text, mref.name, lookup_version(tc, mref) or "", note)


def _check_fits(model: _Model, ds: Dataset, split: str, data_name: str) -> None:
    """Raise :class:`SchemaError` when the model cannot score this data."""
    what = f"model {model.ref}" + (f" (version {model.version})" if model.version else "")
    bundle = model.bundle
    have = set(ds.frame.columns)
    missing = [f for f in bundle.feature_names_used if f not in have]
    if missing:
        raise SchemaError(
            f"{what} reads feature(s) {missing} that the dataset '{data_name}' ({ds.path}) "
            f"does not have (it has {sorted(have)}); analyse a model trained on this data, "
            "or choose its dataset with data=NAME"
        )
    sig_kinds = {str(f["name"]): f.get("kind") for f in bundle.signature.get("features", [])}
    wrong = [
        f"{name}: model {sig_kinds[name]}, data {ds.schema.feature(name).kind}"
        for name in bundle.feature_names_used
        if sig_kinds.get(name) and sig_kinds[name] != ds.schema.feature(name).kind
    ]
    if wrong:
        raise SchemaError(
            f"{what} and the dataset '{data_name}' disagree on feature kinds "
            f"({'; '.join(wrong)}); the model was trained on other data"
        )
    unknown = sorted(set(ds.y.astype(str).tolist()) - set(bundle.classes))
    if unknown:
        raise SchemaError(
            f"{what} predicts the classes {bundle.classes}, but the {split} split of "
            f"'{data_name}' has the label(s) {unknown}; analyse a model trained on this data"
        )


def _proba(model: _Model, ds: Dataset) -> Any:
    import numpy as np

    return np.asarray(
        model.bundle.predict_proba(model.bundle.inputs_from_columns(ds.columns())),
        dtype=np.float64,
    )


def run(
    cfg: Config,
    project: Project,
    model_ref: str | None,
    *,
    split: str = "test",
    baseline_model: str | None = None,
) -> dict[str, Any]:
    """Analyse a model on one split of the configured dataset.

    Parameters
    ----------
    cfg
        The composed config: ``data``, ``evaluate`` (primary metric, baselines),
        ``analyze`` (slices and automatic slices), ``tracking``.
    project
        Where the data and the registry are.
    model_ref
        Bundle folder or registry reference; ``None``: ``@champion``, else the newest
        version.
    split
        ``test``, ``val`` or ``train``.
    baseline_model
        An older model (bundle folder or reference) scored on the same rows; its score
        is each slice's baseline unless the slice has its own.

    Returns
    -------
    dict
        The ``analysis.json`` document (see docs/analyze.md).
    """
    from mlcycle.evaluate.analysis import FORMAT_VERSION, Reference, analyze, reference_from_config
    from mlcycle.evaluate.auto_slices import candidate_slices
    from mlcycle.evaluate.metrics import classification_metrics, numeric_metric_keys
    from mlcycle.evaluate.slices import parse_slices
    from mlcycle.workflow import prepare

    if split not in SPLITS:
        raise SchemaError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    settings = cfg.analyze
    declared = parse_slices(list(settings.slices))
    splits = prepare(cfg, project)
    ds = dict(splits.items())[split]
    ctx: list[TrackingContext] = []
    model = _load(model_ref, cfg, project, ctx)
    _check_fits(model, ds, split, cfg.data.name)
    proba = _proba(model, ds)

    metric = str(cfg.evaluate.primary_metric)
    keys = numeric_metric_keys(classification_metrics(ds.y, proba, model.bundle.classes))
    value, value_name, config_model = reference_from_config(
        list(cfg.evaluate.baselines), metric, keys
    )
    notes: list[str] = []
    if model.note:
        notes.append(model.note)
    if split == "train":
        notes.append(
            "the model was fitted on the training split: its scores there are optimistic; "
            "use them to spot slices it cannot even fit (underfitting), not to judge it"
        )
    reference = Reference(value=value, value_name=value_name)
    base_info: dict[str, Any] | None = None
    base_ref = baseline_model or config_model
    if base_ref:
        base: _Model | None = None
        try:
            base = _load(base_ref, cfg, project, ctx)
            _check_fits(base, ds, split, cfg.data.name)
        except (RegistryError, SchemaError) as exc:
            if baseline_model:
                raise
            base = None  # a configured baseline model that is absent or unfit is skipped
            notes.append(f"baseline model {base_ref} (evaluate.baselines) skipped: {exc}")
        if base is not None and base.bundle.path == model.bundle.path:
            notes.append(f"baseline model {base_ref} is the analysed model itself; not compared")
        elif base is not None:
            reference = Reference(
                value=value,
                value_name=value_name,
                model_proba=_proba(base, ds),
                model_classes=tuple(base.bundle.classes),
                model_name=base_ref,
                prefer_model=bool(baseline_model),
            )
            base_info = base.to_dict()

    candidates = (
        candidate_slices(ds.schema, splits.train.frame, ds.frame, bins=int(settings.auto_bins))
        if settings.auto
        else []
    )
    result = analyze(
        ds.y,
        proba,
        model.bundle.classes,
        ds.frame,
        ds.schema,
        metric=metric,
        slices=declared,
        candidates=candidates,
        per_feature=int(settings.auto_per_feature),
        min_rows=int(settings.min_rows),
        reference=reference,
    )
    by_name = {c.name: c for c in candidates}
    suggested = [
        by_name[s["name"]].to_config()
        for s in result["slices"]
        if s["source"] == "auto" and s["status"] == "ranked" and s["potential_gain"] > 0
    ][:SUGGESTED]
    data = {"name": cfg.data.name, "path": ds.version.path, "md5": ds.version.md5}
    return {
        "version": FORMAT_VERSION,
        "model": model.to_dict(),
        "baseline_model": base_info,
        "data": data,
        "split": split,
        **result,
        "notes": [*notes, *result["notes"]],
        "suggested": suggested,
        "settings": {
            "auto": bool(settings.auto),
            "auto_bins": int(settings.auto_bins),
            "auto_per_feature": int(settings.auto_per_feature),
            "min_rows": int(settings.min_rows),
        },
    }


def write_report(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write ``analysis.json``, ``analysis.html`` and the plots into ``out``.

    Returns
    -------
    list of Path
        The JSON and HTML files.
    """
    from mlcycle.evaluate.analysis_report import render_html, save_plots

    out.mkdir(parents=True, exist_ok=True)
    plots = save_plots(doc, out)
    doc["plots"] = {k: p.name for k, p in plots.items()}
    json_path = out / "analysis.json"
    json_path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    html_path = out / "analysis.html"
    html_path.write_text(render_html(doc, plots))
    return [json_path, html_path]


def _print(doc: dict[str, Any], *, top: int) -> None:
    from rich.console import Console

    from mlcycle.evaluate.analysis_report import per_class_table, render_table, slice_snippet

    for w in doc["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=160)  # a log or a pipe: no need to wrap at 80 columns
    console.print(render_table(doc, top=top))
    console.print(per_class_table(doc))
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    snippet = slice_snippet(doc, top=SUGGESTED)
    if snippet:
        print("\nslices worth declaring (paste into conf/config.yaml):\n")
        print(snippet, end="")
