"""Reading the registry: registered models, their versions and aliases.

The lookups here turn MLflow's "does not exist" into a :class:`RegistryError` that says
what does exist; the other registry modules share them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcycle._optional import require
from mlcycle.exceptions import RegistryError
from mlcycle.tracking import TrackingContext

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

__all__ = ["list_models"]

_SEE_VERSIONS = "run `mlcycle models` to see versions"


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
