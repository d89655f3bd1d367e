"""Rolling a new challenger out: the admin API call, or the command that makes it.

A retraining that passed leaves a registered version with the alias ``challenger``;
``retrain.rollout_mode`` says how it replaces the champion on a running server (its steps,
bake time and analysis are the server's ``serve.rollout`` settings). Standard library only.
"""

from __future__ import annotations

import shlex
from typing import Any

from mlcycle.exceptions import MlcycleError
from mlcycle.retrain.store import Retrain
from mlcycle.rollout.client import AdminClient

__all__ = ["rollout_body", "rollout_command", "start_rollout"]


def _require_passed(retrain: Retrain) -> tuple[str, str]:
    if retrain.state != "passed" or not retrain.version or not retrain.bundle:
        raise MlcycleError(
            f"retrain {retrain.id} is {retrain.state} and registered no challenger; only a "
            "retrain that passed its gate can be rolled out"
        )
    return retrain.version, retrain.bundle


def _reason(retrain: Retrain) -> str:
    return f"retrain {retrain.id} of v{retrain.parent_version}"


def rollout_body(retrain: Retrain, mode: str) -> dict[str, Any]:
    """The ``POST /admin/rollout`` body that rolls ``retrain``'s new version out.

    The challenger is the version's bundle folder on this machine (the server must
    reach the same path, as for ``mlcycle rollout start --challenger FOLDER``).

    Examples
    --------
    >>> r = Retrain(3, "wine", "passed", "manual", "ana", 0.0, version="4", bundle="/b/4")
    >>> rollout_body(r, "canary")["challenger"]
    '/b/4'
    """
    version, bundle = _require_passed(retrain)
    return {
        "mode": mode,
        "challenger": bundle,
        "version": version,
        "reason": _reason(retrain),
        "settings": {},
    }


def rollout_command(retrain: Retrain, mode: str, url: str | None = None) -> str:
    """The ``mlcycle rollout start`` command that rolls ``retrain``'s new version out.

    Examples
    --------
    >>> r = Retrain(3, "wine", "passed", "manual", "ana", 0.0, version="4", bundle="/b/4",
    ...             parent_version="2")
    >>> print(rollout_command(r, "canary"))
    mlcycle rollout start --mode canary --challenger models:/wine/4 --reason 'retrain 3 of v2'
    """
    version, _ = _require_passed(retrain)
    args = ["mlcycle", "rollout", "start"]
    if url:
        args += ["--url", url]
    args += [
        "--mode",
        mode,
        "--challenger",
        f"models:/{retrain.model_name}/{version}",
        "--reason",
        _reason(retrain),
    ]
    return shlex.join(args)


def start_rollout(client: AdminClient, retrain: Retrain, mode: str) -> dict[str, Any]:
    """Start the rollout of ``retrain``'s new version on the server ``client`` talks to.

    Returns
    -------
    dict
        The rollout the server started (``id``, ``mode``, ``phase``, ...).

    Raises
    ------
    mlcycle.rollout.client.RolloutClientError
        No server, a refused token, or the server refused (e.g. a rollout is active).
    """
    doc = client.post("/admin/rollout", rollout_body(retrain, mode))
    rollout = doc.get("rollout")
    return rollout if isinstance(rollout, dict) else {}
