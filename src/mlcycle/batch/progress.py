"""A rich progress bar on stderr for batch scoring, or nothing when it would not help."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["Update", "progress_bar", "wants_progress"]

#: ``update(position, rows)``: the position in the bar's unit and the rows scored so far.
Update = Callable[[int, int], None]


def wants_progress(enabled: bool) -> bool:
    """Whether to draw a bar: asked for, and stderr is a terminal."""
    return enabled and sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool, total: int | None, label: str) -> Iterator[Update]:
    """A progress bar over ``total`` units; yields its update function.

    Parameters
    ----------
    enabled
        Draw the bar; when false the update function does nothing.
    total
        Units (rows or bytes) in all; None if unknown.
    label
        Shown left of the bar (e.g. the input file's name).

    Examples
    --------
    >>> with progress_bar(False, 10, "in.csv") as update:
    ...     update(5, 5)
    """
    if not enabled:
        yield _ignore
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total, rows=0)

        def update(position: int, rows: int) -> None:
            bar.update(task, completed=position, rows=rows)

        yield update


def _ignore(position: int, rows: int) -> None:
    """An update function that draws nothing."""
