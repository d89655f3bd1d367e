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
``POST /admin/feedback``                        import true labels from a CSV body
                                                (``text/csv``: ``request_id``, ``label``,
                                                ``row``), as ``mlcycle feedback import``;
                                                ``?overwrite=true``, ``?skip_invalid=true``
``GET /admin/automation``                       the live automation mode and threshold
``POST /admin/automation``                      set them: ``{"mode", "threshold"}``
                                                (:mod:`mlcycle.serve.review_routes`)
==============================================  ==========================================

The token comes from ``MLCYCLE_ADMIN_TOKEN`` or the file ``serve.admin.token_file``;
with neither the admin API is disabled (403), never open. A missing or wrong token gets
401 with ``WWW-Authenticate: Bearer``, and the attempt is logged with the caller's address;
the reviewers' token (``serve.automation.reviewer_token_file``) gets 403.
Who acted is the ``X-Admin-User`` header (``mlcycle rollout`` sends the login name), else
``admin-api``; it is recorded with every transition.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle.exceptions import ConfigError
from mlcycle.serve.errors import RequestError, body_too_large, error_body
from mlcycle.serve.protocols import media_type

if TYPE_CHECKING:
    from mlcycle.serve.app import ServerState
    from mlcycle.serve.settings import ServeSettings

__all__ = ["MAX_ROLLOUT_ID", "TOKEN_ENV", "admin_routes", "admin_token"]

log = logging.getLogger("mlcycle.serve.admin")

#: The environment variable holding the admin token.
TOKEN_ENV = "MLCYCLE_ADMIN_TOKEN"
_MAX_BODY = 64 * 1024
#: The largest rollout id (a 64-bit integer column).
MAX_ROLLOUT_ID = 2**63 - 1

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
    from mlcycle.serve.review_routes import automation_routes

    return [
        *automation_routes(route, _guard),
        route("/admin/rollout", _guard(_rollout_status), "GET"),
        route("/admin/rollout", _guard(_rollout_start), "POST"),
        route("/admin/rollout/history", _guard(_rollout_history), "GET"),
        route("/admin/rollout/{action}", _guard(_rollout_action), "POST"),
        route("/admin/reload", _guard(_reload), "POST"),
        route("/admin/feedback", _guard(_feedback_import), "POST"),
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
    reviewer = state.reviewer_token
    if not ok and reviewer and hmac.compare_digest(given.strip().encode(), reviewer.encode()):
        raise RequestError(
            403,
            "forbidden",
            f"this is the reviewers' token; {request.url.path} needs the admin token "
            f"({TOKEN_ENV} on the server)",
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
    if rollout_id is not None and not 1 <= rollout_id <= MAX_ROLLOUT_ID:
        raise RequestError(
            400, "invalid_query", f"rollout must be an id from 1 to {MAX_ROLLOUT_ID}", "query"
        )
    events = await run_in_threadpool(
        lambda: controller.history(limit=max(1, min(limit, 10_000)), rollout_id=rollout_id)
    )
    return _reply({"events": events})


async def _reload(request: Request, state: ServerState, rid: str) -> Response:
    who = _who(request)
    doc = await run_in_threadpool(lambda: state.reload(who))
    log.warning("admin: %s reloaded the champion (version %s)", who, doc["version"])
    return _reply(doc)


# -- feedback import --------------------------------------------------------------------

#: Content types ``POST /admin/feedback`` takes.
_CSV_TYPES = ("text/csv", "application/csv")
# How long an import waits for this worker's monitors to write the predictions they hold;
# then, on an unknown prediction, it tries this many times, other_workers_wait apart.
_FLUSH_SECONDS = 15.0
_RETRIES = 3


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise RequestError(
        400, "invalid_query", f"{name} must be true or false, not {value[:40]!r}", "query"
    )


async def _csv_body(request: Request, limit: int) -> str:
    """The request's CSV text (415 for another content type, 413 over ``limit`` bytes)."""
    kind = media_type(request.headers.get("content-type"))
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    compressed = encoding not in ("", "identity")
    if kind not in _CSV_TYPES or compressed:
        got = f"{encoding}-encoded {kind or 'data'}" if compressed else kind or "none"
        raise RequestError(
            415,
            "unsupported_media_type",
            f"/admin/feedback takes an uncompressed CSV body (Content-Type text/csv), not {got}",
            "Content-Type",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise body_too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(size, limit)
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(
            400, "invalid_csv", f"the body is not UTF-8 text: {exc}", "body"
        ) from None


async def _feedback_import(request: Request, state: ServerState, rid: str) -> Response:
    """``POST /admin/feedback``: a CSV of true labels, stored as ``mlcycle feedback import``."""
    from mlcycle.exceptions import DataError
    from mlcycle.monitor.feedback import FeedbackError, import_feedback_text
    from mlcycle.serve.app import _FEEDBACK_CODES, other_workers_wait, require_monitor

    require_monitor(state)
    overwrite, skip_invalid = _flag(request, "overwrite"), _flag(request, "skip_invalid")
    text = await _csv_body(request, state.settings.validation.max_body_bytes)
    engine, classes, who = state.store_engine(), state.model.classes, _who(request)

    def store() -> Any:
        def attempt() -> Any:
            return import_feedback_text(
                engine, text, classes=classes, overwrite=overwrite,
                skip_invalid=skip_invalid, source=f"import:{who}", what="the CSV body",
            )  # fmt: skip

        # The predictions may still be on their way to the store: let this worker's monitors
        # write what they hold first (with skip_invalid an unknown one is not an error).
        for monitor in state.monitors():
            monitor.flush(_FLUSH_SECONDS)
        for tries in range(_RETRIES):
            try:
                return attempt()
            except FeedbackError as exc:  # other workers' monitors may still be writing
                if exc.status != 404 or tries == _RETRIES - 1:
                    raise
            time.sleep(other_workers_wait(state.settings.monitor))
        raise AssertionError("unreachable")

    try:
        result = await run_in_threadpool(store)
    except DataError as exc:
        raise RequestError(400, "invalid_csv", str(exc), "body") from None
    except FeedbackError as exc:
        doc = error_body(str(exc), _FEEDBACK_CODES.get(exc.status, "invalid"), None)
        doc["problems"] = exc.problems
        return _reply(doc, exc.status)
    for monitor in state.monitors():
        await run_in_threadpool(monitor.ask, "feedback", timeout=2.0)
    log.warning(
        "admin: %s imported feedback: %d stored, %d replaced, %d unchanged, %d rejected",
        who, result.stored, result.replaced, result.unchanged, len(result.rejected),
    )  # fmt: skip
    return _reply(result.to_dict())
