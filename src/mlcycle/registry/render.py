"""Rich tables of registered versions and of a model's history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlcycle._optional import require
from mlcycle.registry.events import Event
from mlcycle.registry.versions import CHALLENGER, CHAMPION, KEY_METRICS, VersionInfo

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

__all__ = ["render_history_table", "render_versions_table"]


def _empty(message: str) -> Text:
    text_mod = require("rich.text", "train")
    text: Text = text_mod.Text(message)
    return text


def render_versions_table(
    versions: Sequence[VersionInfo], *, name: str | None = None, title: str | None = None
) -> Table | Text:
    """A rich table of versions, or a friendly line when there are none.

    Parameters
    ----------
    versions
        From :func:`list_versions`.
    name
        Model name, for the title and the empty message.
    title
        Table title; default ``"Versions of <name>"``.
    """
    if not versions:
        what = f"model {name!r}" if name else "this project"
        return _empty(
            f"No registered versions of {what} yet. Train and register one with `mlcycle train`."
        )
    table_mod = require("rich.table", "train")
    text_mod = require("rich.text", "train")
    box = require("rich.box", "train")
    shown = [m for m in KEY_METRICS if any(m in v.metrics for v in versions)]
    extra = sorted({m for v in versions for m in v.metrics} - set(shown))
    columns = [*shown, *extra]
    # Fits 80 columns with the three key metrics; hashes shrink first on narrower consoles.
    table: Table = table_mod.Table(
        title=title or f"Versions of {name or versions[0].name}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("version", justify="right", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for m in columns:
        table.add_column(m.removeprefix("test."), justify="right", no_wrap=True)
    table.add_column("data", overflow="ellipsis")
    table.add_column("git", overflow="ellipsis")
    for v in versions:
        aliases = text_mod.Text(", ".join(v.aliases) or "—")
        aliases.highlight_words([CHAMPION], "bold green")
        aliases.highlight_words([CHALLENGER], "yellow")
        table.add_row(
            text_mod.Text(v.version),
            aliases,
            text_mod.Text(v.created.strftime("%Y-%m-%d")),
            *(text_mod.Text(f"{v.metrics[m]:.4f}" if m in v.metrics else "—") for m in columns),
            text_mod.Text((v.data_md5 or "—")[:7]),
            text_mod.Text((v.git_commit or "—")[:7]),
        )
    return table


def render_history_table(events: Sequence[Event], *, name: str | None = None) -> Table | Text:
    """A rich table of recorded moves, or a friendly line when there are none."""
    if not events:
        return _empty(f"No recorded moves of {name!r} yet." if name else "No recorded moves yet.")
    table_mod = require("rich.table", "train")
    text_mod = require("rich.text", "train")
    table: Table = table_mod.Table(
        title=f"History of {name}" if name else "History", title_justify="left"
    )
    for header in ("time (UTC)", "action", "from", "to", "user", "reason"):
        table.add_column(header)
    for e in events:
        table.add_row(
            *(
                text_mod.Text(c)
                for c in (
                    e.time,
                    e.action,
                    e.from_version or "—",
                    e.to_version or "—",
                    e.user,
                    e.reason,
                )
            )
        )
    return table
