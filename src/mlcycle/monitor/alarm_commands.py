"""``mlcycle monitor alarms`` and ``mlcycle monitor ack``: alarms from the command line.

The CLI adds the arguments with :func:`add_alarms_arguments` / :func:`add_ack_arguments`
to its subparsers and calls :func:`run_alarms` / :func:`run_ack` with the parsed
namespace. Errors are :class:`~mlcycle.exceptions.MlcycleError` subclasses, which the
CLI prints as ``error: ...`` (exit status 2).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.exceptions import ConfigError, DataError
from mlcycle.monitor.alarm_store import ALARM_STATES, acknowledge, list_alarms
from mlcycle.monitor.store import connect, resolve_store

__all__ = [
    "add_ack_arguments",
    "add_alarms_arguments",
    "add_store_argument",
    "open_store",
    "parse_since",
    "run_ack",
    "run_alarms",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_since(text: str, *, now: float | None = None) -> float:
    """A ``--since`` value as seconds since the epoch.

    Parameters
    ----------
    text
        A duration back from now (``90s``, ``30m``, ``1h``, ``7d``, ``2w``) or an ISO
        8601 time (``2024-05-01``, ``2024-05-01T12:00``, ``...+02:00``; local time
        when it has no offset).
    now
        The present (default: now).

    Returns
    -------
    float
        The time.

    Raises
    ------
    ConfigError
        Neither a duration nor an ISO time.

    Examples
    --------
    >>> parse_since("1h", now=7200.0)
    3600.0
    """
    match = _DURATION.match(text)
    if match:
        present = time.time() if now is None else now
        return present - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ConfigError(
            f"--since must be a duration (30m, 1h, 7d) or an ISO time "
            f"(2024-05-01T12:00), not {text!r}"
        ) from None


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """Add the ``--store`` flag of the ``mlcycle monitor`` commands to ``parser``."""
    parser.add_argument(
        "--store",
        metavar="URL_OR_PATH",
        default=None,
        help="monitoring store: SQLAlchemy URL or SQLite file (default: monitor.db in the project)",
    )


def add_alarms_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``mlcycle monitor alarms`` flags to ``parser``.

    Parameters
    ----------
    parser
        The subcommand's parser.
    """
    add_store_argument(parser)
    parser.add_argument(
        "--all", action="store_true", help="include acknowledged alarms (default: only open ones)"
    )
    parser.add_argument(
        "--since",
        metavar="ISO_OR_DURATION",
        default=None,
        help="only alarms raised since then: a duration back from now (30m, 1h, 7d) or an ISO time",
    )
    parser.add_argument("--state", choices=ALARM_STATES, default=None, help="only this state")
    parser.add_argument("--limit", type=int, default=200, help="most alarms shown (200)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_ack_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``mlcycle monitor ack`` arguments to ``parser``.

    Parameters
    ----------
    parser
        The subcommand's parser.
    """
    parser.add_argument("ids", metavar="ID", type=int, nargs="+", help="alarm id(s) to acknowledge")
    parser.add_argument(
        "--by", metavar="NAME", default=None, help="who acknowledges (default: your user name)"
    )
    add_store_argument(parser)


def open_store(store: str | None) -> sa.Engine:
    """The store named by ``--store`` (default: the project's); :class:`DataError` if
    that SQLite file does not exist."""
    target = resolve_store(store)
    if "://" not in target and not Path(target).expanduser().exists():
        raise DataError(
            f"no monitoring store at {target}; pass --store, or serve with monitoring on "
            "so the store is created"
        )
    return connect(target)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def _short_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%m-%d %H:%M")


def _model(row: dict[str, Any]) -> str:
    model = str(row["model_name"] or "-")
    if row["model_version"]:
        model += f" v{row['model_version']}"
    if row["stage"]:
        model += f" ({row['stage']})"
    return model


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def run_alarms(ns: argparse.Namespace) -> None:
    """List alarms: unacknowledged ones, newest first (``mlcycle monitor alarms``).

    Parameters
    ----------
    ns
        Parsed by a parser set up with :func:`add_alarms_arguments`.

    Raises
    ------
    ConfigError
        A bad ``--since``.
    DataError
        No store at the given path.
    """
    since = parse_since(ns.since) if ns.since else None
    engine = open_store(ns.store)
    try:
        rows = list_alarms(
            engine,
            since=since,
            state=ns.state,
            include_acknowledged=ns.all,
            limit=ns.limit if ns.limit and ns.limit > 0 else None,
        )
    finally:
        engine.dispose()
    if ns.json:
        print(json.dumps([_json_row(r) for r in rows], indent=2, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        which = "alarms" if ns.all else "unacknowledged alarms"
        console.print(f"no {which}" + (f" since {_when(since)}" if since is not None else ""))
        return
    title = "alarms" if ns.all else "unacknowledged alarms"
    models = {_model(r) for r in rows}
    one_model = next(iter(models)) if len(models) == 1 else ""
    table = Table(
        title=f"{title} (newest first)" + (f", model {escape(one_model)}" if one_model else "")
    )
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("severity")
    table.add_column("state")
    table.add_column("alarm", overflow="fold")
    table.add_column("value", overflow="fold")
    if not one_model:
        table.add_column("model", overflow="fold")
    if ns.all:
        table.add_column("ack by", overflow="fold")
    colours = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
    for r in rows:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(r["labels"].items()))
        alarm = f"{r['name']}\n{r['metric']}" + (f"{{{labels}}}" if labels else "")
        direction = r["details"].get("direction", "above")
        value = _number(r["value"])
        if r["threshold"] is not None:
            value += f" {'>' if direction == 'above' else '<'} {_number(r['threshold'])}"
        severity = r["severity"]
        cells = [
            str(r["id"]),
            _short_time(r["time"]),
            f"[{colours[severity]}]{severity}[/]" if severity in colours else severity,
            r["state"],
            escape(alarm),
            value,
        ]
        if not one_model:
            cells.append(escape(_model(r)))
        if ns.all:
            cells.append(
                escape(f"{r['acknowledged_by'] or '?'} {_short_time(r['acknowledged_at'])}")
                if r["acknowledged_at"] is not None
                else ""
            )
        table.add_row(*cells)
    console.print(table)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["time_iso"] = _when(row["time"])
    if row["acknowledged_at"] is not None:
        out["acknowledged_at_iso"] = _when(row["acknowledged_at"])
    return out


def run_ack(ns: argparse.Namespace) -> None:
    """Acknowledge alarms by id (``mlcycle monitor ack ID [ID...]``).

    Parameters
    ----------
    ns
        Parsed by a parser set up with :func:`add_ack_arguments`.

    Raises
    ------
    AlarmStoreError
        An unknown or already acknowledged id (nothing is acknowledged then).
    DataError
        No store at the given path.
    """
    by = ns.by or _user()
    engine = open_store(ns.store)
    try:
        count = acknowledge(engine, ns.ids, by)
    finally:
        engine.dispose()
    ids = ", ".join(str(i) for i in sorted(set(ns.ids)))
    print(f"acknowledged {count} alarm(s) ({ids}) as {by}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
