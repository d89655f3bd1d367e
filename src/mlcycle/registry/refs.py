"""References to registered versions, and the local bundle folders they resolve to.

A reference is ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``@ALIAS``, a version
number, a ``runs:/`` URI or a bundle folder; registered bundles are downloaded to a cache
in the project.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlcycle._optional import require
from mlcycle.exceptions import RegistryError
from mlcycle.registry.models import (
    _SEE_VERSIONS,
    _aliases,
    _get_model,
    _is_missing,
    _require_version,
    _version_str,
    _versions,
)
from mlcycle.tracking import TrackingContext

__all__ = ["ModelRef", "lookup_version", "parse_model_ref", "resolve_bundle"]

_REF_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, @ALIAS, a version number or a folder"


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
    # MLflow draws a progress bar per download; a bundle is a few small files, and the bar
    # would clutter `mlcycle serve` and `mlcycle rollout start` (set the variable to see it).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
