"""The admin API: rollouts and reload, behind a bearer token.

==============================================  ==========================================
``GET /admin/rollout``                          the latest rollout, this worker's arms
                                                and weights
``POST /admin/rollout``                         start one: ``{"mode", "challenger":
                                                BUNDLE_FOLDER, "version", "reason",
                                                "settings": {steps, bake, ...}}`` (201)
``POST /admin/rollout/{action}``                ``pause | resume | promote | rollback``,
                                                ``{"reason": ...}``
``GET /admin/rollout/history``                  transitions, newest first (``?limit=``,
                                                ``?rollout=ID``)
``POST /admin/reload``                          load the champion's bundle folder again
==============================================  ==========================================

The token comes from ``MLCYCLE_ADMIN_TOKEN`` or the file ``serve.admin.token_file``;
with neither the admin API is disabled (403), never open. A missing or wrong token gets
401 with ``WWW-Authenticate: Bearer``, and the attempt is logged with the caller's address.
Who acted is the ``X-Admin-User`` header (``mlcycle rollout`` sends the login name), else
``admin-api``; it is recorded with every transition.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle.exceptions import ConfigError
from mlcycle.serve.errors import RequestError

if TYPE_CHECKING:
    from mlcycle.serve.app import ServerState
    from mlcycle.serve.settings import ServeSettings

__all__ = ["TOKEN_ENV", "admin_routes", "admin_token"]

log = logging.getLogger("mlcycle.serve.admin")

#: The environment variable holding the admin token.
TOKEN_ENV = "MLCYCLE_ADMIN_TOKEN"
_MAX_BODY = 64 * 1024

Handler = Callable[[Request, "ServerState", str], Awaitable[Response]]
RouteFactory = Callable[[str, Handler, str], Route]


def admin_token(settings: ServeSettings) -> str | None:
    """The admin token: ``MLCYCLE_ADMIN_TOKEN``, else the token file; ``None``: disabled.

    Raises
    ------
    ConfigError
        ``serve.admin.token_file`` is set but cannot be read, or is empty.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = settings.admin.token_file
    if not path:
        return None
    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"serve.admin.token_file {path!r} cannot be read ({exc.strerror}); give a file "
            f"holding the admin token, or set {TOKEN_ENV}"
        ) from None
    if not token:
        raise ConfigError(f"serve.admin.token_file {path!r} is empty; put the admin token in it")
    return token


def admin_routes(route: RouteFactory) -> list[Route]:
    """The admin routes, each behind :func:`_authorised`, made with ``route``."""
    return [
        route("/admin/rollout", _guard(_rollout_status), "GET"),
        route("/admin/rollout", _guard(_rollout_start), "POST"),
        route("/admin/rollout/history", _guard(_rollout_history), "GET"),
        route("/admin/rollout/{action}", _guard(_rollout_action), "POST"),
        route("/admin/reload", _guard(_reload), "POST"),
    ]


def _guard(handler: Handler) -> Handler:
    async def guarded(request: Request, state: ServerState, rid: str) -> Response:
        _authorised(request, state)
        return await handler(request, state, rid)

    return guarded


def _authorised(request: Request, state: ServerState) -> None:
    expected = state.admin_token
    if expected is None:
        raise RequestError(
            403,
            "admin_disabled",
            f"the admin API is disabled on this server: start it with {TOKEN_ENV} set (or "
            "serve.admin.token_file) to enable it",
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )
    if not ok:
        client = request.client.host if request.client else "unknown"
        why = "no bearer token" if not header else "a wrong token"
        log.warning(
            "admin: refused %s %s from %s: %s", request.method, request.url.path, client, why
        )
        raise RequestError(
            401,
            "unauthorized",
            f"{request.url.path} needs the admin token: send 'Authorization: Bearer <token>' "
            f"(the value of {TOKEN_ENV} on the server); this request had {why}",
        )


def _who(request: Request) -> str:
    return (request.headers.get("x-admin-user") or "admin-api").strip()[:100] or "admin-api"


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise RequestError(413, "body_too_large", f"admin requests take at most {_MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError(422, "wrong_shape", "the body must be a JSON object")
    return doc


def _controller(state: ServerState) -> Any:
    if state.rollouts is None:
        raise RequestError(
            409,
            "monitoring_off",
            "rollouts need the prediction log (their evidence); this server runs with "
            "--no-monitor: start it without that flag",
        )
    return state.rollouts


def _reply(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


async def _call(fn: Callable[[], Any]) -> Any:
    from mlcycle.rollout.state import RolloutError

    try:
        return await run_in_threadpool(fn)
    except RolloutError as exc:
        code = {404: "no_rollout", 409: "conflict", 422: "invalid_rollout"}.get(
            exc.status, "rollout_error"
        )
        raise RequestError(exc.status, code, str(exc)) from None


async def _rollout_status(request: Request, state: ServerState, rid: str) -> Response:
    controller = _controller(state)
    return _reply(await run_in_threadpool(controller.status))


async def _rollout_start(request: Request, state: ServerState, rid: str) -> Response:
    controller = _controller(state)
    doc = await _json_body(request)
    unknown = sorted(set(doc) - {"mode", "challenger", "version", "reason", "settings"})
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            f"unknown field {unknown[0]!r}; a rollout takes mode, challenger, version, reason "
            "and settings",
            unknown[0],
        )
    mode, bundle = doc.get("mode"), doc.get("challenger")
    if not isinstance(mode, str) or not isinstance(bundle, str) or not bundle:
        raise RequestError(
            422,
            "missing_field",
            'a rollout needs "mode" (shadow, bluegreen or canary) and "challenger" (the '
            "challenger's bundle folder on the server)",
            "mode" if not isinstance(mode, str) else "challenger",
        )
    settings = doc.get("settings") or {}
    if not isinstance(settings, dict):
        raise RequestError(422, "wrong_type", "settings must be an object", "settings")
    who = _who(request)
    r = await _call(
        lambda: controller.begin(
            mode=mode,
            bundle=bundle,
            version=str(doc.get("version") or ""),
            overrides=settings,
            who=who,
            reason=str(doc.get("reason") or ""),
        )
    )
    log.warning("admin: %s started rollout %d (%s of %s)", who, r.id, mode, r.challenger_version)
    return _reply({"rollout": r.to_dict()}, 201)


async def _rollout_action(request: Request, state: ServerState, rid: str) -> Response:
    controller = _controller(state)
    action = request.path_params["action"]
    doc = await _json_body(request)
    who = _who(request)
    r = await _call(lambda: controller.act(action, who=who, reason=str(doc.get("reason") or "")))
    log.warning("admin: %s: %s rollout %d", who, action, r.id)
    return _reply({"rollout": r.to_dict()})


async def _rollout_history(request: Request, state: ServerState, rid: str) -> Response:
    controller = _controller(state)
    try:
        limit = int(request.query_params.get("limit", "100"))
        rollout = request.query_params.get("rollout")
        rollout_id = int(rollout) if rollout else None
    except ValueError:
        raise RequestError(
            400, "invalid_query", "limit and rollout must be whole numbers", "query"
        ) from None
    events = await run_in_threadpool(
        lambda: controller.history(limit=max(1, min(limit, 10_000)), rollout_id=rollout_id)
    )
    return _reply({"events": events})


async def _reload(request: Request, state: ServerState, rid: str) -> Response:
    who = _who(request)
    doc = await run_in_threadpool(lambda: state.reload(who))
    log.warning("admin: %s reloaded the champion (version %s)", who, doc["version"])
    return _reply(doc)
