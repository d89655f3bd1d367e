"""Registered versions: register a bundle, move ``champion``, and list versions.

A registered version's source is the ``bundle`` artifact folder of the run that trained
it; a new version gets the alias ``challenger``. :func:`promote` moves ``champion``;
:func:`rollback` moves it back. Each move is recorded in the model's history.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mlcycle._optional import require
from mlcycle.exceptions import RegistryError
from mlcycle.registry.events import Event, _champion_stack, _events, _record
from mlcycle.registry.models import (
    _SEE_VERSIONS,
    _aliases,
    _get_model,
    _is_missing,
    _require_version,
    _version_str,
    _versions,
)
from mlcycle.tracking import TAG_DATA_MD5, TAG_GIT_COMMIT, TAG_GIT_DIRTY, TrackingContext

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "KEY_METRICS",
    "VersionInfo",
    "list_versions",
    "promote",
    "register_bundle",
    "rollback",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
# Run metrics shown for each version (logged by the training run with the prefix "test").
KEY_METRICS = ("test.f1_macro", "test.accuracy", "test.roc_auc")
_LINEAGE_TAGS = (TAG_GIT_COMMIT, TAG_GIT_DIRTY, TAG_DATA_MD5)


@dataclass(frozen=True)
class VersionInfo:
    """What ``mlcycle models`` shows of one registered version."""

    name: str
    version: str
    aliases: list[str]
    created: datetime
    run_id: str | None
    source: str
    status: str
    metrics: dict[str, float]
    data_md5: str | None
    git_commit: str | None


# -- moves ----------------------------------------------------------------------------------


def register_bundle(
    ctx: TrackingContext,
    name: str,
    run_id: str,
    bundle_artifact_uri: str,
    *,
    tags: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
) -> str:
    """Register a run's bundle as a new version of ``name`` and make it ``challenger``.

    Parameters
    ----------
    ctx
        From :func:`~mlcycle.tracking.configure_tracking`.
    name
        Registered model name; created when missing.
    run_id
        The run that logged the bundle; its lineage tags (``mlcycle.git_commit``,
        ``mlcycle.git_dirty``, ``mlcycle.data_md5``) are copied to the version.
    bundle_artifact_uri
        The run's bundle folder (:func:`~mlcycle.tracking.log_artifacts` returns it).
    tags
        Extra version tags.
    timeout_s
        How long to wait for the version to become ``READY``.

    Returns
    -------
    str
        The new version number.

    Raises
    ------
    RegistryError
        The version failed to register or was not ready in time.
    """
    exceptions = require("mlflow.exceptions", "train")
    client = ctx.client
    try:
        client.create_registered_model(name)
    except exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version_tags: dict[str, str] = {}
    try:
        run_tags = client.get_run(run_id).data.tags
        version_tags.update({k: v for k, v in run_tags.items() if k in _LINEAGE_TAGS})
    except exceptions.MlflowException as exc:
        if not _is_missing(exc):
            raise
    version_tags.update({str(k): str(v) for k, v in (tags or {}).items()})
    mv = client.create_model_version(
        name, source=bundle_artifact_uri, run_id=run_id, tags=version_tags, await_creation_for=0
    )
    version = str(mv.version)
    deadline = time.monotonic() + timeout_s
    while mv.status != "READY":
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryError(
                f"version {version} of {name!r} is {mv.status} "
                f"({mv.status_message or 'no message'}); check the tracking server's log"
            )
        time.sleep(0.5)
        mv = client.get_model_version(name, version)
    model = _get_model(ctx, name)
    previous = _aliases(model).get(CHALLENGER)
    client.set_registered_model_alias(name, CHALLENGER, version)
    _record(ctx, model, "register", previous, version, user=None, reason=f"run {run_id}")
    return version


def promote(
    ctx: TrackingContext,
    name: str,
    version: str | int,
    *,
    reason: str = "",
    user: str | None = None,
) -> Event:
    """Move the ``champion`` alias of ``name`` to ``version`` and record it.

    The ``challenger`` alias is removed when it pointed to that version.

    Parameters
    ----------
    ctx
        From :func:`~mlcycle.tracking.configure_tracking`.
    name
        Registered model name.
    version
        Version number (``3``, ``"3"`` or ``"v3"``).
    reason
        Why, kept in the history.
    user
        Who; default: the login name.

    Returns
    -------
    Event
        The recorded ``promote`` event.

    Raises
    ------
    RegistryError
        The model or version does not exist, or the version already is the champion.
    """
    v = _version_str(version)
    model = _get_model(ctx, name)
    _require_version(ctx, name, v)
    aliases = _aliases(model)
    current = aliases.get(CHAMPION)
    if current == v:
        raise RegistryError(f"version {v} of {name!r} already is the champion; nothing to do")
    client = ctx.client
    client.set_registered_model_alias(name, CHAMPION, v)
    if aliases.get(CHALLENGER) == v:
        client.delete_registered_model_alias(name, CHALLENGER)
    return _record(ctx, model, "promote", current, v, user=user, reason=reason)


def rollback(
    ctx: TrackingContext, name: str, *, reason: str = "", user: str | None = None
) -> Event:
    """Move ``champion`` back to the champion before it, and record it.

    The history is replayed as a stack, so a second rollback goes one promotion further
    back. Versions deleted since are skipped.

    Returns
    -------
    Event
        The recorded ``rollback`` event.

    Raises
    ------
    RegistryError
        The model does not exist, has no champion, or there is no earlier champion.
    """
    model = _get_model(ctx, name)
    current = _aliases(model).get(CHAMPION)
    if current is None:
        raise RegistryError(
            f"model {name!r} has no champion, so there is nothing to roll back; "
            f"promote a version with `mlcycle promote` ({_SEE_VERSIONS})"
        )
    stack = _champion_stack(_events(model))
    if not stack or stack[-1] != current:
        stack.append(current)  # champion moved outside mlcycle: roll back from it
    existing = {str(mv.version) for mv in _versions(ctx, name)}
    target = next((v for v in reversed(stack[:-1]) if v != current and v in existing), None)
    if target is None:
        raise RegistryError(
            f"nothing to roll back to: version {current} is the first champion of {name!r} "
            f"in its history; promote another version instead ({_SEE_VERSIONS})"
        )
    ctx.client.set_registered_model_alias(name, CHAMPION, target)
    return _record(ctx, model, "rollback", current, target, user=user, reason=reason)


# -- listing --------------------------------------------------------------------------------


def list_versions(
    ctx: TrackingContext, name: str, *, metrics: Sequence[str] = KEY_METRICS
) -> list[VersionInfo]:
    """The versions of ``name``, newest first, with key test metrics and lineage.

    A model that does not exist has no versions: the result is empty, not an error.

    Parameters
    ----------
    ctx
        From :func:`~mlcycle.tracking.configure_tracking`.
    name
        Registered model name.
    metrics
        Run metrics to include, when the run logged them.
    """
    exceptions = require("mlflow.exceptions", "train")
    client = ctx.client
    try:
        model = client.get_registered_model(name)
    except exceptions.MlflowException as exc:
        if _is_missing(exc):
            return []
        raise
    # Searched versions do not carry their aliases on every backend; the model does.
    by_version: dict[str, list[str]] = {}
    for alias, v in _aliases(model).items():
        by_version.setdefault(v, []).append(alias)
    out = []
    for mv in reversed(_versions(ctx, name)):
        run_metrics: dict[str, float] = {}
        run_tags: dict[str, str] = {}
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                run_metrics, run_tags = dict(run.data.metrics), dict(run.data.tags)
            except exceptions.MlflowException as exc:
                if not _is_missing(exc):
                    raise
        tags = {**run_tags, **(mv.tags or {})}
        out.append(
            VersionInfo(
                name=name,
                version=str(mv.version),
                aliases=sorted(by_version.get(str(mv.version), [])),
                created=datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, tz=UTC),
                run_id=mv.run_id or None,
                source=str(mv.source or ""),
                status=str(mv.status),
                metrics={k: float(run_metrics[k]) for k in metrics if k in run_metrics},
                data_md5=tags.get(TAG_DATA_MD5),
                git_commit=tags.get(TAG_GIT_COMMIT),
            )
        )
    return out
