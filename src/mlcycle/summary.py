"""Human-readable summaries of training runs, printed with rich."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mlcycle.config.structured import Config

if TYPE_CHECKING:
    from mlcycle.workflow import TrainResult

__all__ = ["HEADLINE", "fmt", "print_train_result"]

# The test metrics shown in tables, in order.
HEADLINE = ("accuracy", "f1_macro", "roc_auc", "pr_auc", "ece")


def fmt(value: Any, digits: int = 4) -> str:
    """Format a metric value for a table (``-`` for missing)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_train_result(result: TrainResult, cfg: Config, console: Console | None = None) -> None:
    """Print one run: test metrics, parity, gaps to baselines, where the bundle is."""
    console = console or Console()
    test = result.evaluation.test
    table = Table(title=f"{cfg.data.name} · {result.family}", show_header=True)
    table.add_column("test metric")
    table.add_column("value", justify="right")
    for key in HEADLINE:
        table.add_row(key, fmt(test.get(key)))
    table.add_row("parity max |Δp|", f"{result.parity.max_abs_diff:.2e}")
    console.print(table)
    if result.evaluation.baselines:
        base = Table(title="gap to baselines (model - baseline)")
        for col in ("baseline", "metric", "baseline value", "model", "gap", "note"):
            base.add_column(col)
        for b in result.evaluation.baselines:
            base.add_row(
                b.name,
                b.metric,
                fmt(b.baseline_value),
                fmt(b.model_value),
                fmt(b.gap),
                b.note or "",
            )
        console.print(base)
    version = f"version {result.version} (alias challenger)" if result.version else "not registered"
    console.print(
        f"[bold]run[/bold] {result.run_id} · [bold]{version}[/bold]\n"
        f"[bold]bundle[/bold] {result.bundle}"
    )
