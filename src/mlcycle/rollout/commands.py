"""``mlcycle rollout ACTION``: start, follow and steer a rollout on a running server.

The command talks to the server's admin API (:mod:`mlcycle.serve.admin`) through
:class:`~mlcycle.rollout.client.AdminClient`:

=============  ==============================================================
``start``      roll a challenger out (``--mode shadow|bluegreen|canary``)
``status``     the latest rollout: phase, state, step, weights, versions and
               the checks of its last analysis
``pause``      hold the weights; no analysis, no steps until ``resume``
``resume``     carry on; the step's bake window starts again
``promote``    the challenger takes all traffic now
``rollback``   the champion takes all traffic again now
``history``    the transitions, newest first
=============  ==============================================================

The server is ``--url`` (default: ``serve.host`` and ``serve.port`` of the project here,
else ``http://127.0.0.1:8080``). The token is read from ``--token-file``, else
``MLCYCLE_ADMIN_TOKEN``, else the project's ``serve.admin.token_file``; who acts is the
login name. Only the standard library is imported up front; rich when printing, and
MLflow only to resolve a registry reference given to ``start``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.rollout.client import AdminClient, RolloutClientError
from mlcycle.rollout.render import changed_line, render_history, render_status
from mlcycle.rollout.settings import AFTER_SHADOW, MODES

if TYPE_CHECKING:
    from mlcycle.serve.settings import ServeSettings

__all__ = [
    "ACTIONS",
    "DEFAULT_URL",
    "TOKEN_ENV",
    "add_arguments",
    "admin_token",
    "challenger_of",
    "parse_steps",
    "render_history",
    "render_status",
    "run",
    "server_url",
    "start_body",
]

#: The actions of ``mlcycle rollout`` and what they do.
ACTIONS: dict[str, str] = {
    "start": "start a rollout of a challenger model (shadow, bluegreen or canary)",
    "status": "show the rollout: phase, state, step, weights, versions, last analysis",
    "pause": "pause the rollout: the weights stay, analysis and steps stop",
    "resume": "resume a paused rollout (its step's bake window starts again)",
    "promote": "promote the challenger now: it takes all traffic",
    "rollback": "roll back now: the champion takes all traffic again",
    "history": "list the rollouts' transitions, newest first",
}
#: The server when neither ``--url`` nor a project says otherwise.
DEFAULT_URL = "http://127.0.0.1:8080"
#: The environment variable holding the admin token (the server reads the same one).
TOKEN_ENV = "MLCYCLE_ADMIN_TOKEN"


# -- arguments ---------------------------------------------------------------------------


def parse_steps(text: str) -> list[float]:
    """A ``--steps`` value (``5,25,50,100``) as percentages.

    Examples
    --------
    >>> parse_steps("5, 25,50,100")
    [5.0, 25.0, 50.0, 100.0]

    Raises
    ------
    argparse.ArgumentTypeError
        Not a comma-separated list of numbers.
    """
    try:
        steps = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        steps = []
    if not steps:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of percentages, e.g. 5,25,50,100"
        )
    return steps


def _routing_key(text: str) -> str:
    kind, _, name = text.partition(":")
    if kind not in ("header", "feature") or not name:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not header:NAME or feature:NAME (e.g. header:X-User)"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions and their options to ``parser`` (the ``rollout`` command's)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help="the server (default: serve.host and serve.port of the project here, else "
        f"{DEFAULT_URL})",
    )
    common.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"file holding the admin token (default: ${TOKEN_ENV}, else the project's "
        "serve.admin.token_file)",
    )
    common.add_argument("--json", action="store_true", help="print the server's JSON answer")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    start = sub.add_parser("start", parents=[common], help=ACTIONS["start"])
    start.add_argument("--mode", required=True, choices=MODES, help="how the challenger rolls out")
    start.add_argument(
        "--challenger",
        required=True,
        metavar="REF",
        help="the challenger: a bundle folder (its path on the server) or a registry "
        "reference (models:/NAME@ALIAS, @challenger, a version number)",
    )
    start.add_argument(
        "--version", default=None, help="the challenger's version to record (default: its own)"
    )
    start.add_argument(
        "--steps",
        type=parse_steps,
        metavar="P,P,...",
        help="canary: the challenger's percent of traffic at each step, ending at 100 "
        "(default serve.rollout.steps: 5,25,50,100)",
    )
    start.add_argument(
        "--shadow-percent",
        type=float,
        metavar="P",
        help="shadow: percent of requests mirrored to the challenger (default 100)",
    )
    start.add_argument(
        "--after-shadow",
        choices=AFTER_SHADOW,
        help="what follows a shadow rollout that passed (default canary)",
    )
    start.add_argument(
        "--bake-requests",
        type=int,
        metavar="N",
        help="challenger requests a step needs before it may be promoted",
    )
    start.add_argument(
        "--bake-seconds",
        type=float,
        metavar="S",
        help="seconds a step lasts at least before it may be promoted",
    )
    start.add_argument(
        "--key",
        type=_routing_key,
        metavar="header:NAME|feature:NAME",
        help="route sticky by this request header or feature (default: per request)",
    )
    start.add_argument(
        "--manual",
        action="store_true",
        help="no automatic analysis or steps: promote or roll back by hand",
    )
    start.add_argument("--reason", default="", help="why (kept in the rollout's history)")

    sub.add_parser("status", parents=[common], help=ACTIONS["status"])
    for action in ("pause", "resume", "promote", "rollback"):
        p = sub.add_parser(action, parents=[common], help=ACTIONS[action])
        p.add_argument("--reason", default="", help="why (kept in the rollout's history)")
    history = sub.add_parser("history", parents=[common], help=ACTIONS["history"])
    history.add_argument(
        "--limit", type=int, default=50, metavar="N", help="most transitions shown (default 50)"
    )
    history.add_argument(
        "--rollout", type=int, metavar="ID", help="only this rollout's transitions"
    )


# -- where, who, with what token -----------------------------------------------------------


class _Project:
    """The serve settings of the project here, read at most once (Hydra is slow)."""

    def __init__(self) -> None:
        self._settings: ServeSettings | None = None
        self._read = False

    def root(self) -> Path | None:
        from mlcycle.config.project import find_project_root

        root = find_project_root()
        return root if (root / "conf" / "config.yaml").is_file() else None

    def settings(self) -> ServeSettings | None:
        if not self._read:
            self._read = True
            if self.root() is not None:
                from mlcycle.serve_commands import project_serve_settings

                self._settings = project_serve_settings()
        return self._settings


def server_url(url: str | None, project_settings: ServeSettings | None = None) -> str:
    """The server's base URL: ``url``, else the project's host and port, else the default.

    Examples
    --------
    >>> server_url("http://models:9000/")
    'http://models:9000'
    >>> server_url(None)
    'http://127.0.0.1:8080'
    """
    if url:
        return url.strip().rstrip("/")
    if project_settings is None:
        return DEFAULT_URL
    host = project_settings.host.strip()
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{project_settings.port}"


def _read_token(path: Path, what: str) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise RolloutClientError(
            f"{what} {str(path)!r} cannot be read ({exc.strerror}); give a file holding the "
            f"admin token, or set {TOKEN_ENV}"
        ) from None
    if not token:
        raise RolloutClientError(f"{what} {str(path)!r} is empty; put the admin token in it")
    return token


def admin_token(
    token_file: str | None,
    project_token_file: Callable[[], Path | None] = lambda: None,
) -> str:
    """The admin token: from ``token_file``, else ``$MLCYCLE_ADMIN_TOKEN``, else the project.

    Parameters
    ----------
    token_file
        ``--token-file``; ``None``: not given.
    project_token_file
        Returns the project's ``serve.admin.token_file`` (``None`` when it sets none).

    Raises
    ------
    RolloutClientError
        No token anywhere, or a token file that cannot be read or is empty.
    """
    if token_file:
        return _read_token(Path(token_file).expanduser(), "--token-file")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = project_token_file()
    if path is not None:
        return _read_token(path, "serve.admin.token_file")
    raise RolloutClientError(
        f"no admin token: set {TOKEN_ENV} to the server's admin token, pass --token-file "
        "FILE, or set serve.admin.token_file in the project's config"
    )


def _project_token_file(project: _Project) -> Path | None:
    settings = project.settings()
    root = project.root()
    if settings is None or root is None or not settings.admin.token_file:
        return None
    path = Path(settings.admin.token_file).expanduser()
    return path if path.is_absolute() else root / path


def _user() -> str:
    try:
        return getpass.getuser() or "cli"
    except (OSError, KeyError, ImportError):  # no login name in this environment
        return "cli"


def _is_registry_ref(ref: str) -> bool:
    # The forms mlcycle.registry.refs resolves (as mlcycle.serve_commands tells them).
    text = ref.strip()
    return text.startswith(("models:/", "runs:/", "@")) or text.lstrip("vV").isdigit()


def challenger_of(ref: str, version: str | None = None) -> tuple[str, str]:
    """The challenger's bundle folder and version to send for ``--challenger REF``.

    A bundle folder is sent as its absolute path (the server checks it; the path is on
    the server's machine) with ``version`` or ``""`` (the server then uses the bundle's
    digest). A registry reference is resolved through the project's registry (this
    imports MLflow).

    Examples
    --------
    >>> challenger_of("/srv/bundles/v7", "7")
    ('/srv/bundles/v7', '7')
    """
    if not _is_registry_ref(ref):
        return os.path.abspath(os.path.expanduser(ref)), version or ""
    from mlcycle.serve_commands import resolve_model

    folder, _, resolved, _ = resolve_model(ref)
    return str(folder), version or resolved


def start_body(ns: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /admin/rollout`` body for ``mlcycle rollout start`` arguments."""
    folder, version = challenger_of(ns.challenger, ns.version)
    settings: dict[str, Any] = {}
    if ns.steps is not None:
        settings["steps"] = ns.steps
    if ns.shadow_percent is not None:
        settings["shadow_percent"] = ns.shadow_percent
    if ns.after_shadow is not None:
        settings["after_shadow"] = ns.after_shadow
    bake = {
        k: v
        for k, v in (("min_requests", ns.bake_requests), ("min_seconds", ns.bake_seconds))
        if v is not None
    }
    if bake:
        settings["bake"] = bake
    if ns.key is not None:
        settings["key"] = ns.key
    if ns.manual:
        settings["auto"] = False
    return {
        "mode": ns.mode,
        "challenger": folder,
        "version": version,
        "reason": ns.reason,
        "settings": settings,
    }


# -- running -------------------------------------------------------------------------------


def run(ns: argparse.Namespace) -> None:
    """Run ``mlcycle rollout ACTION`` with parsed arguments and print the answer.

    Raises
    ------
    RolloutClientError
        No token, no server, or the server refused (its message says why).
    """
    project = _Project()
    url = server_url(ns.url, None if ns.url else project.settings())
    token = admin_token(ns.token_file, lambda: _project_token_file(project))
    client = AdminClient(url, token, _user())
    action = ns.action
    if action == "status":
        doc = client.get("/admin/rollout")
    elif action == "start":
        doc = client.post("/admin/rollout", start_body(ns))
    elif action == "history":
        doc = client.get("/admin/rollout/history", {"limit": ns.limit, "rollout": ns.rollout})
    else:
        doc = client.post(f"/admin/rollout/{action}", {"reason": ns.reason})
    if ns.json:
        print(json.dumps(doc, indent=2))
        return
    from rich.console import Console

    console = Console()
    if action == "status":
        console.print(render_status(doc))
    elif action == "history":
        events = doc.get("events") or []
        if not events:
            console.print("no rollout transitions yet")
        else:
            console.print(render_history(events))
    else:
        console.print(changed_line(action, doc.get("rollout") or {}), highlight=False)
