"""The prediction server's routes for AWS Lambda, answering one event at a time.

:class:`LambdaApp` answers API Gateway, function URL and direct-invocation events (read by
:mod:`mlcycle.serve.lambda_events`) with the same decoders, validation, status codes and
JSON documents as the HTTP app (:mod:`mlcycle.serve.app`), without Starlette, batching or
metrics. The entry point that loads the bundle is :mod:`mlcycle.serve.lambda_handler`.

Routes: ``POST /predict``, ``POST /invocations`` (JSON or CSV), ``POST
/v2/models/{name}[/versions/{v}]/infer`` (JSON, or binary tensors in a base64 body),
``GET /v2/models/{name}[/versions/{v}][/ready]``, ``GET /v2``, ``GET
/v2/health/live|ready``, ``GET /ping``, ``GET /health``. There is no ``/metrics`` (use
CloudWatch) and no ``/openapi.json``.

Answers: to a proxy event, the proxy response ``{"statusCode", "headers", "body",
"isBase64Encoded"}`` with ``content-type``, ``x-request-id`` (the caller's
``X-Request-ID``, else the Lambda request id, else a new uuid) and ``x-model-version``;
the body is JSON text, or base64 for a binary-tensor infer answer. To a direct
invocation, the response document itself on success, and ``{"statusCode": 4xx, "error",
"code", "field"}`` on failure: returned, not raised, so the caller branches on
``statusCode`` instead of parsing a ``FunctionError`` stack trace, and Lambda's
asynchronous retries do not repeat a bad request. Direct infer answers are always JSON
tensors (a returned document cannot hold bytes).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mlcycle import __version__
from mlcycle.serve import oip
from mlcycle.serve.errors import (
    RequestError,
    body_too_large,
    caller_request_id,
    check_encoding,
    error_body,
)
from mlcycle.serve.lambda_events import LambdaRequest, event_kind, parse_event
from mlcycle.serve.model import ServedModel
from mlcycle.serve.protocols import decode_invocations, decode_predict, prediction_rows
from mlcycle.serve.settings import ServeSettings

__all__ = ["LambdaApp"]

log = logging.getLogger("mlcycle.serve.lambda")

_JSON = "application/json"
_REQUEST_ID = "x-request-id"


@dataclass
class _Reply:
    status: int
    doc: Any = None
    # A body already encoded (infer answers); ``doc`` is ignored when set.
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _NotAllowed(RequestError):
    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(
            405,
            "method_not_allowed",
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
            "method",
        )
        self.allowed = allowed


Handler = Callable[[LambdaRequest, dict[str, str], str], _Reply]


class LambdaApp:
    """Answers Lambda events for one loaded model (see the module docstring).

    Parameters
    ----------
    model
        The served model (:meth:`ServedModel.load`).
    settings
        Validation settings (``max_body_bytes`` and the validator's policies).
    """

    def __init__(self, model: ServedModel, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        paths: list[tuple[str, str, Handler]] = [
            ("POST", "/predict", self._predict),
            ("POST", "/invocations", self._invocations),
            ("POST", "/v2/models/{name}/infer", self._infer),
            ("POST", "/v2/models/{name}/versions/{version}/infer", self._infer),
            ("GET", "/v2/models/{name}", self._model_metadata),
            ("GET", "/v2/models/{name}/versions/{version}", self._model_metadata),
            ("GET", "/v2/models/{name}/ready", self._model_ready),
            ("GET", "/v2/models/{name}/versions/{version}/ready", self._model_ready),
            ("GET", "/v2", self._server_metadata),
            ("GET", "/v2/health/live", self._healthy),
            ("GET", "/v2/health/ready", self._healthy),
            ("GET", "/ping", self._healthy),
            ("GET", "/health", self._healthy),
        ]
        self.routes = [(m, _compile(p), h) for m, p, h in paths]
        self.route_names = [f"{m} {p}" for m, p, _ in paths]

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Answer one event; never raises (a bug is logged and answered with 500).

        Parameters
        ----------
        event
            An API Gateway / function URL proxy event, or a direct invocation document.
        context
            The Lambda context; its ``aws_request_id`` is the default request id.

        Returns
        -------
        dict
            The proxy response, or for a direct invocation the response document (with
            ``statusCode`` on error).
        """
        kind = event_kind(event)
        rid = str(getattr(context, "aws_request_id", "") or uuid.uuid4().hex)
        try:
            req = parse_event(event, self.model.name)
            rid = _caller_id(req.headers) or rid
            handler, params = self._route(req)
            reply = handler(req, params, rid)
        except _NotAllowed as exc:
            reply = _Reply(exc.status, exc.to_dict(), headers={"allow": ", ".join(exc.allowed)})
        except RequestError as exc:
            reply = _Reply(exc.status, exc.to_dict())
        except Exception:
            log.exception("unexpected error answering a %s event (request %s)", kind, rid)
            message = "internal error; the function logged the details"
            reply = _Reply(500, error_body(message, "internal", None))
        if kind == "direct":
            return _direct_response(reply)
        return self._proxy_response(reply, rid)

    # -- routing and bodies ---------------------------------------------------------

    def _route(self, req: LambdaRequest) -> tuple[Handler, dict[str, str]]:
        method = "GET" if req.method == "HEAD" else req.method
        for path in req.paths:
            found = [
                (m, h, hit.groupdict()) for m, p, h in self.routes if (hit := p.fullmatch(path))
            ]
            if not found:
                continue
            for m, handler, params in found:
                if m == method:
                    return handler, params
            raise _NotAllowed(req.method, path, sorted({m for m, _, _ in found}))
        raise RequestError(
            404,
            "not_found",
            f"no route {req.paths[0]}; the routes are {', '.join(self.route_names)}",
            "path",
        )

    def _body(self, req: LambdaRequest) -> bytes:
        limit = self.settings.validation.max_body_bytes
        check_encoding(req.headers.get("content-encoding"))
        body = req.body
        if isinstance(body, str) and req.base64:
            if len(body) // 4 * 3 > limit + 2:
                raise body_too_large(len(body) // 4 * 3, limit)
            try:
                body = base64.b64decode(body, validate=True)
            except binascii.Error:
                raise RequestError(
                    400,
                    "bad_base64",
                    "isBase64Encoded is true but the body is not valid base64",
                    "body",
                ) from None
        elif isinstance(body, str):
            try:
                body = body.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError(400, "bad_text", "the body is not valid UTF-8 text") from None
        data = body or b""
        if len(data) > limit:
            raise body_too_large(len(data), limit)
        return data

    def _check_model(self, params: Mapping[str, str]) -> None:
        self.model.check_name(params.get("name"), params.get("version"))

    def _proxy_response(self, reply: _Reply, rid: str) -> dict[str, Any]:
        headers = {"content-type": _JSON, **reply.headers}
        headers[_REQUEST_ID] = rid
        headers["x-model-version"] = self.model.version
        body = reply.raw
        if body is None:
            body = orjson.dumps(reply.doc, option=orjson.OPT_SERIALIZE_NUMPY)
        binary = headers["content-type"] != _JSON
        return {
            "statusCode": reply.status,
            "headers": headers,
            "body": base64.b64encode(body).decode("ascii") if binary else body.decode(),
            "isBase64Encoded": binary,
        }

    # -- handlers -------------------------------------------------------------------

    def _predict(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        model = self.model
        batch = decode_predict(self._body(req), req.headers.get("content-type"), model.validator)
        labels, proba = model.predict(batch.inputs)
        return _Reply(
            200,
            {
                "request_id": rid,
                "model": {"name": model.name, "version": model.version},
                "predictions": prediction_rows(labels, proba, model.classes),
            },
        )

    def _invocations(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        model = self.model
        body = self._body(req)
        batch = decode_invocations(body, req.headers.get("content-type"), model.validator)
        labels, proba = model.predict(batch.inputs)
        return _Reply(200, {"predictions": prediction_rows(labels, proba, model.classes)})

    def _infer(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        self._check_model(params)
        model = self.model
        infer = oip.decode_infer(
            self._body(req),
            req.headers.get("content-type"),
            req.headers.get(oip.HEADER_LENGTH.lower()),
            model.validator,
        )
        if req.direct:
            infer.binary.clear()
        labels, proba = model.predict(infer.batch.inputs)
        if infer.id is None:
            infer.id = rid
        content, headers = oip.encode_infer(
            infer, labels, proba, name=model.name, version=model.version
        )
        return _Reply(200, raw=content, headers=headers)

    def _model_metadata(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        self._check_model(params)
        m = self.model
        return _Reply(200, oip.model_metadata(m.name, m.version, m.validator, m.classes))

    def _model_ready(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        self._check_model(params)
        return _Reply(200, {"name": self.model.name, "ready": True})

    def _server_metadata(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        return _Reply(200, oip.server_metadata(__version__))

    def _healthy(self, req: LambdaRequest, params: dict[str, str], rid: str) -> _Reply:
        return _Reply(200, {"status": "ok", "live": True, "ready": True})


# -- helpers ------------------------------------------------------------------------


def _caller_id(headers: Mapping[str, str]) -> str | None:
    return caller_request_id(headers.get(_REQUEST_ID))


def _direct_response(reply: _Reply) -> dict[str, Any]:
    doc = reply.doc if reply.raw is None else orjson.loads(reply.raw)
    if reply.status >= 400:
        return {"statusCode": reply.status, **doc}
    result: dict[str, Any] = doc
    return result


def _compile(pattern: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
    return re.compile(regex)
