"""One split's evaluation as plain data, and baseline tables for the terminal and logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from mlcycle._optional import require
from mlcycle.config.structured import EvaluateConfig
from mlcycle.evaluate.baselines import BaselineResult, ModelResolver, compare_to_baselines
from mlcycle.evaluate.metrics import classification_metrics, numeric_metric_keys
from mlcycle.evaluate.plots import save_plots
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["evaluate_predictions", "format_baseline_table", "render_baseline_table"]


def evaluate_predictions(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    cfg: EvaluateConfig,
    *,
    resolve_model: ModelResolver | None = None,
    plots_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate one labelled set as configured: the metrics of one split.

    The result is flat, like :func:`~mlcycle.evaluate.metrics.classification_metrics`,
    so it can itself serve as a baseline model's metrics and
    :func:`~mlcycle.tracking.log_metrics` logs it as ``<split>.f1_macro``.

    Parameters
    ----------
    y_true, proba, classes
        As for :func:`~mlcycle.evaluate.metrics.classification_metrics`.
    cfg
        ``evaluate`` config: primary metric, calibration bins and baselines.
    resolve_model
        When given, the baselines are compared too; it returns a baseline model's metrics
        on the same set, or ``None`` when that model does not exist.
    plots_dir
        When given, the plots are written there (see
        :func:`~mlcycle.evaluate.plots.save_plots`).

    Returns
    -------
    dict
        Every key of ``classification_metrics``, plus ``primary_metric`` (its name; the
        value is ``out[out["primary_metric"]]``), and ``baselines`` (one dict per
        baseline) with ``resolve_model``, and ``plots`` (name -> path relative to
        ``plots_dir``'s parent) with ``plots_dir``.

    Raises
    ------
    ConfigError
        ``evaluate.primary_metric`` is not a metric, or a baseline is malformed.

    Examples
    --------
    >>> from mlcycle.config.structured import EvaluateConfig
    >>> out = evaluate_predictions(["a", "b"], [[0.9, 0.1], [0.2, 0.8]], ["a", "b"],
    ...                            EvaluateConfig())
    >>> out["primary_metric"], out[out["primary_metric"]]
    ('f1_macro', 1.0)
    """
    bins = int(cfg.calibration_bins)
    out = classification_metrics(y_true, proba, classes, calibration_bins=bins)
    primary = str(cfg.primary_metric)
    keys = numeric_metric_keys(out)
    if primary not in keys:
        raise ConfigError(
            f"evaluate.primary_metric is {primary!r}, which is not a test metric; "
            f"use one of: {', '.join(keys)}"
        )
    out["primary_metric"] = primary
    if resolve_model is not None:
        results = compare_to_baselines(out, list(cfg.baselines), resolve_model)
        out["baselines"] = [r.to_dict() for r in results]
    if plots_dir is not None:
        written = save_plots(y_true, proba, classes, plots_dir, calibration_bins=bins)
        out["plots"] = {k: p.relative_to(plots_dir.parent).as_posix() for k, p in written.items()}
    return out


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _gap(r: BaselineResult) -> str:
    return "—" if r.gap is None else f"{r.gap:+.4f}"


def _verdict(r: BaselineResult) -> str:
    if r.status == "skipped":
        return f"skipped: {r.note}"
    return "better or equal" if r.beats_baseline else "worse"


_HEADERS = ("baseline", "source", "metric", "baseline value", "model value", "gap", "status")


def _rows(results: Sequence[BaselineResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.name,
            r.source,
            r.metric,
            _fmt(r.baseline_value),
            _fmt(r.model_value),
            _gap(r),
            _verdict(r),
        )
        for r in results
    ]


def render_baseline_table(results: Sequence[BaselineResult]) -> Table:
    """A rich table of baseline results: gaps in green when better, red when worse.

    Parameters
    ----------
    results
        From :func:`~mlcycle.evaluate.baselines.compare_to_baselines`.

    Returns
    -------
    rich.table.Table
        Print it with ``rich.console.Console().print(table)``.
    """
    table_mod = require("rich.table", "train")
    text_mod = require("rich.text", "train")
    table: Table = table_mod.Table(title="Baselines", title_justify="left")
    for header in _HEADERS:
        numeric = header in {"baseline value", "model value", "gap"}
        table.add_column(header, justify="right" if numeric else "left")
    for r, row in zip(results, _rows(results), strict=True):
        style = "dim" if r.status == "skipped" else ("green" if r.beats_baseline else "red")
        # Text cells: names are shown as written, never parsed as rich markup.
        cells = [text_mod.Text(c) for c in row]
        cells[5].stylize(style)
        cells[6].stylize(style)
        table.add_row(*cells)
    return table


def format_baseline_table(results: Sequence[BaselineResult]) -> str:
    """The baseline results as a Markdown table, for logs and plain-text reports.

    Examples
    --------
    >>> r = BaselineResult("human", "f1_macro", 0.9, 0.95, 0.05, "ok")
    >>> print(format_baseline_table([r]))
    | baseline | source | metric | baseline value | model value | gap | status |
    |---|---|---|---:|---:|---:|---|
    | human | value | f1_macro | 0.9000 | 0.9500 | +0.0500 | better or equal |
    """
    if not results:
        return "(no baselines configured)"
    align = ["---:" if h in {"baseline value", "model value", "gap"} else "---" for h in _HEADERS]
    lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "|".join(align) + "|"]
    for row in _rows(results):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)
