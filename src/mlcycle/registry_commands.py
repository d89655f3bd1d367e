"""``mlcycle models | promote | rollback``: the registry from the command line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.config.structured import Config
from mlcycle.tracking import TrackingContext, configure_tracking

__all__ = ["promote", "rollback", "show_models"]


def _context(overrides: list[str] | None) -> tuple[Config, TrackingContext]:
    project = Project.discover()
    cfg = to_config(compose(overrides, project=project))
    return cfg, configure_tracking(cfg.tracking, project)


def show_models(*, name: str | None = None, overrides: list[str] | None = None) -> None:
    """Print the versions of a registered model and its promotion history."""
    from mlcycle import registry

    cfg, ctx = _context(overrides)
    name = name or cfg.tracking.registered_model
    console = Console()
    versions = registry.list_versions(ctx, name)
    if not versions:
        console.print(f"no registered versions of '{name}' yet; run `mlcycle train`")
        return
    console.print(registry.render_versions_table(versions, title=f"registered model '{name}'"))
    events = registry.history(ctx, name)
    if events:
        table = Table(title="promotion history")
        for col in ("time", "action", "from", "to", "by", "reason"):
            table.add_column(col)
        for e in events:
            table.add_row(
                e.time,
                e.action,
                str(e.from_version or "-"),
                str(e.to_version or "-"),
                e.user or "-",
                e.reason or "",
            )
        console.print(table)


def promote(
    version: str,
    *,
    reason: str = "",
    name: str | None = None,
    overrides: list[str] | None = None,
) -> None:
    """Move the ``champion`` alias to ``version``."""
    from mlcycle import registry

    cfg, ctx = _context(overrides)
    name = name or cfg.tracking.registered_model
    event = registry.promote(ctx, name, version, reason=reason)
    print(
        f"{name}: champion is now version {event.to_version} (was {event.from_version or 'none'})"
    )


def rollback(
    *, reason: str = "", name: str | None = None, overrides: list[str] | None = None
) -> None:
    """Move ``champion`` back to the previous champion."""
    from mlcycle import registry

    cfg, ctx = _context(overrides)
    name = name or cfg.tracking.registered_model
    event = registry.rollback(ctx, name, reason=reason)
    print(
        f"{name}: rolled back champion from version {event.from_version} "
        f"to version {event.to_version}"
    )
