"""The prediction server: one bundle over three protocols.

The prediction POSTs are plain ASGI (:mod:`mlcycle.serve.predict_routes`, the hot path);
a Starlette app answers the rest.

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
``POST /feedback``                          true labels for logged predictions, by
                                            request id (and row): one, a list, or
                                            ``{"feedback": [...]}``; ``?overwrite=true``
                                            replaces a label already given
``GET /metrics``                            Prometheus text format
``GET /openapi.json``                       OpenAPI 3.1 document of the above
``GET /reviews/{id}``, ``/review``,         the review queue: a caller's poll, the page,
``/review/api/...``                         the reviewer API
                                            (:mod:`mlcycle.serve.review_routes`)
``/admin/...``                              the admin API (:mod:`mlcycle.serve.admin`)
==========================================  ===============================================

Every prediction response carries ``X-Request-ID`` (the caller's own, if sent) and
``X-Model-Version``. Errors are JSON (:mod:`mlcycle.serve.errors`) with a 4xx status;
anything unexpected is logged and answered with 500 without stopping the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle import __version__
from mlcycle.rollout.router import Routing
from mlcycle.serve import oip
from mlcycle.serve.admin import admin_routes, admin_token
from mlcycle.serve.arms import Arm, make_arm
from mlcycle.serve.automation import Policy, check_automation_store
from mlcycle.serve.batching import Prediction
from mlcycle.serve.errors import RequestError, body_too_large, caller_request_id, error_body
from mlcycle.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from mlcycle.serve.model import ServedModel
from mlcycle.serve.openapi import openapi_document
from mlcycle.serve.predict_routes import PredictionRoutes
from mlcycle.serve.review_routes import review_routes, reviewer_token
from mlcycle.serve.settings import ServeSettings
from mlcycle.serve.shadow import ShadowRunner
from mlcycle.serve.validation import FeatureBatch

if TYPE_CHECKING:
    from mlcycle.monitor.live import ModelFacts
    from mlcycle.monitor.service import MonitorClient
    from mlcycle.monitor.settings import MonitorSettings
    from mlcycle.retrain.trigger import RetrainTrigger
    from mlcycle.rollout.controller import RolloutController
    from mlcycle.serve.automation import Automation

__all__ = ["ServerState", "app_from_env", "create_app"]

log = logging.getLogger("mlcycle.serve")

_JSON = "application/json"
_REQUEST_ID = "x-request-id"
Handler = Callable[[Request, "ServerState", str], Awaitable[Response]]


class ServerState:
    """What the routes share: the arms and their routing, settings and metrics.

    ``routing`` (:class:`~mlcycle.rollout.router.Routing`) is replaced whole when a
    rollout moves, so a request reads it once and keeps a consistent view; the arms it
    holds stay usable by requests in flight after they are replaced.
    """

    def __init__(self, model: ServedModel, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServeMetrics(model.version)
        self.metrics.load_seconds.labels(model.version).set(model.load_seconds)
        self.in_flight = 0
        self._gauge_per_request = not self.metrics.track_in_flight(lambda: self.in_flight)
        champion = make_arm("champion", model, settings, self.metrics, lambda: self.in_flight)
        self.routing = Routing({"champion": champion})
        self.rollouts: RolloutController | None = None
        self.retired: list[Arm] = []
        self.shadow = ShadowRunner()
        self.admin_token = admin_token(settings)
        self.reviewer_token = reviewer_token(settings)
        # The mode requests are answered in (replaced whole when it changes), and the
        # review queue behind it (None without a monitoring store: full mode only).
        self.policy = Policy(settings.automation.mode, settings.automation.threshold)
        self.automation: Automation | None = None
        self.retrainer: RetrainTrigger | None = None
        self._engine: Any = None
        self.openapi = orjson.dumps(openapi_document(model))

    @property
    def model(self) -> ServedModel:
        """The champion's model (what metadata and validation describe)."""
        champion: Arm = self.routing.champion
        return champion.model

    @property
    def monitor(self) -> MonitorClient | None:
        """The champion's monitor (``None`` with monitoring off)."""
        champion: Arm = self.routing.champion
        return champion.monitor

    def monitors(self) -> list[MonitorClient]:
        """The monitors of every loaded arm."""
        return [a.monitor for a in self.routing.arms.values() if a.monitor is not None]

    def store_engine(self) -> Any:
        """The monitoring store's engine (opened on first use, for feedback)."""
        if self._engine is None:
            from mlcycle.monitor.store import connect, resolve_store

            self._engine = connect(resolve_store(self.settings.monitor.store))
        return self._engine

    def request_started(self) -> None:
        """Count a request in flight."""
        self.in_flight += 1
        if self._gauge_per_request:
            self.metrics.in_flight.inc()

    def request_finished(self) -> None:
        """Count a request out of flight."""
        self.in_flight -= 1
        if self._gauge_per_request:
            self.metrics.in_flight.dec()

    async def predict(self, arm: Arm, batch: FeatureBatch) -> Prediction:
        """Labels and probabilities from ``arm`` for a validated batch (micro-batched)."""
        result = await arm.batcher.predict(batch)
        self.metrics.count_rows(batch.rows, arm.model.version)
        return result

    def reload(self, who: str) -> dict[str, str]:
        """Load the champion's bundle folder again and serve it (``POST /admin/reload``).

        Raises
        ------
        RequestError
            409 while a rollout runs; 422 when the bundle no longer loads or its
            signature changed (the running model keeps serving).
        """
        from mlcycle.exceptions import BundleError
        from mlcycle.rollout.router import signature_problems

        routing = self.routing
        if routing.challenger is not None:
            raise RequestError(
                409,
                "rollout_running",
                "a rollout is running; promote or roll it back before reloading",
            )
        old: Arm = routing.champion
        try:
            model = ServedModel.load(self.settings.replace(bundle=str(old.model.bundle.path)))
        except BundleError as exc:
            raise RequestError(422, "invalid_bundle", f"the bundle does not load: {exc}") from None
        problems = signature_problems(old.model.bundle.signature, model.bundle.signature)
        if problems:
            raise RequestError(422, "signature_mismatch", "not reloaded: " + "; ".join(problems))
        arm = make_arm("champion", model, self.settings, self.metrics, lambda: self.in_flight)
        self.routing = Routing({"champion": arm}, rollout_id=routing.rollout_id,
                               revision=routing.revision, state=routing.state)  # fmt: skip
        self.retired.append(old)
        log.warning("%s reloaded %s: version %s", who, model.bundle.path, model.version)
        return {"name": model.name, "version": model.version, "bundle": str(model.bundle.path)}

    def close(self) -> None:
        """Stop every arm (their monitors write what they hold) and the rollout thread."""
        if self.retrainer is not None:
            self.retrainer.close()
        if self.rollouts is not None:
            self.rollouts.close()
        if self.automation is not None:
            self.automation.close()
        self.shadow.close()
        for arm in [*self.routing.arms.values(), *self.retired]:
            arm.close()
        if self._engine is not None:
            self._engine.dispose()

    def check_model(self, name: str | None, version: str | None) -> None:
        """404 unless ``name`` (and ``version``, when given) is the served model."""
        self.model.check_name(name, version)


def create_app(settings: ServeSettings, model: ServedModel | None = None) -> PredictionRoutes:
    """The ASGI app serving ``model`` (loaded from ``settings.bundle`` when not given).

    Parameters
    ----------
    settings
        Validation, batching and onnxruntime settings, the bundle folder and its version.
    model
        An already-loaded model, e.g. to share one between apps in tests.

    Returns
    -------
    PredictionRoutes
        The app: the prediction routes in plain ASGI in front of a Starlette app for the
        rest. Run it with any ASGI server (``mlcycle serve`` uses uvicorn).

    Raises
    ------
    ConfigError
        ``serve.automation.mode`` is not ``full`` but monitoring is off (the review queue
        lives in the monitoring store), or a token file cannot be read.
    """
    check_automation_store(settings)
    state = ServerState(model or ServedModel.load(settings), settings)
    if settings.monitor.enabled:
        from mlcycle.rollout.controller import RolloutController
        from mlcycle.serve.automation import Automation

        state.automation = Automation(state, state.store_engine())
        state.rollouts = RolloutController(state, state.store_engine())
        if settings.retrain.on_alarms:
            state.retrainer = _retrain_trigger(state)
        if state.reviewer_token is None and state.admin_token is None:
            log.warning(
                "the review API (/review/api) is open to anyone who can reach this server: "
                "set serve.automation.reviewer_token_file or MLCYCLE_ADMIN_TOKEN to protect it"
            )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gc.freeze()  # the model and imports never die: keep them out of full collections
        if state.automation is not None:
            state.automation.start()  # the stored mode, before the first request
        if state.rollouts is not None:
            state.rollouts.start()
        if state.retrainer is not None:
            state.retrainer.start()
        try:
            yield
        finally:
            state.close()
            state.metrics.process_exit()

    def route(path: str, handler: Handler, method: str = "GET", counted: bool = True) -> Route:
        async def endpoint(request: Request) -> Response:
            return await _answer(request, state, path, handler, counted)

        return Route(path, endpoint, methods=[method], name=path)

    # POSTs to these are answered by PredictionRoutes; the routes give other methods a 405.
    prediction_paths = (
        "/predict",
        "/invocations",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    )
    meta_paths = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")
    ready_paths = ("/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}/ready")
    routes = [
        *(route(p, _unreachable, "POST") for p in prediction_paths),
        *(route(p, _model_metadata) for p in meta_paths),
        *(route(p, _model_ready) for p in ready_paths),
        route("/v2", _server_metadata),
        route("/v2/health/live", _healthy),
        route("/v2/health/ready", _healthy),
        route("/ping", _healthy),
        route("/health", _healthy),
        route("/feedback", _feedback, "POST"),
        route("/metrics", _metrics, counted=False),
        route("/openapi.json", _openapi),
        *review_routes(route),
        *admin_routes(route),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},  # type: ignore[dict-item]
    )
    return PredictionRoutes(state, app)


def _retrain_trigger(state: ServerState) -> RetrainTrigger:
    """The thread that retrains when a configured alarm fires (``serve.retrain``)."""
    from mlcycle.config.project import find_project_root
    from mlcycle.monitor.store import resolve_store
    from mlcycle.retrain.trigger import RetrainTrigger

    settings = state.settings
    root = find_project_root()
    is_project = (root / "conf" / "config.yaml").is_file()
    rollouts = state.rollouts

    def start_rollout(bundle: str, version: str, reason: str) -> int:
        assert rollouts is not None
        r = rollouts.begin(
            mode=settings.retrain.rollout, bundle=bundle, version=version, who="retrain",
            reason=reason,
        )  # fmt: skip
        return r.id

    return RetrainTrigger(
        settings.retrain,
        state.store_engine(),
        model_name=state.model.name,
        store_url=resolve_store(settings.monitor.store),
        project_root=root if is_project else None,
        start_rollout=start_rollout,
    )


def start_monitor(
    model: ServedModel, settings: ServeSettings, metrics: ServeMetrics
) -> MonitorClient:
    """A monitor process watching ``model`` (one per arm and worker)."""
    from mlcycle.monitor.service import MonitorClient
    from mlcycle.monitor.store import resolve_store

    s = dataclasses.replace(settings.monitor, store=resolve_store(settings.monitor.store))
    return MonitorClient(s, monitor_facts(model), on_drop=metrics.monitor_dropped.inc)


def monitor_facts(model: ServedModel) -> ModelFacts:
    """What a monitor is told of ``model``: its name, classes, inputs, profile, evaluation."""
    from mlcycle.exceptions import BundleError
    from mlcycle.monitor.images import image_features
    from mlcycle.monitor.live import ModelFacts
    from mlcycle.monitor.quality import offline_quality

    v = model.validator
    try:
        offline: dict[str, Any] | None = offline_quality(model.bundle.path)
    except BundleError:
        offline = None
    return ModelFacts(
        model.name,
        model.version,
        model.classes,
        [
            (b.name, True, tuple(image_features(b.features[0])))
            if b.kind == "image"
            else (b.name, b.numeric, b.features)
            for b in v.blocks
        ],
        v.missing_category,
        model.bundle.profile,
        offline,
    )


def app_from_env() -> PredictionRoutes:
    """App factory for uvicorn workers: settings from ``MLCYCLE_SERVE_SETTINGS``."""
    return create_app(ServeSettings.from_env())


# -- request plumbing -----------------------------------------------------------------


async def _answer(
    request: Request, state: ServerState, route: str, handler: Handler, counted: bool
) -> Response:
    start = time.perf_counter()
    rid = caller_request_id(request.headers.get(_REQUEST_ID)) or uuid.uuid4().hex
    try:
        response = await handler(request, state, rid)
    except RequestError as exc:
        response = _json(exc.to_dict(), exc.status)
        if exc.status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="mlcycle-admin"'
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        response = _json(
            error_body("internal error; the server logged the details", "internal", None), 500
        )
    response.headers[_REQUEST_ID] = rid
    response.headers["x-model-version"] = state.model.version
    if counted:
        elapsed = time.perf_counter() - start
        state.metrics.observe(route, request.method, response.status_code, elapsed)
    return response


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


# -- handlers --------------------------------------------------------------------------


async def _unreachable(request: Request, state: ServerState, rid: str) -> Response:
    raise RuntimeError(f"POST {request.url.path} should have been answered by PredictionRoutes")


async def _model_metadata(request: Request, state: ServerState, rid: str) -> Response:
    state.check_model(request.path_params.get("name"), request.path_params.get("version"))
    m = state.model
    return _json(oip.model_metadata(m.name, m.version, m.validator, m.classes))


async def _model_ready(request: Request, state: ServerState, rid: str) -> Response:
    state.check_model(request.path_params.get("name"), request.path_params.get("version"))
    return _json({"name": state.model.name, "ready": True})


async def _server_metadata(request: Request, state: ServerState, rid: str) -> Response:
    return _json(oip.server_metadata(__version__))


async def _healthy(request: Request, state: ServerState, rid: str) -> Response:
    return _json({"status": "ok", "live": True, "ready": True})


def require_monitor(state: ServerState) -> None:
    """503 when the server logs no predictions (feedback has nothing to join)."""
    if state.monitor is None:
        raise RequestError(
            503,
            "monitoring_off",
            "this server does not log predictions (started with --no-monitor), so it cannot "
            "join feedback to them; use `mlcycle feedback import` against the store instead",
            "path",
        )


async def _feedback(request: Request, state: ServerState, rid: str) -> Response:
    """Ground truth for logged predictions: one item, a list, or ``{"feedback": [...]}``."""
    from mlcycle.monitor.feedback import FeedbackError, parse_feedback, record_feedback

    require_monitor(state)
    limit = state.settings.validation.max_body_bytes
    body = await request.body()
    if len(body) > limit:
        raise body_too_large(len(body), limit)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    flag = request.query_params.get("overwrite", "false").lower()
    overwrite = flag in ("1", "true", "yes") or (
        isinstance(doc, dict) and doc.get("overwrite") is True
    )
    engine = state.store_engine()

    def store() -> Any:
        items = parse_feedback(doc)
        try:
            return record_feedback(
                engine, items, classes=state.model.classes, overwrite=overwrite, source="api"
            )
        except FeedbackError as exc:
            if exc.status != 404 or state.monitor is None:
                raise
        # Some predictions may still be on their way to the store: wait for this worker's
        # monitors to write what they have, then give other workers' monitors a moment too.
        for monitor in state.monitors():
            monitor.flush(_FEEDBACK_FLUSH_SECONDS)
        for attempt in range(_FEEDBACK_RETRIES):
            try:
                return record_feedback(
                    engine, items, classes=state.model.classes, overwrite=overwrite, source="api"
                )
            except FeedbackError as exc:
                if exc.status != 404 or attempt == _FEEDBACK_RETRIES - 1:
                    raise
            time.sleep(other_workers_wait(state.settings.monitor))
        raise AssertionError("unreachable")

    try:
        result = await run_in_threadpool(store)
    except FeedbackError as exc:
        doc = {**error_body(str(exc), _FEEDBACK_CODES.get(exc.status, "invalid"), None)}
        doc["problems"] = exc.problems
        return _json(doc, exc.status)
    for monitor in state.monitors():
        await run_in_threadpool(monitor.ask, "feedback", timeout=2.0)
    return _json(result.to_dict())


# How long feedback for an unknown request id waits for the monitor to write what it has.
_FEEDBACK_FLUSH_SECONDS = 15.0
# Then it tries this many times, other_workers_wait apart (for other workers' rows).
_FEEDBACK_RETRIES = 3


def other_workers_wait(settings: MonitorSettings) -> float:
    """Seconds between two looks for a prediction another worker may still hold.

    Parameters
    ----------
    settings
        The ``serve.monitor`` settings.

    Returns
    -------
    float
        Half of the hand-over interval plus the store's write interval, and a margin:
        two such waits cover another worker's hand-over to its monitor and the write.
    """
    return (settings.handover_interval + settings.flush_interval) / 2 + 0.1


_FEEDBACK_CODES = {
    400: "invalid_feedback",
    404: "unknown_prediction",
    409: "duplicate_feedback",
    422: "unknown_label",
}


async def _metrics(request: Request, state: ServerState, rid: str) -> Response:
    text = state.metrics.exposition()
    monitors = state.monitors()
    if monitors and not state.metrics.multiprocess:
        # One worker: each arm's monitor process keeps its own registry; ask them for their
        # part and merge it with ours, one family each. (With several workers, the monitors
        # write the multiprocess files the exposition merges.)
        replies = await asyncio.gather(
            *(run_in_threadpool(m.ask, "metrics", timeout=2.0) for m in monitors)
        )
        parts = [r for r in replies if isinstance(r, bytes) and r]
        if parts:
            text = _merged_exposition([text, *parts])
    return Response(text, 200, media_type=CONTENT_TYPE_LATEST)


def _merged_exposition(texts: list[bytes]) -> bytes:
    """One Prometheus exposition of several: each family once, its samples from all.

    Families are merged by name (the first text's help and type win); a sample that two
    texts both have (same name and labels, e.g. the server process's memory, which every
    arm's monitor reports) is kept once, from the first. Arms' samples differ by their
    ``model_version`` label.
    """
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Any] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    try:
        for text in texts:
            for family in text_string_to_metric_families(text.decode("utf-8")):
                merged = families.setdefault(family.name, family)
                fresh = []
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        fresh.append(sample)
                if merged is family:
                    family.samples = fresh
                else:
                    merged.samples.extend(fresh)
    except (ValueError, UnicodeDecodeError):
        log.exception("/metrics: cannot merge the monitors' metrics; showing one monitor's")
        return texts[0] + texts[1]

    class _Merged:
        def collect(self) -> list[Any]:
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    out: bytes = generate_latest(registry)
    return out


async def _openapi(request: Request, state: ServerState, rid: str) -> Response:
    return Response(state.openapi, 200, media_type=_JSON)
