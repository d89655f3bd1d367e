"""How ``mlcycle rollout`` prints rollouts: status, the last analysis, history (rich)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

__all__ = ["changed_line", "render_history", "render_status"]

_STATUS_STYLE = {"pass": "green", "fail": "bold red", "wait": "yellow"}
_STATE_STYLE = {
    "running": "cyan",
    "paused": "yellow",
    "promoted": "green",
    "rolled_back": "red",
    "completed": "green",
}


def changed_line(action: str, r: dict[str, Any]) -> str:
    """One line saying what ``action`` did to rollout ``r`` (a ``Rollout.to_dict()``)."""
    from rich.markup import escape

    done = {
        "start": "started",
        "pause": "paused",
        "resume": "resumed",
        "promote": "promoted",
        "rollback": "rolled back",
    }[action]
    line = (
        f"rollout {r.get('id')} {done}: {r.get('mode')}, {_where(r)}; challenger "
        f"{escape(_version(r, 'challenger'))} vs champion {escape(_version(r, 'champion'))}"
    )
    if action == "start":
        line += "\nfollow it with `mlcycle rollout status`"
    return line


# -- rendering -----------------------------------------------------------------------------


def _time(seconds: Any, *, offset: bool = True) -> str:
    """Seconds since the epoch as ISO 8601 local time (``offset``: with the UTC offset)."""
    if not isinstance(seconds, int | float):
        return "-"
    moment = datetime.fromtimestamp(seconds)
    return (moment.astimezone() if offset else moment).isoformat(timespec="seconds")


def _pct(value: Any) -> str:
    return f"{value:g}%" if isinstance(value, int | float) else "-"


def _version(r: dict[str, Any], arm: str) -> str:
    version = str(r.get(f"{arm}_version") or "")
    return version or Path(str(r.get(f"{arm}_bundle") or "?")).name


def _step_of(r: dict[str, Any]) -> str | None:
    steps = r.get("steps") or []
    if r.get("phase") != "canary" or not steps:
        return None
    return f"{int(r.get('step') or 0) + 1}/{len(steps)}"


def _step(r: dict[str, Any]) -> str:
    step = _step_of(r)
    if step is None:
        return "-"
    return f"{step} ({', '.join(_pct(s) for s in r.get('steps') or [])})"


def _weights(r: dict[str, Any]) -> str:
    weight = float(r.get("weight") or 0.0)
    text = f"challenger {weight:g}%, champion {100 - weight:g}%"
    shadow = float(r.get("shadow_percent") or 0.0)
    if r.get("phase") == "shadow" and shadow:
        text += f"; {shadow:g}% of requests mirrored to the challenger"
    return text


def _where(r: dict[str, Any]) -> str:
    step = _step_of(r)
    at = f"step {step}, " if step else ""
    return f"{r.get('phase')} phase, {at}challenger at {_pct(r.get('weight'))} of traffic"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def render_status(doc: dict[str, Any]) -> RenderableType:
    """A ``GET /admin/rollout`` answer as rich renderables (a table per part).

    Parameters
    ----------
    doc
        ``{"rollout": ... or None, "routing": ..., "arms": ..., "shadow": ...}``.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    r = doc.get("rollout")
    arms = doc.get("arms") or {}
    if not r:
        champion = arms.get("champion") or {}
        return Text(
            f"no rollout yet on this server (model {champion.get('name', '?')!r}, champion "
            f"version {champion.get('version', '?')}); start one with `mlcycle rollout start`"
        )
    state = str(r.get("state"))
    grid = Table(title=f"rollout {r.get('id')} of {r.get('model_name')!r}", show_header=False)
    grid.add_column("what", style="bold")
    grid.add_column("value")
    rows = [
        ("mode", r.get("mode")),
        ("phase", r.get("phase")),
        ("state", Text(state, style=_STATE_STYLE.get(state, ""))),
        ("step", _step(r)),
        ("weights", _weights(r)),
        ("champion", f"{_version(r, 'champion')}  ({r.get('champion_bundle')})"),
        ("challenger", f"{_version(r, 'challenger')}  ({r.get('challenger_bundle')})"),
        ("started", f"{_time(r.get('created_at'))} by {r.get('started_by') or '?'}"),
        ("updated", _time(r.get("updated_at"))),
    ]
    auto = (r.get("settings") or {}).get("auto")
    if auto is not None:
        rows.append(("analysis", "automatic" if auto else "manual (promote or roll back by hand)"))
    routing = doc.get("routing") or {}
    if r.get("active") and routing.get("weight") != r.get("weight"):
        rows.append(("this worker", f"challenger at {_pct(routing.get('weight'))} (catching up)"))
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else Text(str(value)))
    parts: list[RenderableType] = [grid]
    analysis = r.get("last_analysis")
    if isinstance(analysis, dict):
        parts.append(_analysis_table(analysis))
    else:
        parts.append(Text("no analysis yet"))
    return Group(*parts)


def _analysis_table(analysis: dict[str, Any]) -> Table:
    from rich.table import Table
    from rich.text import Text

    title = f"last analysis: {analysis.get('action', '?')}: {analysis.get('reason', '')}"
    table = Table(title=Text(title), title_justify="left")
    for column in ("check", "status", "value", "threshold", "p", "detail"):
        table.add_column(column, no_wrap=column in ("check", "status"))
    for check in analysis.get("checks") or []:
        status = str(check.get("status", "?"))
        table.add_row(
            Text(str(check.get("name", "?"))),
            Text(status, style=_STATUS_STYLE.get(status, "")),
            _number(check.get("value")),
            _number(check.get("threshold")),
            _number(check.get("p_value")),
            Text(str(check.get("detail", ""))),
        )
    return table


def _change(before: Any, after: Any, fmt: Callable[[Any], str] = str) -> str:
    if before is None or before == after:
        return fmt(after)
    return f"{fmt(before)} -> {fmt(after)}"


def render_history(events: Sequence[dict[str, Any]]) -> Table:
    """``GET /admin/rollout/history`` events as a table, in the order given.

    Each row: the time (ISO 8601, local), the rollout, the action, the challenger's
    weight before and after, the phase and state after, who acted and why.

    Parameters
    ----------
    events
        ``RolloutEvent.to_dict()`` values (newest first, as the server sends them).
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="rollout history (newest first)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("time", "id", "action", "weight"):
        table.add_column(column, no_wrap=True)
    table.add_column("phase/state", overflow="fold")
    table.add_column("who", overflow="fold")
    table.add_column("reason", ratio=1, overflow="fold")
    for e in events:
        state = str(e.get("to_state", "?"))
        table.add_row(
            _time(e.get("time"), offset=False),
            str(e.get("rollout_id", "?")),
            Text(str(e.get("action", "?")), style="bold"),
            _change(e.get("from_weight"), e.get("to_weight"), _pct),
            Text(f"{e.get('to_phase', '?')}/{state}", style=_STATE_STYLE.get(state, "")),
            Text(str(e.get("who", ""))),
            Text(str(e.get("reason", ""))),
        )
    return table
