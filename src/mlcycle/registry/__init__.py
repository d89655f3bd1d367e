"""MLflow model registry: versions, the ``champion``/``challenger`` aliases, and history.

A registered version's source is the ``bundle`` artifact folder of the run that trained
it; a new version gets the alias ``challenger``. :func:`promote` moves ``champion``;
:func:`rollback` moves it back. Registry stages are deprecated in MLflow 3 and never used.

Every move is recorded as a registered-model tag ``mlcycle.event.<ms timestamp>-<seq>``
holding JSON (``action``, ``from_version``, ``to_version``, ``user``, ``reason``,
``time``), so the history lives in the registry itself and works with any MLflow backend.
Replaying it as a stack (promote pushes, rollback pops) gives the earlier champions, so
repeated rollbacks walk further back. Two processes recording an event in the same
millisecond may collide; moves are meant to be made one at a time.
"""

from __future__ import annotations

from mlcycle.registry.events import EVENT_TAG_PREFIX, Event, history
from mlcycle.registry.models import list_models
from mlcycle.registry.refs import ModelRef, lookup_version, parse_model_ref, resolve_bundle
from mlcycle.registry.render import render_history_table, render_versions_table
from mlcycle.registry.versions import (
    CHALLENGER,
    CHAMPION,
    KEY_METRICS,
    VersionInfo,
    list_versions,
    promote,
    register_bundle,
    rollback,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EVENT_TAG_PREFIX",
    "KEY_METRICS",
    "Event",
    "ModelRef",
    "VersionInfo",
    "history",
    "list_models",
    "list_versions",
    "lookup_version",
    "parse_model_ref",
    "promote",
    "register_bundle",
    "render_history_table",
    "render_versions_table",
    "resolve_bundle",
    "rollback",
]
