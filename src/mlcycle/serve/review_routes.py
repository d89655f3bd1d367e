"""The review queue over HTTP: the caller's poll, the reviewer API, the page, the mode.

==========================================  ==============================================
``GET /reviews/{review_id}``                the caller's poll: ``state``, ``label``,
                                            ``decided_by``, ``decided_at`` (no token:
                                            the unguessable id is the key)
``GET /review``                             the review web page (HTML)
``GET /review/api/items``                   ``?state=&limit=&offset=`` → ``{"items",
                                            "counts"}``
``GET /review/api/items/{review_id}``       one item, its ``classes`` and ``events``
``POST /review/api/items/{review_id}``      ``{"action": "label"|"skip"|"escalate",
                                            "label", "reviewer", "note"}``
``GET /review/api/next``                    the next pending item (``?exclude=id,id``);
                                            204 when the queue is empty
``GET /review/api/stats``                   automation rate, agreement, per mode
``GET /admin/automation``                   the live mode (admin token)
``POST /admin/automation``                  ``{"mode", "threshold"}`` (admin token)
==========================================  ==============================================

The reviewer API (``/review/api/...``) takes ``Authorization: Bearer <token>`` with the
token of the file ``serve.automation.reviewer_token_file`` or the admin token; with neither
configured it is open to anyone who can reach the server. A missing or wrong token gets
401. An item shows the model's suggestion, confidence and probabilities only in the modes
that show them (assist, partial); in shadow mode people decide blind.
"""

from __future__ import annotations

import hmac
import logging
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
    from mlcycle.review.queue import ReviewItem
    from mlcycle.serve.app import ServerState
    from mlcycle.serve.automation import Automation
    from mlcycle.serve.settings import ServeSettings

__all__ = ["automation_routes", "review_routes", "reviewer_token"]

log = logging.getLogger("mlcycle.serve.review")

Handler = Callable[[Request, "ServerState", str], Awaitable[Response]]
RouteFactory = Callable[[str, Handler, str], Route]

_MAX_EXCLUDE = 1000
_DECISION_FIELDS = ("action", "label", "reviewer", "note")
_CODES = {404: "unknown_review", 409: "conflict", 422: "invalid_decision"}


def reviewer_token(settings: ServeSettings) -> str | None:
    """The reviewer token from ``serve.automation.reviewer_token_file``; ``None``: unset.

    Raises
    ------
    ConfigError
        The file is set but cannot be read, or is empty.
    """
    path = settings.automation.reviewer_token_file
    if not path:
        return None
    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"serve.automation.reviewer_token_file {path!r} cannot be read ({exc.strerror}); "
            "give a file holding the reviewers' token"
        ) from None
    if not token:
        raise ConfigError(
            f"serve.automation.reviewer_token_file {path!r} is empty; put the reviewers' "
            "token in it"
        )
    return token


def review_routes(route: RouteFactory) -> list[Route]:
    """The poll, the page and the reviewer API, made with ``route``."""
    return [
        route("/reviews/{review_id}", _poll, "GET"),
        route("/review", _page, "GET"),
        route("/review/api/items", _reviewer(_items), "GET"),
        route("/review/api/items/{review_id}", _reviewer(_item), "GET"),
        route("/review/api/items/{review_id}", _reviewer(_decide), "POST"),
        route("/review/api/next", _reviewer(_next), "GET"),
        route("/review/api/stats", _reviewer(_stats), "GET"),
    ]


def automation_routes(route: RouteFactory, guard: Callable[[Handler], Handler]) -> list[Route]:
    """``GET`` and ``POST /admin/automation``, behind ``guard`` (the admin token)."""
    return [
        route("/admin/automation", guard(_automation_status), "GET"),
        route("/admin/automation", guard(_automation_set), "POST"),
    ]


# -- plumbing ----------------------------------------------------------------------------


def _reviewer(handler: Handler) -> Handler:
    async def guarded(request: Request, state: ServerState, rid: str) -> Response:
        _authorised(request, state)
        return await handler(request, state, rid)

    return guarded


def _authorised(request: Request, state: ServerState) -> None:
    tokens = [t for t in (state.reviewer_token, state.admin_token) if t]
    if not tokens:
        return  # no token configured: open (logged at start)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    supplied = given.strip().encode()
    ok = scheme.lower() == "bearer" and any(
        hmac.compare_digest(supplied, t.encode()) for t in tokens
    )
    if not ok:
        client = request.client.host if request.client else "unknown"
        why = "no bearer token" if not header else "a wrong token"
        log.warning(
            "review: refused %s %s from %s: %s", request.method, request.url.path, client, why
        )
        raise RequestError(
            401,
            "unauthorized",
            f"{request.url.path} needs the reviewer token: send 'Authorization: Bearer <token>' "
            "(the content of serve.automation.reviewer_token_file on the server, or the admin "
            f"token); this request had {why}",
        )


def _automation(state: ServerState) -> Automation:
    if state.automation is None:
        raise RequestError(
            503,
            "monitoring_off",
            "this server has no review queue: it runs with --no-monitor, and the queue lives "
            "in the monitoring store; start it without that flag",
            "path",
        )
    return state.automation


async def _store(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a worker thread; its errors as answers (503: the store is down)."""
    from sqlalchemy.exc import SQLAlchemyError

    from mlcycle.review.queue import ReviewError

    try:
        return await run_in_threadpool(fn)
    except ReviewError as exc:
        raise RequestError(exc.status, _CODES.get(exc.status, "review_error"), str(exc)) from None
    except SQLAlchemyError as exc:
        log.error("review: the store failed: %s", exc)
        raise RequestError(
            503,
            "review_queue_unavailable",
            "the review queue (the monitoring store) cannot be reached right now; try again",
        ) from None


def _reply(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


def _whole_number(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise RequestError(
            400, "invalid_query", f"{name} must be a whole number from {low} to {high}", "query"
        )
    return value


def _full(item: ReviewItem, state: ServerState, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {**item.for_reviewer(), "classes": list(state.model.classes), "events": events}


# -- the caller's poll and the page -------------------------------------------------------


async def _poll(request: Request, state: ServerState, rid: str) -> Response:
    queue = _automation(state).queue
    review_id = request.path_params["review_id"]
    item = await _store(lambda: queue.get(review_id))
    return _reply(item.poll())


async def _page(request: Request, state: ServerState, rid: str) -> Response:
    from mlcycle.review.page import review_page

    page = review_page()
    return Response(page, 200, media_type="text/html; charset=utf-8")


# -- the reviewer API ------------------------------------------------------------------------


async def _items(request: Request, state: ServerState, rid: str) -> Response:
    queue = _automation(state).queue
    wanted = request.query_params.get("state")  # (an empty one is no state: 422)
    limit = _whole_number(request, "limit", 50, 1, 1000)
    offset = _whole_number(request, "offset", 0, 0, 10**9)

    def read() -> dict[str, Any]:
        items = queue.list(wanted, limit, offset)
        return {"items": [i.for_reviewer() for i in items], "counts": queue.counts()}

    return _reply(await _store(read))


async def _item(request: Request, state: ServerState, rid: str) -> Response:
    queue = _automation(state).queue
    review_id = request.path_params["review_id"]

    def read() -> dict[str, Any]:
        item = queue.get(review_id)
        return _full(item, state, queue.events(review_id))

    return _reply(await _store(read))


async def _next(request: Request, state: ServerState, rid: str) -> Response:
    queue = _automation(state).queue
    exclude = [i.strip() for i in request.query_params.get("exclude", "").split(",") if i.strip()]
    if len(exclude) > _MAX_EXCLUDE:
        raise RequestError(
            400, "invalid_query", f"exclude takes at most {_MAX_EXCLUDE} review ids", "query"
        )

    def read() -> dict[str, Any] | None:
        item = queue.next(exclude)
        return None if item is None else _full(item, state, queue.events(item.review_id))

    doc = await _store(read)
    return Response(status_code=204) if doc is None else _reply(doc)


async def _decide(request: Request, state: ServerState, rid: str) -> Response:
    from mlcycle.serve.admin import _json_body

    automation = _automation(state)
    review_id = request.path_params["review_id"]
    doc = await _json_body(request)
    unknown = sorted(set(doc) - set(_DECISION_FIELDS))
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            f"unknown field {unknown[0]!r}; a decision takes {', '.join(_DECISION_FIELDS)}",
            unknown[0],
        )
    for name in _DECISION_FIELDS:
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise RequestError(422, "wrong_type", f"{name} must be a string", name)
    reviewer = (doc.get("reviewer") or "").strip()
    if not reviewer:
        raise RequestError(
            422,
            "missing_reviewer",
            'a decision needs "reviewer": the name of the person deciding (kept with it)',
            "reviewer",
        )
    action = doc.get("action") or ""
    queue, classes = automation.queue, state.model.classes

    def decide() -> dict[str, Any]:
        item = queue.decide(
            review_id, action, reviewer, doc.get("label"), doc.get("note") or "", classes=classes
        )
        return {"item": item, "doc": _full(item, state, queue.events(review_id))}

    done = await _store(decide)
    item: ReviewItem = done["item"]
    metrics = state.metrics
    metrics.review_decisions.labels(action).inc()
    if action == "label" and item.suggestion is not None:
        metrics.review_agreement.labels(str(item.suggestion == item.label).lower()).inc()
    if item.notify_due is not None:
        automation.notifier.notify(review_id)
    return _reply(done["doc"])


async def _stats(request: Request, state: ServerState, rid: str) -> Response:
    queue = _automation(state).queue
    text = request.query_params.get("since")
    since = None
    if text is not None:
        try:
            since = float(text)
        except ValueError:
            since = -1.0
        if not 0 <= since <= 1e10:
            raise RequestError(
                400, "invalid_query", "since must be a time in unix seconds", "query"
            )
    return _reply(await _store(lambda: queue.stats(since)))


# -- the live mode (admin API) -----------------------------------------------------------------


async def _automation_status(request: Request, state: ServerState, rid: str) -> Response:
    if state.automation is None:
        from mlcycle.review.settings import AUTOMATION_MODES

        p = state.policy
        worker = {"mode": p.mode, "threshold": p.threshold, "revision": p.revision}
        return _reply({
            "model_name": state.model.name, "mode": p.mode, "threshold": p.threshold,
            "revision": 0, "updated_at": None, "updated_by": "", "source": "config",
            "worker": worker, "modes": list(AUTOMATION_MODES),
        })  # fmt: skip
    return _reply(await _store(state.automation.status))


async def _automation_set(request: Request, state: ServerState, rid: str) -> Response:
    from mlcycle.review.settings import AUTOMATION_MODES
    from mlcycle.serve.admin import _json_body, _who

    doc = await _json_body(request)
    unknown = sorted(set(doc) - {"mode", "threshold"})
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            f"unknown field {unknown[0]!r}; the automation mode takes mode and threshold",
            unknown[0],
        )
    mode = doc.get("mode")
    if not isinstance(mode, str) or mode not in AUTOMATION_MODES:
        raise RequestError(
            422,
            "invalid_mode",
            f"mode must be one of {', '.join(AUTOMATION_MODES)}, not {str(mode)[:40]!r}",
            "mode",
        )
    threshold = doc.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise RequestError(
            422,
            "invalid_threshold",
            f"threshold must be a number in [0, 1] (partial mode answers rows whose top "
            f"probability is at least this), not {str(threshold)[:40]}",
            "threshold",
        )
    if state.automation is None:
        raise RequestError(
            409,
            "monitoring_off",
            "modes other than full queue rows for review in the monitoring store, and this "
            "server runs with --no-monitor: start it without that flag",
        )
    automation, who = state.automation, _who(request)

    def change() -> dict[str, Any]:
        current = automation.queue.get_automation(automation.model_name, automation.settings)
        value = current.threshold if threshold is None else float(threshold)
        automation.set(mode, value, who)
        return automation.status()

    result = await _store(change)
    log.warning("admin: %s set automation mode %s (threshold %g)", who, mode, result["threshold"])
    return _reply(result)
