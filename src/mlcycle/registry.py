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

import getpass
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._optional import require
from mlcycle.exceptions import RegistryError
from mlcycle.tracking import TAG_DATA_MD5, TAG_GIT_COMMIT, TAG_GIT_DIRTY, TrackingContext

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel
    from rich.table import Table
    from rich.text import Text

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

_log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
EVENT_TAG_PREFIX = "mlcycle.event."
# Run metrics shown for each version (logged by the training run with the prefix "test").
KEY_METRICS = ("test.f1_macro", "test.accuracy", "test.roc_auc")
_LINEAGE_TAGS = (TAG_GIT_COMMIT, TAG_GIT_DIRTY, TAG_DATA_MD5)
_SEE_VERSIONS = "run `mlcycle models` to see versions"
_REF_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, @ALIAS, a version number or a folder"


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


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, by number or by alias."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _version_str(version: str | int) -> str:
    text = str(version).strip()
    text = text[1:] if text[:1] in ("v", "V") else text
    if not text.isdigit():
        raise RegistryError(f"model version must be a number, got {version!r}; {_SEE_VERSIONS}")
    return str(int(text))


def list_models(ctx: TrackingContext) -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(m.name for m in ctx.client.search_registered_models())


def _get_model(ctx: TrackingContext, name: str) -> RegisteredModel:
    exceptions = require("mlflow.exceptions", "train")
    try:
        model: RegisteredModel = ctx.client.get_registered_model(name)
        return model
    except exceptions.MlflowException as exc:
        if not _is_missing(exc):
            raise
    names = list_models(ctx)
    known = f"registered models: {', '.join(names)}" if names else "the registry is empty"
    raise RegistryError(
        f"no registered model {name!r} in {ctx.registry_uri} ({known}); train and register "
        "one with `mlcycle train`, or check tracking.registered_model"
    )


def _versions(ctx: TrackingContext, name: str) -> list[ModelVersion]:
    quoted = name.replace("'", "\\'")
    found = ctx.client.search_model_versions(f"name = '{quoted}'")
    return sorted(found, key=lambda mv: int(mv.version))


def _require_version(ctx: TrackingContext, name: str, version: str) -> ModelVersion:
    exceptions = require("mlflow.exceptions", "train")
    try:
        mv: ModelVersion = ctx.client.get_model_version(name, version)
        return mv
    except exceptions.MlflowException as exc:
        if not _is_missing(exc):
            raise
    existing = ", ".join(str(mv.version) for mv in _versions(ctx, name)) or "none"
    raise RegistryError(
        f"model {name!r} has no version {version} (versions: {existing}); {_SEE_VERSIONS}"
    )


def _aliases(model: RegisteredModel) -> dict[str, str]:
    return {str(k): str(v) for k, v in (model.aliases or {}).items()}


# -- history --------------------------------------------------------------------------------


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


# -- references and bundles -----------------------------------------------------------------


def _is_registry_ref(ref: str) -> bool:
    return ref.startswith(("models:/", "@")) or _version_str_ok(ref)


def _version_str_ok(ref: str) -> bool:
    return ref.isdigit() or (ref[:1] in ("v", "V") and ref[1:].isdigit())


def parse_model_ref(ref: str, *, default_name: str | None = None) -> ModelRef:
    """Parse ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``@ALIAS`` or ``VERSION``.

    Parameters
    ----------
    ref
        The reference.
    default_name
        Model name for ``@ALIAS`` and bare version numbers.

    Raises
    ------
    RegistryError
        The reference has none of these forms, or needs a name and none is given.

    Examples
    --------
    >>> parse_model_ref("models:/wine@champion")
    ModelRef(name='wine', version=None, alias='champion')
    >>> parse_model_ref("3", default_name="wine").uri
    'models:/wine/3'
    """
    text = ref.strip()
    if text.startswith("models:/"):
        body = text.removeprefix("models:/").strip("/")
        if "@" in body:
            name, alias = body.rsplit("@", 1)
            if name and alias and "/" not in name:
                return ModelRef(name=name, alias=alias)
        elif "/" in body:
            name, version = body.rsplit("/", 1)
            if name and "/" not in name and _version_str_ok(version):
                return ModelRef(name=name, version=_version_str(version))
        raise RegistryError(f"cannot parse model reference {ref!r}; use one of: {_REF_FORMS}")
    if not default_name:
        raise RegistryError(
            f"model reference {ref!r} needs a model name; write models:/NAME"
            f"{text if text.startswith('@') else '/' + text} or set tracking.registered_model"
        )
    if text.startswith("@") and len(text) > 1:
        return ModelRef(name=default_name, alias=text[1:])
    if _version_str_ok(text):
        return ModelRef(name=default_name, version=_version_str(text))
    raise RegistryError(f"cannot parse model reference {ref!r}; use one of: {_REF_FORMS}")


def lookup_version(
    ctx: TrackingContext, ref: ModelRef | str, *, default_name: str | None = None
) -> str | None:
    """The version number ``ref`` points to, or ``None`` when the model, alias or version
    does not exist (e.g. no champion yet)."""
    exceptions = require("mlflow.exceptions", "train")
    mref = ref if isinstance(ref, ModelRef) else parse_model_ref(ref, default_name=default_name)
    try:
        model = ctx.client.get_registered_model(mref.name)
    except exceptions.MlflowException as exc:
        if _is_missing(exc):
            return None
        raise
    if mref.alias is not None:
        return _aliases(model).get(mref.alias)
    existing = {str(mv.version) for mv in _versions(ctx, mref.name)}
    return mref.version if mref.version in existing else None


def _safe(text: str) -> str:
    return re.sub(r"[^\w.\-]", "_", text)


def _download(ctx: TrackingContext, source: str, target: Path, *, reuse: bool) -> Path:
    """Download the artifact folder ``source`` to ``target`` via a temporary sibling."""
    if target.is_dir() and any(target.iterdir()):
        if reuse:
            return target
        raise RegistryError(f"{target} is not empty; choose an empty or new folder")
    artifacts = require("mlflow.artifacts", "train")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        local = Path(
            artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(tmp), tracking_uri=ctx.tracking_uri
            )
        )
        if not local.is_dir():
            raise RegistryError(f"{source} is a file, not a bundle folder")
        try:
            os.replace(local, target)
        except OSError:
            if not (reuse and target.is_dir() and any(target.iterdir())):
                raise  # else another process downloaded it first
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"could not download the bundle from {source}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_bundle(
    ctx: TrackingContext, ref: str, dst: Path | None = None, *, name: str | None = None
) -> Path:
    """A local folder holding the bundle that ``ref`` names, downloading it if needed.

    Parameters
    ----------
    ctx
        From :func:`~mlcycle.tracking.configure_tracking`.
    ref
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``@ALIAS``, a version number
        (``3`` or ``v3``), a ``runs:/RUN_ID/bundle`` URI, or a local bundle folder
        (returned as is).
    dst
        Folder to download into (must be empty or absent). Default: the cache,
        ``<project>/.mlcycle/models/<name>/v<version>-<hash of source>``, reused when
        present (a version's source never changes).
    name
        Model name for ``@ALIAS`` and version numbers; default
        ``ctx.registered_model``.

    Returns
    -------
    Path
        The folder with ``model.onnx``, ``signature.json``, ...

    Raises
    ------
    RegistryError
        Unknown model, alias or version, unparseable reference, or a failed download.
    """
    text = str(ref).strip()
    if text.startswith("runs:/"):
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        target = dst or ctx.cache_dir / "runs" / digest
        return _download(ctx, text, target, reuse=dst is None)
    if not _is_registry_ref(text):
        folder = Path(text).expanduser()
        if folder.is_dir():
            return folder.resolve()
        raise RegistryError(
            f"{ref!r} is neither a bundle folder nor a model reference ({_REF_FORMS})"
        )
    mref = parse_model_ref(text, default_name=name or ctx.registered_model)
    model = _get_model(ctx, mref.name)
    if mref.alias is not None:
        aliases = _aliases(model)
        if mref.alias not in aliases:
            known = ", ".join(f"@{a} -> v{v}" for a, v in sorted(aliases.items())) or "none"
            raise RegistryError(
                f"model {mref.name!r} has no alias @{mref.alias} (aliases: {known}); "
                f"{_SEE_VERSIONS}, or promote one with `mlcycle promote`"
            )
        version = aliases[mref.alias]
    else:
        assert mref.version is not None
        version = mref.version
    mv = _require_version(ctx, mref.name, version)
    source = str(mv.source or "")
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    target = dst or ctx.cache_dir / _safe(mref.name) / f"v{version}-{digest}"
    return _download(ctx, source, target, reuse=dst is None)
