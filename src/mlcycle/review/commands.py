"""``mlcycle automation ACTION``: see and set a running server's degree of automation.

=============  ==================================================================
``status``     the live mode and threshold, who set them and when
``set``        ``--mode human_only|shadow|assist|partial|full [--threshold T]``
``calibrate``  pick partial mode's threshold for a target precision
               (:mod:`mlcycle.review.calibrate_command`)
=============  ==================================================================

``status`` and ``set`` talk to the server's admin API (``/admin/automation``) through
:class:`~mlcycle.rollout.client.AdminClient`, finding the server and the token as
``mlcycle rollout`` does: ``--url`` (default: the project's ``serve.host`` and
``serve.port``, else ``http://127.0.0.1:8080``) and ``--token-file``, else
``MLCYCLE_ADMIN_TOKEN``, else the project's ``serve.admin.token_file``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from mlcycle.review.settings import AUTOMATION_MODES

__all__ = ["ACTIONS", "automation_command", "describe"]

#: The actions of ``mlcycle automation`` and what they do.
ACTIONS: dict[str, str] = {
    "status": "show the server's live automation mode and threshold",
    "set": "set the automation mode (and partial mode's threshold) on a running server",
    "calibrate": "pick partial mode's threshold for a target precision",
}


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlcycle automation",
        description="how far a running server's answers are left to the model",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help="the server (default: serve.host and serve.port of the project here)"
    )
    common.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the admin token (default: $MLCYCLE_ADMIN_TOKEN, else the "
        "project's serve.admin.token_file)",
    )
    common.add_argument("--json", action="store_true", help="print the server's JSON answer")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("status", parents=[common], help=ACTIONS["status"])
    change = sub.add_parser("set", parents=[common], help=ACTIONS["set"])
    change.add_argument("--mode", required=True, choices=AUTOMATION_MODES, help="the new mode")
    change.add_argument(
        "--threshold",
        type=_threshold,
        metavar="T",
        help="partial mode: rows whose top probability is at least T are answered "
        "automatically (default: keep the current one)",
    )
    sub.add_parser("calibrate", help=ACTIONS["calibrate"], add_help=False)
    return parser


def describe(doc: dict[str, Any]) -> str:
    """One line or two about an ``/admin/automation`` answer.

    Examples
    --------
    >>> describe({"mode": "full", "threshold": 0.9, "source": "config"})
    'automation mode full (from the config; never set through the admin API)'
    """
    mode, threshold = doc.get("mode"), doc.get("threshold")
    text = f"automation mode {mode}"
    if mode == "partial":
        text += f", threshold {threshold:g}"
    if doc.get("source") == "store":
        when = doc.get("updated_at")
        stamp = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S") if when else "?"
        text += (
            f" (set by {doc.get('updated_by') or '?'} at {stamp}, revision {doc.get('revision')})"
        )
    else:
        text += " (from the config; never set through the admin API)"
    worker = doc.get("worker") or {}
    if worker and worker.get("mode") != mode:
        text += (
            f"\nthe worker that answered still uses {worker.get('mode')}; it follows within "
            "a second"
        )
    return text


def automation_command(rest: list[str]) -> None:
    """Run ``mlcycle automation ACTION ...`` (``rest``: the arguments after ``automation``).

    ``calibrate`` is handed to :func:`mlcycle.review.calibrate_command.calibrate_command`
    with the arguments after it.

    Raises
    ------
    mlcycle.rollout.client.RolloutClientError
        No token, no server, or the server refused (its message says why).
    """
    if rest and rest[0] == "calibrate":
        from mlcycle.review.calibrate_command import calibrate_command

        calibrate_command(rest[1:])
        return
    ns = _parser().parse_args(rest)
    from mlcycle.rollout.client import AdminClient
    from mlcycle.rollout.commands import (
        _Project,
        _project_token_file,
        _user,
        admin_token,
        server_url,
    )

    project = _Project()
    url = server_url(ns.url, None if ns.url else project.settings())
    token = admin_token(ns.token_file, lambda: _project_token_file(project))
    client = AdminClient(url, token, _user())
    if ns.action == "set":
        doc = client.set_automation(ns.mode, ns.threshold)
    else:
        doc = client.automation()
    if ns.json:
        print(json.dumps(doc, indent=2))
    else:
        print(describe(doc))
