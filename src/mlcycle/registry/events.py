"""The history of a registered model: events stored as registered-model tags.

Every move is a tag ``mlcycle.event.<ms timestamp>-<seq>`` holding the event as JSON.
Replaying the events as a stack (promote pushes, rollback pops) gives the earlier
champions.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlcycle.registry.models import _get_model
from mlcycle.tracking import TrackingContext

if TYPE_CHECKING:
    from mlflow.entities.model_registry import RegisteredModel

__all__ = ["EVENT_TAG_PREFIX", "Event", "history"]

# Named after the package, so records keep the logger name they had before the split.
_log = logging.getLogger("mlcycle.registry")

EVENT_TAG_PREFIX = "mlcycle.event."


@dataclass(frozen=True)
class Event:
    """One recorded move of a registered model.

    Parameters
    ----------
    action
        ``register``, ``promote`` or ``rollback``.
    from_version
        Version that held the alias before (``challenger`` for register, ``champion``
        otherwise); ``None`` when none did.
    to_version
        Version that holds it now.
    user
        Who made the move.
    reason
        Free text given with the move.
    time
        ISO-8601 UTC timestamp.
    key
        The registered-model tag holding the event; events sort by it.
    """

    action: str
    from_version: str | None
    to_version: str | None
    user: str
    reason: str
    time: str
    key: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in the tag (without ``key``)."""
        out = asdict(self)
        del out["key"]
        return out


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _events(model: RegisteredModel) -> list[Event]:
    events = []
    for key in sorted(k for k in (model.tags or {}) if k.startswith(EVENT_TAG_PREFIX)):
        try:
            data = json.loads(model.tags[key])
            events.append(
                Event(
                    action=str(data["action"]),
                    from_version=_opt_str(data.get("from_version")),
                    to_version=_opt_str(data.get("to_version")),
                    user=str(data.get("user", "")),
                    reason=str(data.get("reason", "")),
                    time=str(data.get("time", "")),
                    key=key,
                )
            )
        except (ValueError, KeyError, TypeError):
            _log.warning("ignoring malformed history tag %s of model %r", key, model.name)
    return events


def history(ctx: TrackingContext, name: str) -> list[Event]:
    """The recorded moves of model ``name``, oldest first.

    Raises
    ------
    RegistryError
        The model does not exist.
    """
    return _events(_get_model(ctx, name))


def _next_key(events: Sequence[Event], now_ms: int) -> str:
    last_ms, last_seq = -1, -1
    for e in events:
        m = re.fullmatch(rf"{re.escape(EVENT_TAG_PREFIX)}(\d+)-(\d+)", e.key)
        if m and (int(m[1]), int(m[2])) > (last_ms, last_seq):
            last_ms, last_seq = int(m[1]), int(m[2])
    # Never before the last event, even when clocks disagree: keys sort in event order.
    ms, seq = (now_ms, 0) if now_ms > last_ms else (last_ms, last_seq + 1)
    return f"{EVENT_TAG_PREFIX}{ms:015d}-{seq:03d}"


def _record(
    ctx: TrackingContext,
    model: RegisteredModel,
    action: str,
    from_version: str | None,
    to_version: str | None,
    *,
    user: str | None,
    reason: str,
) -> Event:
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    now = datetime.now(UTC)
    event = Event(
        action=action,
        from_version=from_version,
        to_version=to_version,
        user=user,
        reason=reason,
        time=now.isoformat(timespec="milliseconds"),
        key=_next_key(_events(model), int(now.timestamp() * 1000)),
    )
    ctx.client.set_registered_model_tag(model.name, event.key, json.dumps(event.to_dict()))
    return event


def _champion_stack(events: Sequence[Event]) -> list[str]:
    """Replay the history: promote pushes its version, rollback pops back to its target."""
    stack: list[str] = []
    for e in events:
        if e.action == "promote" and e.to_version:
            if e.from_version and (not stack or stack[-1] != e.from_version):
                stack.append(e.from_version)  # champion set outside mlcycle before
            stack.append(e.to_version)
        elif e.action == "rollback" and e.to_version:
            while stack and stack[-1] != e.to_version:
                stack.pop()
            if not stack:
                stack.append(e.to_version)
    return stack
