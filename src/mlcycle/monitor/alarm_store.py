"""Reading and acknowledging the alarms in the monitoring store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from mlcycle.exceptions import MlcycleError
from mlcycle.monitor.store import ALARMS

__all__ = ["ALARM_STATES", "AlarmStoreError", "acknowledge", "list_alarms"]

#: States an alarm row can be in.
ALARM_STATES = ("firing", "resolved")


class AlarmStoreError(MlcycleError, LookupError):
    """An alarm id that does not exist or was already acknowledged."""


def list_alarms(
    engine: sa.Engine,
    *,
    since: float | None = None,
    state: str | None = None,
    include_acknowledged: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Alarms in the store, newest first.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect`.
    since
        Only alarms raised at or after this time (seconds since the epoch).
    state
        Only ``firing`` or only ``resolved`` alarms.
    include_acknowledged
        Also alarms someone acknowledged (by default only unacknowledged ones).
    limit
        Most alarms returned.

    Returns
    -------
    list of dict
        One per alarm: the table's columns, ``details`` parsed from JSON and its
        ``labels`` also as a key of their own.
    """
    if state is not None and state not in ALARM_STATES:
        raise AlarmStoreError(f"alarm state must be one of {ALARM_STATES}, not {state!r}")
    query = sa.select(ALARMS).order_by(ALARMS.c.time.desc(), ALARMS.c.id.desc())
    if since is not None:
        query = query.where(ALARMS.c.time >= since)
    if state is not None:
        query = query.where(ALARMS.c.state == state)
    if not include_acknowledged:
        query = query.where(ALARMS.c.acknowledged_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        try:
            details = json.loads(row["details"]) if row["details"] else {}
        except ValueError:
            details = {"raw": row["details"]}
        row["details"] = details if isinstance(details, dict) else {"value": details}
        row["labels"] = row["details"].get("labels", {})
    return rows


def acknowledge(engine: sa.Engine, ids: Iterable[int], by: str, *, now: float | None = None) -> int:
    """Mark alarms as acknowledged by ``by``; all or none.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect`.
    ids
        Alarm ids (the ``id`` column; ``mlcycle monitor alarms`` shows them).
    by
        Who acknowledges them.
    now
        The time to record (default: now).

    Returns
    -------
    int
        How many alarms were acknowledged.

    Raises
    ------
    AlarmStoreError
        An id that does not exist, or an alarm already acknowledged; then none is.
    """
    wanted = sorted(set(int(i) for i in ids))
    if not wanted:
        raise AlarmStoreError("no alarm id given to acknowledge")
    when = time.time() if now is None else now
    with engine.begin() as conn:
        found = {
            row.id: row
            for row in conn.execute(
                sa.select(ALARMS.c.id, ALARMS.c.acknowledged_at, ALARMS.c.acknowledged_by).where(
                    ALARMS.c.id.in_(wanted)
                )
            )
        }
        missing = [i for i in wanted if i not in found]
        if missing:
            ids_text = ", ".join(str(i) for i in missing)
            raise AlarmStoreError(
                f"no alarm with id {ids_text}; run `mlcycle monitor alarms --all` to list them"
            )
        done = [found[i] for i in wanted if found[i].acknowledged_at is not None]
        if done:
            who = "; ".join(
                f"alarm {r.id} was acknowledged by {r.acknowledged_by or 'someone'} at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.acknowledged_at))}"
                for r in done
            )
            raise AlarmStoreError(f"{who}; nothing was acknowledged")
        result = conn.execute(
            ALARMS.update()
            .where(ALARMS.c.id.in_(wanted), ALARMS.c.acknowledged_at.is_(None))
            .values(acknowledged_at=when, acknowledged_by=by)
        )
        return int(result.rowcount)
