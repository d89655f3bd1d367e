"""Lambda events in: API Gateway (payload 1.0 and 2.0), function URLs and direct invocations.

:func:`parse_event` turns any of them into one :class:`LambdaRequest` (method, route
candidates, lower-case headers, raw body) for :class:`~mlcycle.serve.lambda_app.LambdaApp`,
or raises :class:`~mlcycle.serve.errors.RequestError` (400 ``bad_event``) for an event
that is not one of them:

* **API Gateway REST API** (payload 1.0: ``httpMethod``, ``resource``, ``path``,
  ``headers`` / ``multiValueHeaders``, ``pathParameters``, ``requestContext.stage``), and
  the same shape from HTTP APIs set to payload 1.0 and from ALB targets. The route is
  ``resource`` with ``pathParameters`` filled in (``/{proxy+}`` + ``{"proxy": "predict"}``
  → ``/predict``), so stages and custom-domain base paths do not matter; failing that,
  ``path``, then ``path`` without a leading ``/{stage}``.
* **HTTP API / Lambda function URL** (payload 2.0: ``version: "2.0"``, ``rawPath``,
  ``routeKey``, ``requestContext.http.method``, lower-case ``headers``): the route is
  ``routeKey``'s path with ``pathParameters`` filled in, else ``rawPath``, else
  ``rawPath`` without ``/{stage}`` (named stages put it there).
* **Direct invocation** (``lambda invoke``, Step Functions, another function): the event is
  the request document itself. ``{"records": [...]}`` is a ``/predict`` request; a document
  whose ``inputs`` is a list of OIP tensors (objects with a ``datatype``) is an infer
  request to the served model; one with any MLflow key (``dataframe_split``,
  ``dataframe_records``, ``instances``, or ``inputs`` that are not tensors) is an
  ``/invocations`` request. To reach any route, send an envelope ``{"path":
  "/v2/health/ready"}`` or ``{"path": "/invocations", "body": {...} or "csv text",
  "headers": {"content-type": "text/csv"}, "method": "POST"}`` (``method`` defaults to
  POST with a body and GET without, ``content-type`` to ``application/json``;
  ``isBase64Encoded`` as in proxy events). A direct document is re-encoded as strict JSON,
  so ``NaN`` and ``Infinity`` are refused (400) as they would be in an HTTP body: send
  ``null`` for a missing value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from mlcycle.serve.errors import RequestError
from mlcycle.serve.protocols import MLFLOW_FORMATS

__all__ = ["LambdaRequest", "event_kind", "parse_event"]

_JSON = "application/json"
_ENVELOPE_KEYS = ("path", "method", "body", "headers", "isBase64Encoded")
_PLACEHOLDER = re.compile(r"\{([^}+]+)\+?\}")


@dataclass(frozen=True)
class LambdaRequest:
    """One request, whichever kind of event it came in."""

    # Upper-case HTTP method.
    method: str
    # Route candidates, most specific first; the first one that matches a route wins.
    paths: tuple[str, ...]
    # Header names lower-cased; repeated headers joined with ", ".
    headers: dict[str, str]
    # The body as the event holds it; base64 text when ``base64``.
    body: str | bytes | None = None
    base64: bool = False
    # A direct invocation (answered with the bare document).
    direct: bool = False


def event_kind(event: Any) -> str:
    """Which kind of event ``event`` is: ``"v1"``, ``"v2"`` or ``"direct"``.

    Examples
    --------
    >>> event_kind({"version": "2.0", "rawPath": "/ping", "requestContext": {}})
    'v2'
    >>> event_kind({"httpMethod": "GET", "path": "/ping"})
    'v1'
    >>> event_kind({"records": []})
    'direct'
    """
    if isinstance(event, dict):
        if event.get("version") == "2.0" and "rawPath" in event:
            return "v2"
        if "httpMethod" in event:
            return "v1"
    return "direct"


def parse_event(event: Any, model_name: str) -> LambdaRequest:
    """The request in ``event`` (any kind; see the module docstring).

    Parameters
    ----------
    event
        The event the Lambda runtime passed to the handler.
    model_name
        The served model's name, the target of direct OIP tensor documents.

    Returns
    -------
    LambdaRequest
        Method, route candidates, headers and raw body.

    Raises
    ------
    RequestError
        400 ``bad_event`` for a malformed event, 422 for a direct document of no known kind.

    Examples
    --------
    >>> parse_event({"records": []}, "churn").paths
    ('/predict',)
    >>> parse_event({"inputs": [{"name": "x", "datatype": "FP32"}]}, "churn").paths
    ('/v2/models/churn/infer',)
    >>> parse_event({"path": "/ping"}, "churn").method
    'GET'
    """
    kind = event_kind(event)
    if kind == "v1":
        return _from_v1(event)
    if kind == "v2":
        return _from_v2(event)
    if not isinstance(event, dict):
        raise RequestError(
            400,
            "bad_event",
            "a direct invocation must be a JSON object: a request document such as "
            f'{{"records": [...]}} or an envelope {{"path": ...}}, not {type(event).__name__}',
            "event",
        )
    if "path" in event:
        return _from_envelope(event)
    path = _direct_path(event, model_name)
    return LambdaRequest("POST", (path,), {"content-type": _JSON}, _dumps(event), direct=True)


def _from_v1(event: dict[str, Any]) -> LambdaRequest:
    ctx = _object(event.get("requestContext"), "requestContext")
    method = _text(event.get("httpMethod"), "httpMethod").upper()
    path = _text(event.get("path") or ctx.get("path") or "/", "path")
    rebuilt = _rebuilt(event.get("resource"), event.get("pathParameters"))
    headers = _headers(event.get("multiValueHeaders"), "multiValueHeaders")
    headers.update(_headers(event.get("headers"), "headers"))
    return LambdaRequest(
        method,
        _candidates(rebuilt, path, ctx.get("stage")),
        headers,
        _raw_body(event.get("body")),
        event.get("isBase64Encoded") is True,
    )


def _from_v2(event: dict[str, Any]) -> LambdaRequest:
    ctx = _object(event.get("requestContext"), "requestContext")
    http = _object(ctx.get("http"), "requestContext.http")
    method = _text(http.get("method"), "requestContext.http.method").upper()
    path = unquote(_text(event.get("rawPath") or "/", "rawPath"))
    route_key = event.get("routeKey")
    resource = (
        route_key.split(" ", 1)[1] if isinstance(route_key, str) and " " in route_key else None
    )
    return LambdaRequest(
        method,
        _candidates(_rebuilt(resource, event.get("pathParameters")), path, ctx.get("stage")),
        _headers(event.get("headers"), "headers"),
        _raw_body(event.get("body")),
        event.get("isBase64Encoded") is True,
    )


def _from_envelope(event: dict[str, Any]) -> LambdaRequest:
    unknown = sorted(set(event) - set(_ENVELOPE_KEYS))
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            f"unknown key {unknown[0]!r} in a direct invocation envelope; "
            f"the keys are {', '.join(_ENVELOPE_KEYS)}",
            unknown[0],
        )
    path = _text(event["path"], "path")
    if not path.startswith("/"):
        raise RequestError(422, "wrong_type", f"path must start with '/', not {path!r}", "path")
    headers = _headers(event.get("headers"), "headers")
    headers.setdefault("content-type", _JSON)
    body = event.get("body")
    method = event.get("method") or ("GET" if body is None else "POST")
    raw = body if body is None or isinstance(body, str) else _dumps(body)
    base64_body = event.get("isBase64Encoded") is True
    return LambdaRequest(_text(method, "method").upper(), (path,), headers, raw, base64_body, True)


def _direct_path(doc: dict[str, Any], model_name: str) -> str:
    if "records" in doc:
        return "/predict"
    inputs = doc.get("inputs")
    if isinstance(inputs, list) and inputs and all(_is_tensor(t) for t in inputs):
        return f"/v2/models/{model_name}/infer"
    if any(k in doc for k in MLFLOW_FORMATS):
        return "/invocations"
    found = ", ".join(sorted(map(str, doc))) or "nothing"
    raise RequestError(
        422,
        "unknown_event",
        "a direct invocation must hold 'records' (/predict), 'inputs' tensors (OIP infer), "
        f"one of {', '.join(MLFLOW_FORMATS)} (/invocations) or be an envelope "
        f'{{"path": ..., "body": ...}}; found {found}',
        "event",
    )


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and "datatype" in value


def _dumps(doc: Any) -> bytes:
    # Strict JSON, as an HTTP body would be: NaN and Infinity are refused, not nulled.
    try:
        return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    except (ValueError, TypeError) as exc:
        raise RequestError(400, "malformed_json", f"the event is not valid JSON: {exc}") from None


def _rebuilt(resource: Any, params: Any) -> str | None:
    if not isinstance(resource, str) or not resource.startswith("/"):
        return None
    values = params if isinstance(params, dict) else {}
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if not isinstance(value, str):
            missing = True
            return ""
        return value

    path = _PLACEHOLDER.sub(fill, resource)
    return None if missing else path


def _candidates(rebuilt: str | None, path: str, stage: Any) -> tuple[str, ...]:
    paths = [rebuilt, path]
    if isinstance(stage, str) and stage and stage != "$default" and path.startswith(f"/{stage}/"):
        paths.append(path[len(stage) + 1 :])
    out: list[str] = []
    for p in paths:
        if p is None:
            continue
        p = p.rstrip("/") or "/"
        if p not in out:
            out.append(p)
    return tuple(out)


def _headers(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, "bad_event", f"{where} must be an object of header values", where)
    out: dict[str, str] = {}
    for key, v in value.items():
        if isinstance(v, list):
            v = ", ".join(map(str, v))
        out[str(key).lower()] = str(v)
    return out


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, "bad_event", f"{where} must be an object", where)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise RequestError(400, "bad_event", f"{where} must be a non-empty string", where)
    return value


def _raw_body(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RequestError(400, "bad_event", "body must be a string (or null)", "body")
