"""``mlcycle serve``: find the model and the settings, then start the server.

The model is a bundle folder, or a registry reference (``models:/NAME@ALIAS``,
``@ALIAS``, a version) resolved through the project's tracking config; the default is
the registry's ``@champion``. Settings come from the ``serve`` section of the project's
config (when there is a project), then ``key=value`` overrides, then the flags.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from mlcycle.exceptions import BundleError, ConfigError, ProjectError
from mlcycle.serve.settings import ServeSettings

__all__ = ["resolve_model", "serve", "settings_from_file"]


def resolve_model(
    ref: str | None, overrides: list[str] | None = None, settings_file: Path | None = None
) -> tuple[Path, str, str, ServeSettings]:
    """The bundle folder, model name and version that ``ref`` names, and the settings.

    Parameters
    ----------
    ref
        A bundle folder or a registry reference; ``None``: ``@champion``.
    overrides
        Config overrides (``serve.port=9000``, ``tracking.uri=...``).
    settings_file
        A JSON or YAML file of ``serve`` settings used instead of the project's (see
        :func:`settings_from_file`); overrides still apply on top.

    Returns
    -------
    tuple
        ``(folder, name, version, settings)``; ``name`` and ``version`` are empty for a
        bundle folder outside the registry.
    """
    if ref and not _is_registry_ref(ref):
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            raise BundleError(
                f"bundle folder {folder} does not exist; pass a bundle folder (with "
                "model.onnx) or a registry reference such as models:/NAME@champion"
            )
        return folder.resolve(), "", "", _settings(overrides, settings_file)
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project, find_project_root

    if not (find_project_root() / "conf" / "config.yaml").is_file():
        raise ProjectError(
            f"no mlcycle project at or above {Path.cwd()} to look up {ref or '@champion'} in "
            "its registry; run inside a project (mlcycle init) or pass --model BUNDLE_FOLDER"
        )
    from mlcycle.registry.refs import lookup_version, parse_model_ref, resolve_bundle
    from mlcycle.tracking import configure_tracking

    project = Project.discover()
    cfg = to_config(compose(overrides, project=project))
    ctx = configure_tracking(cfg.tracking, project)
    text = (ref or "@champion").strip()
    path = resolve_bundle(ctx, text)
    if settings_file is not None:  # the file replaces the project's section
        serve_only = [o for o in overrides or [] if o.startswith("serve.")]
        settings = _settings(serve_only, settings_file)
    else:
        settings = cfg.serve
    if text.startswith("runs:/"):  # a run's bundle: no registered name or version
        return path, "", "", settings
    mref = parse_model_ref(text, default_name=ctx.registered_model)
    version = lookup_version(ctx, mref) or ""
    return path, mref.name, version, settings


def _is_registry_ref(ref: str) -> bool:
    # The forms mlcycle.registry.refs resolves; repeated here because importing that
    # module imports MLflow, which a bundle folder must not need.
    text = ref.strip()
    return text.startswith(("models:/", "runs:/", "@")) or text.lstrip("vV").isdigit()


def _settings(overrides: list[str] | None, settings_file: Path | None = None) -> ServeSettings:
    """The project's serve settings when there is a project, else the defaults.

    Outside a project nothing but the standard library is imported, so a server for a
    bundle folder starts without loading Hydra. A settings file replaces the project's
    section; ``serve.KEY=VALUE`` overrides apply on top of it.
    """
    from mlcycle.config.project import find_project_root

    if settings_file is not None:
        return _serve_overrides(overrides or [], base=settings_from_file(settings_file))

    root = find_project_root()
    if not (root / "conf" / "config.yaml").is_file():
        return _serve_overrides(overrides or [])
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project

    return to_config(compose(overrides, project=Project(root))).serve


def project_serve_settings(overrides: list[str] | None = None) -> ServeSettings:
    """The ``serve`` settings of the project here (the defaults outside one)."""
    return _settings(overrides)


def settings_from_file(path: Path) -> dict[str, Any]:
    """The ``serve`` settings in a JSON or YAML file, as a nested mapping.

    The file holds the section's keys (``port: 9000``, ``monitor: {...}``), or a whole
    config with a ``serve`` key. Checking the values is left to
    :meth:`ServeSettings.from_mapping`, which names any bad key.

    Parameters
    ----------
    path
        The file (``.json``, ``.yaml`` or ``.yml``).

    Returns
    -------
    dict
        The settings mapping.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, or not a mapping.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            f"serve settings file {path}: {exc.strerror or exc}; pass a JSON or YAML file "
            "of serve settings (e.g. the serve.json of `mlcycle deploy docker`)"
        ) from None
    import yaml

    try:
        doc = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"serve settings file {path} is not valid JSON or YAML: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("serve"), dict):
        doc = doc["serve"]
    if not isinstance(doc, dict):
        raise ConfigError(
            f"serve settings file {path} must hold a mapping of serve settings "
            f"(e.g. port: 9000), not {type(doc).__name__}"
        )
    return doc


def _serve_overrides(overrides: list[str], base: dict[str, Any] | None = None) -> ServeSettings:
    """Serve settings from ``serve.KEY=VALUE`` overrides (outside a project), on ``base``.

    Values are read as YAML (``true``, ``50``, ``[a, b]``), as Hydra would.
    """
    import copy

    import yaml

    tree: dict[str, Any] = copy.deepcopy(base or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("serve.") or len(key) <= len("serve."):
            raise ConfigError(
                f"override {item!r}: outside a project (conf/config.yaml) only serve.KEY=VALUE "
                "overrides apply, e.g. serve.monitor.window.every=50"
            )
        node = tree
        *parents, leaf = key[len("serve.") :].split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is set twice")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    return ServeSettings.from_mapping(tree)


def serve(
    ref: str | None,
    flags: dict[str, Any],
    overrides: list[str] | None = None,
    monitor_flags: dict[str, Any] | None = None,
    settings_file: Path | None = None,
) -> None:
    """Resolve the model and settings, apply ``flags`` (non-None values), and serve.

    ``monitor_flags`` change ``serve.monitor`` the same way. The monitor's store is
    resolved here (``monitor.db`` in the project root by default), so every worker
    writes to the same one. ``settings_file`` replaces the project's ``serve`` section.
    """
    from mlcycle.monitor.store import resolve_store
    from mlcycle.serve.server import serve as run

    path, name, version, settings = resolve_model(ref, overrides, settings_file)
    changes = {k: v for k, v in flags.items() if v is not None}
    monitor = dataclasses.replace(
        settings.monitor, **{k: v for k, v in (monitor_flags or {}).items() if v is not None}
    )
    if monitor.enabled:
        from mlcycle.monitor.watch import check_watch_settings

        monitor.store = resolve_store(monitor.store)
        check_watch_settings(monitor)
    settings = dataclasses.replace(
        settings,
        bundle=str(path),
        model_name=settings.model_name or name,
        model_version=settings.model_version or version,
        monitor=monitor,
        **changes,
    )
    run(settings)
