"""``mlcycle augment compare``: the same training with and without augmentation.

::

    mlcycle augment compare [--out DIR] [--json] [KEY=VALUE ...]

Trains the composed config twice on the same split and seed, once with
``train.augment.enabled=false`` and once with the ``train.augment`` settings switched on
(whatever ``enabled`` says), registers nothing and logs nothing to MLflow, and evaluates
both on the holdout (the test split) and on the holdout rows of each targeted slice:
the primary metric, accuracy and the recall of each class, with the difference
(augmented - plain), and how many rows the augmented model fixed and broke. Writes
``reports/augment/compare.json`` and ``compare.md`` (or into ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    from mlcycle.config.project import Project
    from mlcycle.config.structured import Config
    from mlcycle.data.dataset import Dataset
    from mlcycle.train.fit import TrainedModel

__all__ = ["ACTIONS", "DESCRIPTION", "compare", "main", "render_markdown"]

DESCRIPTION = "measure augmentation: train with and without it, compare on holdout and slices"
ACTIONS = ("compare",)
#: Metrics where lower is better (a negative delta is a gain).
_LOSSES = frozenset({"log_loss", "brier", "ece"})
#: Where the report goes, relative to the project root.
REPORT_DIR = Path("reports") / "augment"


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    p.add_argument("action", choices=ACTIONS, help="compare: with vs without augmentation")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"folder for compare.json and compare.md (default {REPORT_DIR.as_posix()} in "
        "the project)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, as for train (e.g. train.augment.noise.snr_db=20)",
    )
    return p


def main(argv: Sequence[str], prog: str = "mlcycle augment") -> None:
    """Run ``mlcycle augment ARGS``.

    Raises
    ------
    MlcycleError
        A bad setting (named with its allowed range), or data that cannot be loaded.
    """
    ns = _parser(prog).parse_args(list(argv))
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project

    project = Project.discover()
    cfg = to_config(compose(ns.overrides, project=project))
    result = compare(cfg, project)
    out = ns.out if ns.out is not None else project.path(REPORT_DIR)
    if not out.is_absolute():
        out = Path.cwd() / out
    paths = write_report(result, out)
    if ns.json:
        print(json.dumps(result, indent=2))
        return
    _print(result)
    for path in paths:
        print(f"wrote {path}")


def _arm(cfg: Config, enabled: bool) -> Any:
    augment = dataclasses.replace(cfg.train.augment, enabled=enabled)
    return dataclasses.replace(cfg.train, augment=augment)


def _scores(
    trained: TrainedModel, ds: Dataset, cfg: Config
) -> tuple[dict[str, Any], np.ndarray[Any, Any]]:
    from mlcycle.evaluate.report import evaluate_predictions

    proba = trained.predict_proba(ds)
    pred = np.asarray(trained.classes)[proba.argmax(axis=1)]
    m = evaluate_predictions(ds.y, proba, trained.classes, cfg.evaluate)
    primary = cfg.evaluate.primary_metric
    scores: dict[str, Any] = {primary: m.get(primary), "accuracy": m["accuracy"]}
    for c in trained.classes:
        scores[f"recall[{c}]"] = m["per_class"][c]["recall"]
    return scores, pred


def compare(cfg: Config, project: Project) -> dict[str, Any]:
    """Train with and without ``train.augment`` and compare them on the holdout and slices.

    Parameters
    ----------
    cfg
        The composed config; ``train.augment`` holds the augmentation to measure.
    project
        Where the data is.

    Returns
    -------
    dict
        ``data``, ``model``, ``seed``, ``primary_metric``, ``augmentation`` (the record of
        what was added), ``sets``: for ``holdout`` and each ``slice:<name>``, ``rows``,
        ``where``, ``without`` / ``with`` (metric -> value), ``delta`` (with - without),
        ``fixed`` and ``broken`` (rows the augmented model gets right that the plain one
        got wrong, and the reverse).

    Raises
    ------
    ConfigError
        No augmentation is set, or a bad ``train.augment`` value.
    """
    from mlcycle.data.augment.config import (
        check_augment_config,
        has_tabular_work,
        image_transforms_set,
        targets,
    )
    from mlcycle.evaluate.slices import slice_mask
    from mlcycle.train.fit import fit_model
    from mlcycle.workflow import prepare

    aug = cfg.train.augment
    check_augment_config(aug)
    if not has_tabular_work(aug) and not image_transforms_set(aug.image):
        raise ConfigError(
            "nothing to compare: set an augmentation, e.g. train.augment.noise.snr_db=20, "
            "train.augment.rebalance.method=smote, train.augment.factor=2 or, for images, "
            "train.augment.image.rotation_deg=10 (train.augment.enabled is switched on for "
            "the second run)"
        )
    slices = targets(aug)
    splits = prepare(cfg, project)
    without = fit_model(splits.train, cfg.model, _arm(cfg, False))
    with_ = fit_model(splits.train, cfg.model, _arm(cfg, True))
    test = splits.test
    sets: dict[str, tuple[str, np.ndarray[Any, Any]]] = {
        "holdout": ("all rows of the test split", np.arange(len(test)))
    }
    for sl in slices:
        sets[f"slice:{sl.name}"] = (
            sl.describe(),
            np.flatnonzero(slice_mask(test.frame, sl, test.schema)),
        )
    report: dict[str, Any] = {}
    for name, (where, index) in sets.items():
        entry: dict[str, Any] = {"where": where, "rows": len(index)}
        if not len(index):
            entry["note"] = "no holdout row is in this slice: nothing to measure"
            report[name] = entry
            continue
        ds = test.subset(index)
        off, pred_off = _scores(without, ds, cfg)
        on, pred_on = _scores(with_, ds, cfg)
        truth = np.asarray(ds.y).astype(str)
        entry |= {
            "without": off,
            "with": on,
            "delta": {
                k: (None if off[k] is None or on[k] is None else on[k] - off[k]) for k in off
            },
            "fixed": int(np.sum((pred_off != truth) & (pred_on == truth))),
            "broken": int(np.sum((pred_off == truth) & (pred_on != truth))),
        }
        report[name] = entry
    return {
        "data": cfg.data.name,
        "model": str(cfg.model.name),
        "seed": int(cfg.train.seed),
        "primary_metric": cfg.evaluate.primary_metric,
        "train_rows": len(splits.train),
        "augmentation": with_.augmentation,
        "sets": report,
    }


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def render_markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown document (one table row per set and metric).

    Examples
    --------
    >>> doc = render_markdown({"data": "d", "model": "logreg", "seed": 1,
    ...     "primary_metric": "f1_macro", "train_rows": 10, "augmentation": None,
    ...     "sets": {"holdout": {"where": "all", "rows": 2, "without": {"accuracy": 0.5},
    ...              "with": {"accuracy": 1.0}, "delta": {"accuracy": 0.5},
    ...              "fixed": 1, "broken": 0}}})
    >>> "| holdout | 2 | accuracy | 0.5000 | 1.0000 | +0.5000 |" in doc
    True
    """
    aug = result.get("augmentation") or {}
    steps = ", ".join(f"{s['method']} (+{s['added']} rows)" for s in aug.get("steps", [])) or "none"
    lines = [
        f"# Augmentation: with vs without ({result['data']}, {result['model']}, "
        f"seed {result['seed']})",
        "",
        f"Augmentation: {steps}; training rows {aug.get('rows_before', result['train_rows'])}"
        f" -> {aug.get('rows_after', result['train_rows'])}.",
        "",
        "| set | rows | metric | without | with | delta |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for name, entry in result["sets"].items():
        if "without" not in entry:
            notes.append(f"- {name}: {entry.get('note', '')}")
            continue
        for metric, off in entry["without"].items():
            lines.append(
                f"| {name} | {entry['rows']} | {metric} | {_fmt(off)} | "
                f"{_fmt(entry['with'][metric])} | {_fmt(entry['delta'][metric], True)} |"
            )
        notes.append(
            f"- {name} ({entry['where']}): the augmented model fixed {entry['fixed']} and "
            f"broke {entry['broken']} of {entry['rows']} rows"
        )
    return "\n".join([*lines, "", *notes, ""])


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """Write ``compare.json`` and ``compare.md`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "compare.json"
    json_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    md_path = out / "compare.md"
    md_path.write_text(render_markdown(result))
    return [json_path, md_path]


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    aug = result.get("augmentation") or {}
    table = Table(
        title=escape(
            f"augmentation: with vs without ({result['data']}, {result['model']}; "
            f"training rows {aug.get('rows_before')} -> {aug.get('rows_after')})"
        )
    )
    for col in ("set", "rows", "metric", "without", "with", "delta"):
        table.add_column(col, justify="left" if col in ("set", "metric") else "right")
    for name, entry in result["sets"].items():
        if "without" not in entry:
            table.add_row(escape(name), "0", "-", "n/a", "n/a", "n/a")
            continue
        for i, (metric, off) in enumerate(entry["without"].items()):
            delta = entry["delta"][metric]
            better = None if delta is None or delta == 0 else (delta < 0) == (metric in _LOSSES)
            style = "" if better is None else ("green" if better else "red")
            table.add_row(
                escape(name) if i == 0 else "",
                str(entry["rows"]) if i == 0 else "",
                escape(metric),
                _fmt(off),
                _fmt(entry["with"][metric]),
                f"[{style}]{_fmt(delta, True)}[/]" if style else _fmt(delta, True),
            )
    Console().print(table)
    for name, entry in result["sets"].items():
        if "fixed" in entry:
            print(f"{name}: fixed {entry['fixed']}, broke {entry['broken']} of {entry['rows']}")
