"""``mlcycle automation calibrate``: the ``partial`` mode's threshold for a target precision.

The model (the registry's champion by default) predicts the validation split of the
project's dataset, the rows it was not trained on;
:func:`~mlcycle.review.calibrate.choose_threshold` then finds the lowest confidence
threshold whose automatically answered rows reach the target precision. The command
prints the threshold, the expected automation rate, the precision with its lower
confidence bound, and the line that sets it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.exceptions import BundleError, ConfigError, DataError

if TYPE_CHECKING:
    from rich.console import Console

    from mlcycle.config.project import Project
    from mlcycle.config.structured import Config
    from mlcycle.data.dataset import Dataset
    from mlcycle.review.calibrate import Calibration

__all__ = ["build_parser", "calibrate_command"]

_FEW_ROWS = 100  # below this many automated rows the output says the estimate is weak


def _target(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give e.g. 0.99") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]; give e.g. 0.99")
    return value


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give e.g. 0.95") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1); give e.g. 0.95")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``mlcycle automation calibrate``.

    Examples
    --------
    >>> ns = build_parser().parse_args(["--target-precision", "0.99", "data.name=x"])
    >>> ns.target_precision, ns.model, ns.split, ns.confidence_bound, ns.overrides
    (0.99, 'champion', 'val', False, ['data.name=x'])
    """
    p = argparse.ArgumentParser(
        prog="mlcycle automation calibrate",
        description="Pick serve.automation.threshold for the partial automation mode: the "
        "lowest confidence at which the automatically answered rows of the validation split "
        "reach a target precision.",
    )
    p.add_argument(
        "--target-precision",
        type=_target,
        required=True,
        metavar="P",
        help="share of automatically answered rows that must be right, in (0, 1], e.g. 0.99",
    )
    p.add_argument(
        "--model",
        default="champion",
        metavar="REF",
        help="registry alias (champion, challenger), version, models:/NAME@ALIAS, or a "
        "bundle folder; default: champion",
    )
    p.add_argument(
        "--split",
        choices=("val", "test"),
        default="val",
        help="the held-out rows to calibrate on (default val; test is the final holdout)",
    )
    p.add_argument(
        "--confidence-bound",
        action="store_true",
        help="choose on the one-sided lower confidence bound of the precision instead of "
        "its point estimate (safer with few rows)",
    )
    p.add_argument(
        "--confidence-level",
        type=_level,
        default=0.95,
        metavar="L",
        help="confidence level of the lower bound (default 0.95)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, as for the Hydra commands (e.g. data=mydata)",
    )
    return p


@dataclass
class _Scored:
    """The model's probabilities on one split, and where they came from."""

    ref: str
    bundle: Path
    classes: list[str]
    proba: Any
    data: Dataset
    warnings: list[str]


def _bundle_ref(text: str) -> str:
    """``champion`` and other bare names are registry aliases; paths stay paths."""
    text = text.strip()
    if not text:
        raise ConfigError("--model is empty; give an alias (champion), a version or a folder")
    looks_like_path = "/" in text or "\\" in text or text.startswith((".", "~"))
    if text.startswith(("models:/", "runs:/", "@")) or looks_like_path:
        return text
    if Path(text).is_dir() or text.lstrip("vV").isdigit():
        return text
    return f"@{text}"


def _resolve(cfg: Config, project: Project, ref: str) -> Path:
    from mlcycle.registry import resolve_bundle
    from mlcycle.tracking import configure_tracking

    text = _bundle_ref(ref)
    if not text.startswith(("models:/", "runs:/", "@")) and not text.lstrip("vV").isdigit():
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise BundleError(
                f"--model {ref}: bundle folder {folder} does not exist; give a bundle folder "
                "or a registry reference (champion, 3, models:/NAME@ALIAS)"
            )
        return folder.resolve()
    ctx = configure_tracking(cfg.tracking, project)
    return resolve_bundle(ctx, text, name=cfg.tracking.registered_model)


def _lineage_warnings(bundle: Any, data: Dataset, cfg: Config) -> list[str]:
    """Why the split may not be unseen by the model (other data or other split)."""
    try:
        lineage = bundle.lineage
    except BundleError:
        return ["the bundle has no lineage.json: cannot check that these rows are unseen"]
    out: list[str] = []
    trained_md5 = (lineage.get("data") or {}).get("md5")
    if trained_md5 and trained_md5 != data.version.md5:
        out.append(
            f"the model was trained on data md5 {trained_md5[:12]}, not on the current "
            f"{data.version.path} (md5 {data.version.md5[:12]}): some of these rows may have "
            "been training rows, which makes the precision optimistic"
        )
    split = ((lineage.get("config") or {}).get("data") or {}).get("split")
    if isinstance(split, dict):
        now = {k: getattr(cfg.data.split, k) for k in split if hasattr(cfg.data.split, k)}
        if any(now[k] != split[k] for k in now):
            out.append(
                f"the model was trained with data.split {split}, not {now}: the held-out "
                "rows differ, so some of these rows may have been training rows"
            )
    return out


def _score(ns: argparse.Namespace, cfg: Config, project: Project) -> _Scored:
    import numpy as np

    from mlcycle.bundle import Bundle
    from mlcycle.workflow import prepare

    path = _resolve(cfg, project, ns.model)
    bundle = Bundle.load(path)
    splits = prepare(cfg, project)
    data: Dataset = getattr(splits, ns.split)
    if sorted(bundle.classes) != sorted(data.schema.classes):
        raise DataError(
            f"the model {ns.model} predicts the classes {bundle.classes} but the data "
            f"{data.version.path} has {data.schema.classes}; choose the dataset the model "
            "was trained on (data=NAME) or another model (--model)"
        )
    _, proba = bundle.predict(bundle.inputs_from_columns(data.columns()))
    return _Scored(
        ref=ns.model,
        bundle=path,
        classes=bundle.classes,
        proba=np.asarray(proba, dtype=np.float64),
        data=data,
        warnings=_lineage_warnings(bundle, data, cfg),
    )


def _fmt(value: float, kind: str = "f") -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1%}" if kind == "%" else f"{value:.4f}"


def _set_lines(threshold: float, url: str) -> list[str]:
    return [
        f"serve.automation.threshold={threshold:g} (with serve.automation.mode=partial) in "
        "conf/config.yaml or as an override of mlcycle serve",
        f"mlcycle automation set --mode partial --threshold {threshold:g} --url {url}",
    ]


def _print(
    console: Console, ns: argparse.Namespace, scored: _Scored, result: Calibration, url: str
) -> None:
    from rich.table import Table

    from mlcycle.review.calibrate import TABLE_THRESHOLDS, curve_at

    level = f"{ns.confidence_level:.0%}"
    p = result.point
    table = Table(title=f"partial automation at precision >= {result.target:g}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("model", f"{scored.ref} ({scored.bundle})")
    table.add_row("calibrated on", f"{ns.split} split: {p.rows} rows of {scored.data.version.path}")
    table.add_row("chosen on", f"{level} lower bound" if result.on_bound else "precision")
    table.add_row("threshold", f"{result.threshold:g}")
    table.add_row("automation rate", f"{_fmt(result.automation_rate, '%')} ({p.automated} rows)")
    table.add_row("precision", f"{_fmt(p.precision)} ({p.correct} of {p.automated} right)")
    table.add_row(f"{level} lower bound", f"{_fmt(p.lower_bound)} (Clopper-Pearson, one-sided)")
    console.print(table)

    curve = Table(title="threshold -> automation rate, precision")
    for col in ("threshold", "automated", "rate", "precision", f"{level} lower bound"):
        curve.add_column(col, justify="right")
    grid = sorted({*TABLE_THRESHOLDS, result.threshold})
    for q in curve_at(result.curve, grid):
        mark = " *" if q.threshold == result.threshold else ""
        curve.add_row(
            f"{q.threshold:g}{mark}",
            str(q.automated),
            _fmt(q.automation_rate, "%"),
            _fmt(q.precision),
            _fmt(q.lower_bound),
        )
    console.print(curve)

    if p.automated < _FEW_ROWS:
        console.print(
            f"[yellow]note:[/] the precision rests on {p.automated} rows only; the true "
            f"precision may be as low as {_fmt(p.lower_bound)} ({level} confidence)."
            + ("" if result.on_bound else " Add --confidence-bound to choose on that bound.")
        )
    for warning in scored.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    set_in, set_live = _set_lines(result.threshold, url)
    console.print("set it:")
    console.print(f"  {set_in}", soft_wrap=True, markup=False)
    console.print(f"  {set_live}", soft_wrap=True, markup=False)


def calibrate_command(rest: list[str]) -> None:
    """Run ``mlcycle automation calibrate`` with the arguments after ``calibrate``.

    Raises
    ------
    UnreachableTargetError
        No threshold reaches the target precision (the message names the best one).
    ConfigError, DataError, BundleError, RegistryError
        Bad flags or overrides, data that does not fit the model, a missing model.
    """
    from rich.console import Console

    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project
    from mlcycle.review.calibrate import choose_threshold

    ns = build_parser().parse_args(rest)
    project = Project.discover()
    cfg = to_config(compose(ns.overrides, project=project))
    url = f"http://{cfg.serve.host}:{cfg.serve.port}"
    scored = _score(ns, cfg, project)
    result = choose_threshold(
        scored.proba,
        scored.data.y,
        scored.classes,
        ns.target_precision,
        confidence_bound=ns.confidence_bound,
        level=ns.confidence_level,
    )
    if ns.json:
        doc = {
            "model": scored.ref,
            "bundle": str(scored.bundle),
            "split": ns.split,
            "data": scored.data.version.to_dict(),
            **result.to_dict(),
            "warnings": scored.warnings,
            "set": _set_lines(result.threshold, url),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _print(Console(), ns, scored, result, url)
