"""The server's OpenAPI 3.1 document, with request schemas built from the bundle's signature.

Clients and schema fuzzers (schemathesis) read it from ``GET /openapi.json``; the feature
schemas say exactly what :mod:`mlcycle.serve.validation` accepts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcycle import __version__
from mlcycle.serve.model import ServedModel
from mlcycle.serve.oip import DATATYPES, MAX_DIM
from mlcycle.serve.protocols import MLFLOW_FORMATS

__all__ = ["openapi_document"]

_ERR = {"$ref": "#/components/schemas/Error"}
#: Numeric features are float32 in the model: larger numbers are refused (422).
_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
        "InvocationsRequest": _invocations_request(v.settings.max_rows),
        "FeedbackItem": {
            "type": "object",
            "required": ["request_id", "label"],
            "additionalProperties": False,
            "properties": {
                "request_id": {"type": "string", "description": "X-Request-ID of the prediction"},
                "row": {"type": "integer", "minimum": 0, "description": "row of the request"},
                "label": {"type": "string", "enum": list(model.classes)},
            },
        },
        "FeedbackRequest": {
            "oneOf": [
                {"$ref": "#/components/schemas/FeedbackItem"},
                _array_of("FeedbackItem"),
                {
                    "type": "object",
                    "required": ["feedback"],
                    "additionalProperties": False,
                    "properties": {
                        "feedback": _array_of("FeedbackItem"),
                        "overwrite": {"type": "boolean"},
                    },
                },
            ]
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
            "InvocationsRequest",
            {"type": "object", "properties": {"predictions": _array_of("Prediction")}},
            csv=True,
        ),
        "/v2/models/{name}/infer": _post(
            "Open Inference Protocol v2 inference (JSON or binary tensor extension).",
            "InferRequest",
            {"type": "object", "required": ["model_name", "outputs"]},
            params=["name"],
            binary=True,
        ),
        "/v2/models/{name}/versions/{version}/infer": _post(
            "Open Inference Protocol v2 inference for one version.",
            "InferRequest",
            {"type": "object", "required": ["model_name", "outputs"]},
            params=["name", "version"],
            binary=True,
        ),
    }
    paths["/feedback"] = _feedback_path()
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
    null = ["null"] if nullable else []
    if v.kinds[feature] == "numeric":  # booleans count as 1 / 0
        return {
            "type": ["number", "boolean", *null],
            "minimum": -_FLOAT32_MAX,
            "maximum": _FLOAT32_MAX,
        }
    cats = sorted(v.categories[feature])
    if cats and v.settings.unseen_category == "error":  # "" and null are missing values
        return {"enum": [*cats, *(["", None] if nullable else [])]}
    return {"type": ["string", "integer", *null]}  # integers are read as their decimal text


def _infer_request() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {"type": "integer", "minimum": 0, "maximum": MAX_DIM},
            },
            "datatype": {"enum": list(DATATYPES)},
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


def _invocations_request(max_rows: int) -> dict[str, Any]:
    rows = {"type": "array", "minItems": 1, "maxItems": max_rows}
    return {
        "type": "object",
        "description": "Exactly one of dataframe_split, dataframe_records, instances or "
        "inputs, and optionally params.",
        "oneOf": [{"required": [k]} for k in MLFLOW_FORMATS],
        "additionalProperties": False,
        "properties": {
            "dataframe_split": {
                "type": "object",
                "required": ["columns", "data"],
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {**rows, "items": {"type": "array"}},
                },
            },
            "dataframe_records": {**rows, "items": {"$ref": "#/components/schemas/Record"}},
            "instances": rows,
            "inputs": {"type": ["object", "array"]},
            "params": {"type": ["object", "null"]},
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
    summary: str,
    request: str,
    response: dict[str, Any],
    params: list[str] | None = None,
    *,
    csv: bool = False,
    binary: bool = False,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}
    }
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    answers: dict[str, Any] = {"application/json": {"schema": response}}
    if binary:  # the binary tensor extension: JSON, then raw tensors
        answers["application/octet-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "parameters": _path_params(params or []),
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": {"description": "predictions", "content": answers},
                **_errors(400, 404, 413, 415, 422),
            },
        }
    }


def _feedback_path() -> dict[str, Any]:
    counts = {k: {"type": "integer"} for k in ("stored", "replaced", "unchanged")}
    return {
        "post": {
            "summary": "True labels for logged predictions (joined by request id and row).",
            "parameters": [
                {
                    "name": "overwrite",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "boolean"},
                    "description": "replace labels already given (kept as previous_label)",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}
                },
            },
            "responses": {
                "200": {
                    "description": "stored",
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": counts}}
                    },
                },
                **_errors(400, 404, 409, 413, 422, 503),
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
