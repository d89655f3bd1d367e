"""The prediction server: a Starlette app serving one bundle over three protocols.

Routes (all JSON unless said otherwise):

==========================================  ===============================================
``POST /predict``                           ``{"records": [{feature: value}]}`` → labels,
                                            probabilities, model, request id
``POST /invocations``                       MLflow scoring (``dataframe_split``,
                                            ``dataframe_records``, ``instances``,
                                            ``inputs``; or CSV)
``POST /v2/models/{name}[/versions/{v}]/infer``  Open Inference Protocol v2
``GET /v2``, ``/v2/health/live|ready``      OIP server metadata and health
``GET /v2/models/{name}[/versions/{v}]``    OIP model metadata (``/ready`` too)
``GET /ping``, ``/health``                  MLflow-style health check
``GET /metrics``                            Prometheus text format
``GET /openapi.json``                       OpenAPI 3.1 document of the above
==========================================  ===============================================

Every prediction response carries ``X-Request-ID`` (the caller's own, if sent) and
``X-Model-Version``. Errors are JSON (:mod:`mlcycle.serve.errors`) with a 4xx status;
anything unexpected is logged and answered with 500 without stopping the server.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle import __version__
from mlcycle.serve import oip
from mlcycle.serve.batching import MicroBatcher
from mlcycle.serve.errors import RequestError, body_too_large, caller_request_id, error_body
from mlcycle.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from mlcycle.serve.model import ServedModel
from mlcycle.serve.openapi import openapi_document
from mlcycle.serve.protocols import decode_invocations, decode_predict, prediction_rows
from mlcycle.serve.settings import ServeSettings

__all__ = ["ServerState", "app_from_env", "create_app"]

log = logging.getLogger("mlcycle.serve")

_JSON = "application/json"
_REQUEST_ID = "x-request-id"
Handler = Callable[[Request, "ServerState", str], Awaitable[Response]]


class ServerState:
    """What the routes share: the model, settings, batcher and metrics."""

    def __init__(self, model: ServedModel, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self.metrics = ServeMetrics(model.version)
        self.metrics.load_seconds.labels(model.version).set(model.load_seconds)
        self.in_flight = 0
        self.batcher = MicroBatcher(
            model.predict,
            settings.batching,
            in_flight=lambda: self.in_flight,
            on_batch=self.metrics.batch_rows.observe,
        )
        self.openapi = orjson.dumps(openapi_document(model))
        self.headers = {"x-model-version": model.version}


def create_app(settings: ServeSettings, model: ServedModel | None = None) -> Starlette:
    """The ASGI app serving ``model`` (loaded from ``settings.bundle`` when not given).

    Parameters
    ----------
    settings
        Validation, batching and onnxruntime settings, the bundle folder and its version.
    model
        An already-loaded model, e.g. to share one between apps in tests.

    Returns
    -------
    starlette.applications.Starlette
        The app; run it with any ASGI server (``mlcycle serve`` uses uvicorn).
    """
    state = ServerState(model or ServedModel.load(settings), settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.batcher.close()
            state.metrics.process_exit()

    def route(path: str, handler: Handler, method: str = "GET", counted: bool = True) -> Route:
        async def endpoint(request: Request) -> Response:
            return await _answer(request, state, path, handler, counted)

        return Route(path, endpoint, methods=[method], name=path)

    infer_paths = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
    meta_paths = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")
    ready_paths = ("/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}/ready")
    routes = [
        route("/predict", _predict, "POST"),
        route("/invocations", _invocations, "POST"),
        *(route(p, _infer, "POST") for p in infer_paths),
        *(route(p, _model_metadata) for p in meta_paths),
        *(route(p, _model_ready) for p in ready_paths),
        route("/v2", _server_metadata),
        route("/v2/health/live", _healthy),
        route("/v2/health/ready", _healthy),
        route("/ping", _healthy),
        route("/health", _healthy),
        route("/metrics", _metrics, counted=False),
        route("/openapi.json", _openapi),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},  # type: ignore[dict-item]
    )
    app.state.mlcycle = state
    return app


def app_from_env() -> Starlette:
    """App factory for uvicorn workers: settings from ``MLCYCLE_SERVE_SETTINGS``."""
    return create_app(ServeSettings.from_env())


# -- request plumbing -----------------------------------------------------------------


async def _answer(
    request: Request, state: ServerState, route: str, handler: Handler, counted: bool
) -> Response:
    start = time.perf_counter()
    rid = _request_id(request)
    state.in_flight += 1
    state.metrics.in_flight.inc()
    try:
        response = await handler(request, state, rid)
    except RequestError as exc:
        response = _json(exc.to_dict(), exc.status)
    except ClientDisconnect:
        # Nobody is left to read an answer; 499 (nginx's "client closed request") counts it.
        response = _json(error_body("the client went away mid-request", "disconnected"), 499)
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        response = _json(
            error_body("internal error; the server logged the details", "internal", None), 500
        )
    finally:
        state.in_flight -= 1
        state.metrics.in_flight.dec()
    response.headers[_REQUEST_ID] = rid
    response.headers["x-model-version"] = state.model.version
    if counted:
        state.metrics.observe(
            route, request.method, response.status_code, time.perf_counter() - start
        )
    return response


def _request_id(request: Request) -> str:
    return caller_request_id(request.headers.get(_REQUEST_ID)) or uuid.uuid4().hex


async def _body(request: Request, state: ServerState) -> bytes:
    limit = state.settings.validation.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > limit:
        raise body_too_large(int(declared), limit)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding not in ("identity", ""):
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding} is not supported; send the body uncompressed",
            "Content-Encoding",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, media_type=_JSON
    )


async def _http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {
        404: f"no route {request.url.path}; see /openapi.json for the routes",
        405: f"{request.method} is not allowed on {request.url.path}; see /openapi.json",
    }.get(exc.status_code, str(exc.detail))
    return _json(error_body(message, code, None), exc.status_code, dict(exc.headers or {}))


def _check_model(request: Request, state: ServerState) -> None:
    name = request.path_params.get("name")
    version = request.path_params.get("version")
    model = state.model
    if name != model.name or (version is not None and version != model.version):
        asked = f"{name!r}" + (f" version {version!r}" if version is not None else "")
        raise RequestError(
            404,
            "unknown_model",
            f"model {asked} is not served here; this server serves "
            f"{model.name!r} version {model.version!r}",
            "path",
        )


# -- handlers --------------------------------------------------------------------------


async def _predict(request: Request, state: ServerState, rid: str) -> Response:
    body = await _body(request, state)
    model = state.model
    batch = decode_predict(body, request.headers.get("content-type"), model.validator)
    labels, proba = await state.batcher.predict(batch)
    state.metrics.rows.labels(model.version).inc(batch.rows)
    return _json(
        {
            "request_id": rid,
            "model": {"name": model.name, "version": model.version},
            "predictions": prediction_rows(labels, proba, model.classes),
        }
    )


async def _invocations(request: Request, state: ServerState, rid: str) -> Response:
    body = await _body(request, state)
    model = state.model
    batch = decode_invocations(body, request.headers.get("content-type"), model.validator)
    labels, proba = await state.batcher.predict(batch)
    state.metrics.rows.labels(model.version).inc(batch.rows)
    return _json({"predictions": prediction_rows(labels, proba, model.classes)})


async def _infer(request: Request, state: ServerState, rid: str) -> Response:
    _check_model(request, state)
    body = await _body(request, state)
    model = state.model
    req = oip.decode_infer(
        body,
        request.headers.get("content-type"),
        request.headers.get(oip.HEADER_LENGTH),
        model.validator,
    )
    labels, proba = await state.batcher.predict(req.batch)
    state.metrics.rows.labels(model.version).inc(req.batch.rows)
    if req.id is None:
        req.id = rid
    content, headers = oip.encode_infer(req, labels, proba, name=model.name, version=model.version)
    return Response(content, 200, headers)


async def _model_metadata(request: Request, state: ServerState, rid: str) -> Response:
    _check_model(request, state)
    m = state.model
    return _json(oip.model_metadata(m.name, m.version, m.validator, m.classes))


async def _model_ready(request: Request, state: ServerState, rid: str) -> Response:
    _check_model(request, state)
    return _json({"name": state.model.name, "ready": True})


async def _server_metadata(request: Request, state: ServerState, rid: str) -> Response:
    return _json(oip.server_metadata(__version__))


async def _healthy(request: Request, state: ServerState, rid: str) -> Response:
    return _json({"status": "ok", "live": True, "ready": True})


async def _metrics(request: Request, state: ServerState, rid: str) -> Response:
    return Response(state.metrics.exposition(), 200, media_type=CONTENT_TYPE_LATEST)


async def _openapi(request: Request, state: ServerState, rid: str) -> Response:
    return Response(state.openapi, 200, media_type=_JSON)
