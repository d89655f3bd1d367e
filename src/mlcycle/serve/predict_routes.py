"""The prediction routes as plain ASGI: the hot path, in front of the Starlette app.

``POST /predict``, ``POST /invocations`` and ``POST /v2/models/{name}[/versions/{v}]/infer``
are answered here without Starlette's request, routing and response objects (about a
third of a one-row request's cost); every other request, and every other method on these
paths, goes on to the Starlette app in :mod:`mlcycle.serve.app`. The behaviour is the same
as a Starlette route's: JSON errors with 4xx statuses, ``X-Request-ID`` and
``X-Model-Version`` headers, metrics.

In an automation mode other than ``full`` (:mod:`mlcycle.serve.automation`), ``/predict``
queues the rows a person must decide and answers 202 while any waits; ``/invocations`` and
OIP inference cannot say "pending" and answer 409. ``full`` mode reads one attribute more.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from mlcycle.serve import oip
from mlcycle.serve.automation import callback_url, not_full
from mlcycle.serve.errors import (
    RequestError,
    body_too_large,
    caller_request_id,
    check_encoding,
    error_body,
)
from mlcycle.serve.protocols import decode_invocations, decode_predict, prediction_rows

if TYPE_CHECKING:
    from mlcycle.rollout.router import Routing
    from mlcycle.serve.app import ServerState
    from mlcycle.serve.arms import Arm
    from mlcycle.serve.automation import Policy
    from mlcycle.serve.validation import FeatureBatch

__all__ = ["PredictionRoutes", "RequestIds", "pipeline_latency"]

log = logging.getLogger("mlcycle.serve")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_JSON_HEADER = (b"content-type", b"application/json")


class RequestIds:
    """Unique request ids, cheaply: a random per-process prefix and a counter (32 hex).

    Examples
    --------
    >>> ids = RequestIds()
    >>> a, b = ids.next(), ids.next()
    >>> len(a), a != b, a[:16] == b[:16]
    (32, True, True)
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(1)

    def next(self) -> str:
        """A new id."""
        return f"{self._prefix}{next(self._count):016x}"


@dataclass
class Call:
    """One prediction request: its headers, path parameters and body."""

    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: The model inputs and probabilities, once predicted (for the monitor).
    outcome: tuple[dict[str, Any], Any] | None = None
    #: Seconds since the pipeline started (``X-Pipeline-Start``), for pipeline stages.
    pipeline_latency: float | None = None
    #: The arm that answered, and the challenger to mirror the request to (shadow).
    arm: Arm | None = None
    mirror: Arm | None = None
    #: The status of a successful answer: 202 while rows wait for review.
    status: int = 200


def pipeline_latency(header: str | None) -> float | None:
    """Seconds from ``X-Pipeline-Start`` (the pipeline's start, unix seconds) to now.

    Raises
    ------
    RequestError
        400 when the header is not a unix time.

    Examples
    --------
    >>> pipeline_latency(None) is None
    True
    >>> 0 <= pipeline_latency(str(time.time())) < 1
    True
    """
    if header is None:
        return None
    try:
        start = float(header)
    except ValueError:
        start = math.nan
    if not math.isfinite(start) or start <= 0:
        raise RequestError(
            400,
            "invalid_header",
            f"X-Pipeline-Start must be the pipeline's start in unix seconds "
            f"(e.g. {time.time():.3f}), not {header[:40]!r}",
            "headers.x-pipeline-start",
        )
    return time.time() - start


class Disconnected(Exception):
    """The client went away before the body was read."""


class PredictionRoutes:
    """ASGI app: the prediction routes, falling through to ``app`` for the rest.

    Parameters
    ----------
    state
        The served model, settings, batcher and metrics.
    app
        Handles everything else (health, metadata, metrics, OpenAPI, 404 / 405).
    """

    def __init__(self, state: ServerState, app: ASGIApp) -> None:
        self.state = state
        self.app = app
        self.ids = RequestIds()
        self._exact: dict[str, Callable[[Call, str], Awaitable[tuple[bytes, dict[str, str]]]]] = {
            "/predict": self._predict,
            "/invocations": self._invocations,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a prediction POST, or hand the request to the Starlette app."""
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            handler = self._exact.get(path)
            if handler is not None:
                return await self._answer(path, handler, {}, scope, receive, send)
            m = _INFER.fullmatch(path) if path.startswith("/v2/models/") else None
            if m is not None:
                params = {"name": m.group(1)}
                if m.group(2) is not None:
                    params["version"] = m.group(2)
                route = (
                    "/v2/models/{name}/versions/{version}/infer"
                    if "version" in params
                    else "/v2/models/{name}/infer"
                )
                return await self._answer(route, self._infer, params, scope, receive, send)
        await self.app(scope, receive, send)

    # -- plumbing -----------------------------------------------------------------------

    async def _answer(
        self,
        route: str,
        handler: Callable[[Call, str], Awaitable[tuple[bytes, dict[str, str]]]],
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        start = time.perf_counter()
        state = self.state
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        rid = caller_request_id(headers.get("x-request-id")) or self.ids.next()
        state.request_started()
        extra: dict[str, str] = {}
        call = Call(headers, params)
        error = ""
        try:
            call.pipeline_latency = pipeline_latency(headers.get("x-pipeline-start"))
            call.body = await self._body(headers, receive)
            body, extra = await handler(call, rid)
            status = call.status
        except RequestError as exc:
            status, body = exc.status, orjson.dumps(exc.to_dict())
            error = f"{exc.code}: {exc}"
        except Disconnected:
            status, body = 499, orjson.dumps(error_body("the client went away", "disconnected"))
        except Exception:
            log.exception("unexpected error answering POST %s", scope["path"])
            status = 500
            body = orjson.dumps(error_body("internal error; the server logged it", "internal"))
            error = "internal error"
        finally:
            state.request_finished()
        arm = call.arm or state.routing.champion
        out = [
            (b"content-type", extra.pop("content-type", "application/json").encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode("latin-1")),
            (b"x-model-version", arm.version_header),
            (b"x-model-arm", arm.name.encode()),
            *((k.lower().encode(), v.encode()) for k, v in extra.items()),
        ]
        if status != 499:
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - start
        state.metrics.observe(route, "POST", status, elapsed, arm.model.version)
        monitor = arm.monitor
        if monitor is not None and status != 499:
            pipeline = headers.get("x-pipeline-id")
            since_start = call.pipeline_latency
            if call.outcome is not None and status < 300:
                monitor.record(
                    rid,
                    *call.outcome,
                    elapsed,
                    arm=arm.name,
                    pipeline_id=pipeline,
                    pipeline_latency=since_start,
                )
            elif status >= 300:  # (human_only mode: nothing predicted, nothing failed)
                monitor.record_error(
                    rid,
                    status,
                    error,
                    elapsed,
                    arm=arm.name,
                    pipeline_id=pipeline,
                    pipeline_latency=since_start,
                )
        if call.mirror is not None and call.outcome is not None and status < 300:
            state.shadow.mirror(
                call.mirror,
                rid,
                call.outcome[0],
                pipeline_id=headers.get("x-pipeline-id"),
                pipeline_latency=call.pipeline_latency,
            )

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.state.settings.validation.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdecimal() and int(declared) > limit:
            raise body_too_large(int(declared), limit)
        check_encoding(headers.get("content-encoding"))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise body_too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- handlers -------------------------------------------------------------------------

    async def _predict(self, call: Call, rid: str) -> tuple[bytes, dict[str, str]]:
        routing = self.state.routing
        model = routing.champion.model
        batch = decode_predict(call.body, call.headers.get("content-type"), model.validator)
        policy = self.state.policy
        if policy.mode != "full":
            return await self._predict_reviewed(call, rid, batch, routing, policy)
        arm = _choose(call, rid, routing, batch.inputs)
        labels, proba = await self.state.predict(arm, batch)
        call.outcome = (batch.inputs, proba)
        doc = {
            "request_id": rid,
            "model": arm.model_doc,
            "predictions": prediction_rows(labels, proba, model.classes),
        }
        return orjson.dumps(doc), {}

    async def _predict_reviewed(
        self, call: Call, rid: str, batch: FeatureBatch, routing: Routing, policy: Policy
    ) -> tuple[bytes, dict[str, str]]:
        """``/predict`` in a mode other than full: queue what needs a person (202)."""
        automation = self.state.automation
        if automation is None:  # check_automation_store keeps this from happening
            raise RequestError(
                503,
                "monitoring_off",
                f"automation mode {policy.mode!r} queues rows for review in the monitoring "
                "store, and this server has none; start it without --no-monitor",
            )
        callback = callback_url(call.headers.get("x-callback-url"), automation.settings.webhook)
        prediction = None
        if policy.mode == "human_only":  # no model is consulted
            arm: Arm = routing.champion
            call.arm = arm
        else:
            arm = _choose(call, rid, routing, batch.inputs)
            automation.predicting(batch.rows)  # not full mode's rows (see Automation.flush)
            try:
                prediction = await self.state.predict(arm, batch)
            except BaseException:
                automation.predicting(-batch.rows)
                raise
            call.outcome = (batch.inputs, prediction[1])
        doc, call.status = await automation.answer(rid, arm, batch, prediction, policy, callback)
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), {}

    async def _invocations(self, call: Call, rid: str) -> tuple[bytes, dict[str, str]]:
        if self.state.policy.mode != "full":
            raise not_full(self.state.policy.mode, "/invocations")
        routing = self.state.routing
        model = routing.champion.model
        batch = decode_invocations(call.body, call.headers.get("content-type"), model.validator)
        arm = _choose(call, rid, routing, batch.inputs)
        labels, proba = await self.state.predict(arm, batch)
        call.outcome = (batch.inputs, proba)
        return orjson.dumps({"predictions": prediction_rows(labels, proba, model.classes)}), {}

    async def _infer(self, call: Call, rid: str) -> tuple[bytes, dict[str, str]]:
        if self.state.policy.mode != "full":
            raise not_full(self.state.policy.mode, "Open Inference Protocol inference")
        routing = self.state.routing
        model = routing.champion.model
        name, version = call.params.get("name"), call.params.get("version")
        challenger = routing.challenger
        by_version = (
            challenger is not None and version is not None and version == challenger.model.version
            and name == challenger.model.name and version != model.version
        )  # fmt: skip
        if not by_version:
            self.state.check_model(name, version)
        req = oip.decode_infer(
            call.body,
            call.headers.get("content-type"),
            call.headers.get(oip.HEADER_LENGTH.lower()),
            model.validator,
        )
        if by_version and challenger is not None:  # the path names the challenger's version
            call.arm = arm = challenger
        else:
            arm = _choose(call, rid, routing, req.batch.inputs)
        labels, proba = await self.state.predict(arm, req.batch)
        call.outcome = (req.batch.inputs, proba)
        if req.id is None:
            req.id = rid
        return oip.encode_infer(req, labels, proba, name=arm.model.name, version=arm.model.version)


def _choose(call: Call, rid: str, routing: Routing, inputs: dict[str, Any]) -> Arm:
    """The arm that answers ``call`` (kept on it, with the arm to mirror to, if any)."""
    if len(routing.arms) == 1 and "x-model-arm" not in call.headers:
        arm: Arm = routing.champion
    else:
        name, mirror = routing.choose(call.headers, rid, inputs)
        arm = routing.arms[name]
        call.mirror = routing.challenger if mirror else None
    call.arm = arm
    return arm
