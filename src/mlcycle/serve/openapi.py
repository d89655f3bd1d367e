"""The server's OpenAPI 3.1 document, with request schemas built from the bundle's signature.

Clients and schema fuzzers (schemathesis) read it from ``GET /openapi.json``; the feature
schemas say exactly what :mod:`mlcycle.serve.validation` accepts.
"""

from __future__ import annotations

from typing import Any

from mlcycle import __version__
from mlcycle.serve.model import ServedModel

__all__ = ["openapi_document"]

_ERR = {"$ref": "#/components/schemas/Error"}


def openapi_document(model: ServedModel) -> dict[str, Any]:
    """The OpenAPI document for a server serving ``model``."""
    v = model.validator
    record = {
        "type": "object",
        "properties": {f: _feature_schema(model, f) for f in v.features},
        "required": list(v.features),
        "additionalProperties": v.settings.unknown_feature != "error",
    }
    schemas = {
        "Record": record,
        "Error": {
            "type": "object",
            "required": ["error", "code"],
            "properties": {
                "error": {"type": "string"},
                "code": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        },
        "PredictRequest": {
            "type": "object",
            "required": ["records"],
            "additionalProperties": False,
            "properties": {
                "records": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": v.settings.max_rows,
                    "items": {"$ref": "#/components/schemas/Record"},
                }
            },
        },
        "Prediction": {
            "type": "object",
            "required": ["label", "probabilities"],
            "properties": {
                "label": {"type": "string", "enum": list(model.classes)},
                "probabilities": {
                    "type": "object",
                    "properties": {c: {"type": "number"} for c in model.classes},
                },
            },
        },
        "InferRequest": _infer_request(),
    }
    paths = {
        "/predict": _post(
            "Predict labels and class probabilities for records keyed by feature name.",
            "PredictRequest",
            _predict_response(),
        ),
        "/invocations": _post(
            "MLflow scoring protocol: dataframe_split, dataframe_records, instances or inputs "
            "(JSON), or CSV with a header row.",
            None,
            {"type": "object", "properties": {"predictions": _array_of("Prediction")}},
        ),
        "/v2/models/{name}/infer": _post(
            "Open Inference Protocol v2 inference (JSON or binary tensor extension).",
            "InferRequest",
            {"type": "object", "required": ["model_name", "outputs"]},
            params=["name"],
        ),
        "/v2/models/{name}/versions/{version}/infer": _post(
            "Open Inference Protocol v2 inference for one version.",
            "InferRequest",
            {"type": "object", "required": ["model_name", "outputs"]},
            params=["name", "version"],
        ),
    }
    for path, summary in _GETS.items():
        params = [p for p in ("name", "version") if "{" + p + "}" in path]
        paths[path] = {"get": _get(summary, params)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlcycle serving {model.name}",
            "version": __version__,
            "description": f"Model {model.name!r} version {model.version!r}.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


_GETS = {
    "/v2": "OIP server metadata.",
    "/v2/health/live": "OIP liveness.",
    "/v2/health/ready": "OIP readiness.",
    "/v2/models/{name}": "OIP model metadata: input and output tensors.",
    "/v2/models/{name}/versions/{version}": "OIP model metadata for one version.",
    "/v2/models/{name}/ready": "OIP model readiness.",
    "/v2/models/{name}/versions/{version}/ready": "OIP model readiness for one version.",
    "/ping": "Health check (MLflow convention).",
    "/health": "Health check.",
    "/openapi.json": "This document.",
}


def _feature_schema(model: ServedModel, feature: str) -> dict[str, Any]:
    v = model.validator
    nullable = v.nullable[feature]
    if v.kinds[feature] == "numeric":
        return {"type": ["number", "null"] if nullable else "number"}
    cats = sorted(v.categories[feature])
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
    if cats and v.settings.unseen_category == "error":
        schema["enum"] = [*cats, *([None] if nullable else [])]
    return schema


def _infer_request() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    }


def _predict_response() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request_id", "model", "predictions"],
        "properties": {
            "request_id": {"type": "string"},
            "model": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            },
            "predictions": _array_of("Prediction"),
        },
    }


def _array_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": "error", "content": {"application/json": {"schema": _ERR}}}
        for s in statuses
    }


def _path_params(names: list[str]) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def _post(
    summary: str, request: str | None, response: dict[str, Any], params: list[str] | None = None
) -> dict[str, Any]:
    body_schema: dict[str, Any] = (
        {"$ref": f"#/components/schemas/{request}"} if request else {"type": "object"}
    )
    content: dict[str, Any] = {"application/json": {"schema": body_schema}}
    if request is None:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "parameters": _path_params(params or []),
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": {
                    "description": "predictions",
                    "content": {"application/json": {"schema": response}},
                },
                **_errors(400, 404, 413, 415, 422),
            },
        }
    }


def _get(summary: str, params: list[str]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": _path_params(params),
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {}}}},
            **_errors(404),
        },
    }
