"""Move registry aliases after a rollout: ``python -m mlcycle.rollout.registry_sync``.

The server must not import MLflow (it is heavy, and the serving path stays light), so
when a rollout it runs is promoted or rolled back, it starts this module in a process
of its own, in the project the server was started from:

* ``promote NAME VERSION REASON``: ``champion`` moves to ``VERSION`` (and the
  ``challenger`` alias, when it pointed there, is removed), recorded in the registry's
  history;
* ``reject NAME VERSION REASON``: the ``challenger`` alias is removed when it points to
  ``VERSION``, so the rolled-back version is not picked up again.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["is_registry_version", "main", "sync_in_background"]

log = logging.getLogger("mlcycle.rollout")


def is_registry_version(version: str) -> bool:
    """Whether ``version`` is a registry version number (a bundle digest is not).

    Examples
    --------
    >>> is_registry_version("3"), is_registry_version("3cc4f590b369")
    (True, False)
    """
    return version.isdigit()


def sync_in_background(action: str, name: str, version: str, reason: str, cwd: Path) -> bool:
    """Start ``python -m mlcycle.rollout.registry_sync ACTION ...`` in ``cwd``.

    Returns ``False`` (nothing started) when ``cwd`` is not inside an mlcycle project or
    ``version`` is not a registry version: a server of a bundle folder has no registry.
    """
    from mlcycle.config.project import find_project_root

    root = find_project_root(cwd)
    if not is_registry_version(version) or not (root / "conf" / "config.yaml").is_file():
        log.info("rollout: %s of %s %s: no registry here, aliases not moved", action, name, version)
        return False
    subprocess.Popen(
        [sys.executable, "-m", "mlcycle.rollout.registry_sync", action, name, version, reason],
        cwd=root,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 4 or args[0] not in ("promote", "reject"):
        print("usage: python -m mlcycle.rollout.registry_sync promote|reject NAME VERSION REASON")
        return 2
    action, name, version, reason = args
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project
    from mlcycle.registry.versions import CHALLENGER, promote
    from mlcycle.tracking import configure_tracking

    project = Project.discover()
    ctx = configure_tracking(to_config(compose(None, project=project)).tracking, project)
    try:
        if action == "promote":
            event = promote(ctx, name, version, reason=reason, user="mlcycle-rollout")
            print(f"registry: {name} champion is now version {event.to_version}")
        else:
            aliases = ctx.client.get_registered_model(name).aliases
            if str(aliases.get(CHALLENGER)) == version:
                ctx.client.delete_registered_model_alias(name, CHALLENGER)
                print(f"registry: {name} version {version} is no longer the challenger")
    except Exception as exc:
        print(f"registry: {action} {name} {version} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
