"""``mlcycle monitor report``: an HTML (and JSON) report over a window of the prediction store.

::

    mlcycle monitor report [--store URL_OR_PATH] [--since ISO_OR_DURATION] [--until ISO]
                           [--model NAME] [--stage STAGE]
                           [--reference FILE_OR_BUNDLE_DIR] --output report.html

``--since`` takes an ISO 8601 time (``2026-01-02``, ``2026-01-02T10:00``,
``2026-01-02T10:00:00+02:00``) or a duration back from ``--until`` (``90s``, ``30m``,
``24h``, ``7d``, ``2w``); the default is ``24h``. ``--until`` takes an ISO time or
``now`` (the default). Times without a zone are UTC. The report is built by
:func:`mlcycle.monitor.report.store_document` and written by
:func:`~mlcycle.monitor.report.write_report`.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlcycle.exceptions import BundleError, ConfigError, DataError

__all__ = ["add_arguments", "parse_since", "parse_until", "run"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``mlcycle monitor report`` to ``parser``."""
    parser.add_argument(
        "--store",
        default=None,
        help="SQLAlchemy URL or SQLite file of the prediction store (default: monitor.db in "
        "the project root)",
    )
    parser.add_argument(
        "--since",
        default="24h",
        help="start of the window: ISO time (UTC unless it has a zone) or a duration back "
        "from --until such as 30m, 24h, 7d (default: 24h)",
    )
    parser.add_argument(
        "--until", default="now", help="end of the window: ISO time or 'now' (default)"
    )
    parser.add_argument("--model", default=None, help="only predictions of this model name")
    parser.add_argument("--stage", default=None, help="only predictions of this pipeline stage")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference data for the drift section: a CSV / Parquet file, or a bundle "
        "folder (its profile.json); without it the report has no drift section",
    )
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="report file: .html (also writes the JSON next to it) or .json",
    )


def parse_until(text: str, now: float | None = None) -> float:
    """The end of the window in unix seconds, from an ISO time or ``now``.

    Raises
    ------
    ConfigError
        ``text`` is not an ISO time.

    Examples
    --------
    >>> parse_until("2026-01-02T00:00:00Z")
    1767312000.0
    """
    if text.strip().lower() == "now":
        return time.time() if now is None else now
    return _iso(text, "--until", "an ISO time such as 2026-01-02T10:00 or 'now'")


def parse_since(text: str, until: float) -> float:
    """The start of the window in unix seconds: an ISO time, or a duration before ``until``.

    Raises
    ------
    ConfigError
        ``text`` is neither an ISO time nor a duration.

    Examples
    --------
    >>> parse_since("2h", 7200.0)
    0.0
    >>> parse_since("1970-01-01T01:00", 7200.0)
    3600.0
    """
    match = _DURATION.match(text)
    if match:
        return until - float(match.group(1)) * _UNITS[match.group(2)]
    return _iso(
        text,
        "--since",
        "an ISO time such as 2026-01-02T10:00 or a duration such as 30m, 24h, 7d",
    )


def _iso(text: str, flag: str, forms: str) -> float:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a time; use {forms}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _profile(folder: Path) -> dict[str, Any]:
    path = folder / "profile.json"
    if not path.is_file():
        raise BundleError(
            f"{folder} has no profile.json, so it is not a bundle folder to compare with; "
            "give a bundle folder or a CSV / Parquet file as --reference"
        )
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); re-export the bundle") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("features"), dict):
        raise BundleError(f"{path} has no 'features' section; re-export the bundle")
    return profile


def run(ns: argparse.Namespace) -> list[Path]:
    """Build the report the flags in ``ns`` ask for and write it; return the files written.

    Raises
    ------
    ConfigError
        A bad ``--since`` / ``--until``, or an empty window (``--since`` not before
        ``--until``), or an output that is neither ``.html`` nor ``.json``.
    DataError
        The store file does not exist, the reference cannot be read, or the window
        holds no prediction (:class:`~mlcycle.monitor.report.EmptyWindowError`).
    BundleError
        The reference folder has no usable ``profile.json``.
    """
    import sqlalchemy as sa

    from mlcycle.monitor.report import store_document, write_report
    from mlcycle.monitor.store import connect, resolve_store

    until = parse_until(ns.until)
    since = parse_since(ns.since, until)
    if since >= until:
        raise ConfigError(
            f"--since {ns.since!r} is not before --until {ns.until!r}; the window is empty"
        )
    if Path(ns.output).suffix.lower() not in (".html", ".htm", ".json"):
        raise ConfigError(f"--output {ns.output} must end in .html (plus JSON) or .json")
    store = resolve_store(ns.store)
    if "://" not in store:
        if not Path(store).expanduser().is_file():
            raise DataError(
                f"the prediction store {store} does not exist; pass --store URL_OR_FILE "
                "(the file `mlcycle serve` logs predictions to)"
            )
        label = str(Path(store).expanduser())
    else:
        label = sa.make_url(store).render_as_string(hide_password=True)
    reference: Path | None = None
    profile: dict[str, Any] | None = None
    if ns.reference is not None:
        if Path(ns.reference).is_dir():
            profile = _profile(Path(ns.reference))
        else:
            reference = Path(ns.reference)
    engine = connect(store)
    try:
        doc = store_document(
            engine,
            since,
            until,
            model=ns.model,
            stage=ns.stage,
            reference=reference,
            profile=profile,
            store_label=label,
        )
    finally:
        engine.dispose()
    if profile is not None:
        doc["drift"]["reference"] = f"{ns.reference} (profile.json)"
    return write_report(doc, Path(ns.output))
