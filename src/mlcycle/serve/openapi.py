"""The server's OpenAPI 3.1 document, with request schemas built from the bundle's signature.

Clients and schema fuzzers (schemathesis) read it from ``GET /openapi.json``; the feature
schemas say exactly what :mod:`mlcycle.serve.validation` accepts. The admin routes
(:mod:`mlcycle.serve.admin`) are documented with the ``bearerAuth`` security scheme; the
prediction routes with the ``X-Model-Arm`` request header (force an arm during a rollout)
and the ``X-Model-Arm`` / ``X-Model-Version`` / ``X-Request-ID`` response headers.
``/predict`` documents its 202 answer (rows pending human review) and ``X-Callback-URL``;
the review routes (:mod:`mlcycle.serve.review_routes`) their 401 without a security
requirement, since the reviewer API is open when the server has no token.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcycle import __version__
from mlcycle.review.settings import AUTOMATION_MODES
from mlcycle.rollout.router import ARMS
from mlcycle.rollout.settings import MODES as ROLLOUT_MODES
from mlcycle.serve.model import ServedModel
from mlcycle.serve.oip import DATATYPES, MAX_DIM
from mlcycle.serve.protocols import MLFLOW_FORMATS

__all__ = ["ADMIN_ACTIONS", "openapi_document"]

_ERR = {"$ref": "#/components/schemas/Error"}
#: The actions of ``POST /admin/rollout/{action}`` (those of
#: :data:`mlcycle.rollout.controller.ACTIONS`, which imports SQLAlchemy; a test keeps
#: them equal).
ADMIN_ACTIONS = ("pause", "resume", "promote", "rollback")
_MAX_ID = 2**63 - 1  # rollout ids (admin.MAX_ROLLOUT_ID)
_REVIEW_ID = "^rv-[0-9a-f]{20}$"
_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
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
                "status": {
                    "enum": ["answered"],
                    "description": "in automation modes other than full",
                },
            },
        },
        "PendingPrediction": {
            "type": "object",
            "required": ["status", "review_id", "poll"],
            "properties": {
                "status": {"enum": ["pending"]},
                "review_id": {"type": "string", "pattern": _REVIEW_ID},
                "poll": {"type": "string", "description": "GET it for the decision"},
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
        "FeedbackResult": _feedback_result(),
        **_admin_schemas(),
        **_review_schemas(list(model.classes)),
    }
    paths = {
        "/predict": _predict_path(),
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
    paths.update(_review_paths())
    paths.update(_admin_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlcycle serving {model.name}",
            "version": __version__,
            "description": f"Model {model.name!r} version {model.version!r}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token: MLCYCLE_ADMIN_TOKEN (or the file "
                    "serve.admin.token_file) on the server. Without one the admin API is "
                    "disabled (403).",
                }
            },
        },
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
    shape = next((b.shape for b in v.blocks if b.shape and feature in b.features), None)
    if shape is not None:  # an image: [C][H][W] numbers, or [H][W] for one channel
        return _image_schema(shape)
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


def _image_schema(shape: tuple[int, int, int]) -> dict[str, Any]:
    def nested(dims: tuple[int, ...]) -> dict[str, Any]:
        if not dims:
            return {"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX}
        return {
            "type": "array",
            "minItems": dims[0],
            "maxItems": dims[0],
            "items": nested(dims[1:]),
        }

    c, h, w = shape
    options = [nested((c, h, w))] + ([nested((h, w))] if c == 1 else [])
    return {
        "description": f"an image: {c} channel(s) of {h}x{w} numbers",
        **({"oneOf": options} if len(options) > 1 else options[0]),
    }


def _infer_request() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
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


def _predict_path() -> dict[str, Any]:
    path = _post(
        "Predict labels and class probabilities for records keyed by feature name. In an "
        "automation mode other than full, rows that need a person are queued for review "
        "(202; each pending row has a review id to poll).",
        "PredictRequest",
        _predict_response(),
    )
    op = path["post"]
    op["parameters"].append({
        "name": "X-Callback-URL",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "http(s) URL the server POSTs each review decision of this request "
        "to (automation modes other than full; ignored in full mode)",
    })  # fmt: skip
    pending = _predict_response(_array_of_any("Prediction", "PendingPrediction"))
    pending["required"] = [*pending["required"], "mode", "pending"]
    op["responses"]["202"] = {
        "description": "some rows wait for human review (automation modes other than full)",
        "content": {"application/json": {"schema": pending}},
        "headers": _HEADERS,
    }
    op["responses"].update(_errors(503))
    op["responses"]["503"]["description"] = "the review queue cannot be written (retry)"
    return path


def _array_of_any(*names: str) -> dict[str, Any]:
    return {"type": "array", "items": {"anyOf": [_ref(n) for n in names]}}


def _predict_response(predictions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request_id", "model", "predictions"],
        "properties": {
            "request_id": {"type": "string"},
            "model": {
                "type": "object",
                "required": ["name", "version", "arm"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "arm": {
                        "type": "string",
                        "enum": list(ARMS),
                        "description": "the arm that answered (challenger: during a rollout)",
                    },
                },
            },
            "predictions": predictions or _array_of("Prediction"),
            "mode": {"enum": list(AUTOMATION_MODES), "description": "when not full"},
            "pending": {"type": "integer", "description": "rows waiting for review"},
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
            "parameters": [*_path_params(params or []), _ARM_PARAMETER],
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": {"description": "predictions", "content": answers, "headers": _HEADERS},
                **_errors(400, 404, 413, 415, 422),
                "409": {
                    "description": "X-Model-Arm asks for the challenger, but no rollout runs; "
                    "or the automation mode is not full (every route but /predict); or the "
                    "request id already has other rows queued for review (/predict)",
                    "content": {"application/json": {"schema": _ERR}},
                },
            },
        }
    }


_ARM_PARAMETER = {
    "name": "X-Model-Arm",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": list(ARMS)},
    "description": "force the arm that answers (during a rollout; otherwise the routing "
    "decides). challenger without a rollout: 409; another value: 400.",
}
_HEADERS = {
    "X-Model-Arm": {
        "description": "the arm that answered",
        "required": True,
        "schema": {"type": "string", "enum": list(ARMS)},
    },
    "X-Model-Version": {
        "description": "the answering model's version",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Request-ID": {
        "description": "the request id (the caller's own, if sent)",
        "required": True,
        "schema": {"type": "string"},
    },
}


def _feedback_result() -> dict[str, Any]:
    counts = {k: {"type": "integer"} for k in ("stored", "replaced", "unchanged", "rejected")}
    return {
        "type": "object",
        "required": ["stored", "replaced", "unchanged", "rejected", "problems"],
        "properties": {
            **counts,
            "problems": {
                "type": "array",
                "description": "the rows skipped (skip_invalid): index, request_id, row, "
                "code, message (and line, for CSV)",
                "items": {"type": "object"},
            },
        },
    }


def _feedback_path() -> dict[str, Any]:
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
                    "content": {"application/json": {"schema": _ref("FeedbackResult")}},
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


# -- the admin API ----------------------------------------------------------------------


def _admin_schemas() -> dict[str, Any]:
    """The admin API's bodies (responses are described, not pinned field by field)."""
    number = {"type": "number"}
    text = {"type": "string"}
    arm = {
        "type": ["object", "null"],
        "properties": {"name": text, "version": text, "arm": text, "bundle": text},
    }
    return {
        "Rollout": {
            "type": "object",
            "description": "A rollout as the store holds it (see mlcycle rollout status).",
            "properties": {
                "id": {"type": "integer"},
                "model_name": text,
                "mode": {"type": "string", "enum": list(ROLLOUT_MODES)},
                "phase": text,
                "state": text,
                "step": {"type": "integer"},
                "weight": number,
                "shadow_percent": number,
                "steps": {"type": "array", "items": number},
                "champion_version": text,
                "challenger_version": text,
                "revision": {"type": "integer"},
                "active": {"type": "boolean"},
                "settings": {"type": "object"},
                "last_analysis": {"type": ["object", "null"]},
            },
        },
        "RolloutAnswer": {
            "type": "object",
            "required": ["rollout"],
            "properties": {"rollout": {"$ref": "#/components/schemas/Rollout"}},
        },
        "RolloutStatus": {
            "type": "object",
            "required": ["rollout", "routing", "arms"],
            "properties": {
                "rollout": {"oneOf": [{"$ref": "#/components/schemas/Rollout"}, {"type": "null"}]},
                "routing": {
                    "type": "object",
                    "properties": {
                        "weight": number,
                        "shadow_percent": number,
                        "rollout_id": {"type": ["integer", "null"]},
                        "revision": {"type": ["integer", "null"]},
                    },
                },
                "arms": {
                    "type": "object",
                    "properties": {name: arm for name in ARMS},
                },
                "shadow": {"type": "object"},
            },
        },
        "RolloutStart": {
            "type": "object",
            "required": ["mode", "challenger"],
            "additionalProperties": False,
            "properties": {
                "mode": {"type": "string", "enum": list(ROLLOUT_MODES)},
                "challenger": {
                    "type": "string",
                    "minLength": 1,
                    "description": "the challenger's bundle folder on the server",
                },
                "version": {"type": "string", "description": "its registry version"},
                "reason": text,
                "settings": {
                    "type": "object",
                    "description": "serve.rollout overrides: steps, bake, analysis, ...",
                },
            },
        },
        "RolloutAction": {
            "type": "object",
            "properties": {"reason": text},
        },
        "RolloutEvent": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "rollout_id": {"type": "integer"},
                "time": number,
                "action": text,
                "from_phase": {"type": ["string", "null"]},
                "to_phase": text,
                "from_state": {"type": ["string", "null"]},
                "to_state": text,
                "from_weight": {"type": ["number", "null"]},
                "to_weight": number,
                "step": {"type": "integer"},
                "reason": text,
                "metrics": {"type": ["object", "null"]},
                "who": text,
            },
        },
        "Reloaded": {
            "type": "object",
            "required": ["name", "version", "bundle"],
            "properties": {"name": text, "version": text, "bundle": text},
        },
    }


def _admin_paths() -> dict[str, Any]:
    rollout = _ref("RolloutAnswer")
    action = {
        "name": "action",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(ADMIN_ACTIONS)},
    }
    history_params = [
        _query("limit", {"type": "integer", "minimum": 1}, "at most this many (default 100)"),
        _query(
            "rollout",
            {"type": "integer", "minimum": 1, "maximum": _MAX_ID},
            "only this rollout's transitions",
        ),
    ]
    return {
        "/admin/rollout": {
            "get": _admin(
                "The latest rollout, this worker's arms and weights.",
                _ref("RolloutStatus"),
                errors=(409,),
            ),
            "post": _admin(
                "Start a rollout of a challenger bundle (shadow, bluegreen or canary).",
                rollout,
                body=_ref("RolloutStart"),
                status="201",
                errors=(400, 409, 413, 422),
            ),
        },
        "/admin/rollout/history": {
            "get": _admin(
                "The rollouts' transitions, newest first.",
                {
                    "type": "object",
                    "required": ["events"],
                    "properties": {"events": _array_of("RolloutEvent")},
                },
                params=history_params,
                errors=(400, 409),
            )
        },
        "/admin/rollout/{action}": {
            "post": _admin(
                "Pause, resume, promote or roll back the active rollout.",
                rollout,
                body=_ref("RolloutAction"),
                body_required=False,
                params=[action],
                errors=(400, 404, 409, 413, 422),
            )
        },
        "/admin/reload": {
            "post": _admin(
                "Load the champion's bundle folder again (not during a rollout).",
                _ref("Reloaded"),
                errors=(409, 422),
            )
        },
        "/admin/automation": {
            "get": _admin(
                "The live automation mode and threshold, and the mode this worker answers in.",
                _ref("AutomationStatus"),
            ),
            "post": _admin(
                "Set the automation mode (and partial mode's threshold) for every worker "
                "sharing the store; each follows within a second.",
                _ref("AutomationStatus"),
                body=_ref("AutomationChange"),
                errors=(400, 409, 413, 422, 503),
            ),
        },
        "/admin/feedback": {
            "post": _admin(
                "Import true labels from a CSV file (request_id, label and optionally row), "
                "as mlcycle feedback import does.",
                _ref("FeedbackResult"),
                body={"type": "string"},
                body_type="text/csv",
                params=[
                    _query("overwrite", {"type": "boolean"}, "replace labels already given"),
                    _query(
                        "skip_invalid",
                        {"type": "boolean"},
                        "store the valid rows and list the others (default: all or none)",
                    ),
                ],
                errors=(400, 404, 409, 413, 415, 422, 503),
            )
        },
    }


# -- the review queue -------------------------------------------------------------------


def _review_schemas(classes: list[str]) -> dict[str, Any]:
    text, number, count = {"type": "string"}, {"type": "number"}, {"type": "integer"}
    maybe_text, maybe_number = {"type": ["string", "null"]}, {"type": ["number", "null"]}
    states = {"type": "string", "enum": ["pending", "escalated", "labelled"]}
    item = {
        "type": "object",
        "description": "suggestion, confidence and probabilities only in the modes that "
        "show them (assist, partial)",
        "required": ["review_id", "state", "mode", "created_at", "features", "label", "skips"],
        "properties": {
            "review_id": text, "state": states, "request_id": text, "row": count,
            "mode": {"type": "string", "enum": list(AUTOMATION_MODES)},
            "created_at": number, "model_name": text, "model_version": maybe_text,
            "features": {"type": "object"}, "label": maybe_text, "decided_by": maybe_text,
            "decided_at": maybe_number, "skips": count, "suggestion": maybe_text,
            "confidence": maybe_number, "probabilities": {"type": ["object", "null"]},
        },
    }  # fmt: skip
    event = {
        "type": "object",
        "properties": {"time": number, "action": text, "who": text, "label": maybe_text,
                       "note": text},
    }  # fmt: skip
    detail = {
        "allOf": [
            _ref("ReviewItem"),
            {
                "type": "object",
                "required": ["classes", "events"],
                "properties": {
                    "classes": {"type": "array", "items": text},
                    "events": {"type": "array", "items": event},
                },
            },
        ]
    }
    part = {"type": "object", "properties": {"rows": {"type": "object"},
                                             "reviews": {"type": "object"},
                                             "agreement": {"type": "object"},
                                             "automation_rate": maybe_number}}  # fmt: skip
    return {
        "ReviewPoll": {
            "type": "object",
            "required": ["review_id", "state", "label", "decided_by", "decided_at"],
            "properties": {
                "review_id": text,
                "request_id": text,
                "row": count,
                "state": states,
                "label": maybe_text,
                "decided_by": maybe_text,
                "decided_at": maybe_number,
            },
        },
        "ReviewItem": item,
        "ReviewDetail": detail,
        "ReviewList": {
            "type": "object",
            "required": ["items", "counts"],
            "properties": {"items": _array_of("ReviewItem"), "counts": {"type": "object"}},
        },
        "ReviewDecision": {
            "type": "object",
            "required": ["action", "reviewer"],
            "additionalProperties": False,
            "properties": {
                "action": {"type": "string", "enum": ["label", "skip", "escalate"]},
                "label": {"type": "string", "enum": classes, "description": "for label"},
                "reviewer": {"type": "string", "minLength": 1, "description": "who decides"},
                "note": text,
            },
        },
        "ReviewStats": {
            "allOf": [
                part,
                {
                    "type": "object",
                    "required": ["rows", "automation_rate", "agreement", "by_mode"],
                    "properties": {"by_mode": {"type": "object", "additionalProperties": part}},
                },
            ]
        },
        "AutomationStatus": {
            "type": "object",
            "required": ["mode", "threshold", "source", "worker"],
            "properties": {
                "model_name": text,
                "mode": {"type": "string", "enum": list(AUTOMATION_MODES)},
                "threshold": number,
                "revision": count,
                "updated_at": maybe_number,
                "updated_by": text,
                "source": {"type": "string", "enum": ["config", "store"]},
                "worker": {"type": "object", "description": "the mode this worker answers in"},
                "modes": {"type": "array", "items": text},
            },
        },
        "AutomationChange": {
            "type": "object",
            "required": ["mode"],
            "additionalProperties": False,
            "properties": {
                "mode": {"type": "string", "enum": list(AUTOMATION_MODES)},
                "threshold": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    }


def _review_op(
    summary: str,
    response: dict[str, Any] | None,
    *,
    errors: tuple[int, ...],
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    reviewer: bool = True,
) -> dict[str, Any]:
    """A review operation; ``reviewer``: behind the reviewer token when one is configured."""
    ok: dict[str, Any] = {"description": "ok"}
    if response is not None:
        ok["content"] = {"application/json": {"schema": response}}
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["review"],
        "parameters": params or [],
        "responses": {"200": ok, **_errors(*errors)},
    }
    if reviewer:
        op["description"] = (
            "Send 'Authorization: Bearer <token>' with the reviewers' token "
            "(serve.automation.reviewer_token_file) or the admin token, when the server has "
            "either; without both the reviewer API is open."
        )
        op["responses"]["401"] = {
            "description": "no bearer token, or a wrong one",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
            "content": {"application/json": {"schema": _ERR}},
        }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


def _review_paths() -> dict[str, Any]:
    review_id = {
        "name": "review_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "a review_id of a pending row of a POST /predict answer",
    }
    listing = [
        _query("state", {"type": "string", "enum": ["pending", "escalated", "labelled"]},
               "only items in this state (default: all)"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 50"),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9}, "default 0"),
    ]  # fmt: skip
    exclude = _query("exclude", {"type": "string"}, "comma-separated review ids to leave out")
    since = _query(
        "since", {"type": "number", "minimum": 0, "maximum": 1e10}, "unix seconds (default: all)"
    )
    next_op = _review_op(
        "The pending item to decide next (the oldest; skipped ones behind the others).",
        _ref("ReviewDetail"),
        errors=(400, 503),
        params=[exclude],
    )
    next_op["responses"]["204"] = {"description": "the queue is empty"}
    page = _review_op("The review web page.", None, errors=(404,), reviewer=False)
    page["responses"]["200"]["content"] = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/reviews/{review_id}": {
            "get": _review_op(
                "The decision on a pending row, for the caller who sent it (no token: the "
                "unguessable id is the key).",
                _ref("ReviewPoll"),
                errors=(404, 503),
                params=[review_id],
                reviewer=False,
            )
        },
        "/review": {"get": page},
        "/review/api/items": {
            "get": _review_op(
                "Review items (open ones in queue order) and the count per state.",
                _ref("ReviewList"),
                errors=(400, 422, 503),
                params=listing,
            )
        },
        "/review/api/items/{review_id}": {
            "get": _review_op(
                "One item: its features, the model's classes and what happened to it.",
                _ref("ReviewDetail"),
                errors=(404, 503),
                params=[review_id],
            ),
            "post": _review_op(
                "Decide an item: label (final; also stored as the prediction's feedback), "
                "skip (behind the others) or escalate.",
                _ref("ReviewDetail"),
                errors=(400, 404, 409, 413, 422, 503),
                params=[review_id],
                body="ReviewDecision",
            ),
        },
        "/review/api/next": {"get": next_op},
        "/review/api/stats": {
            "get": _review_op(
                "Automation rate (rows answered automatically / all rows) and agreement "
                "(labels equal to the model's suggestion), overall and per mode.",
                _ref("ReviewStats"),
                errors=(400, 503),
                params=[since],
            )
        },
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _admin(
    summary: str,
    response: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    body_type: str = "application/json",
    body_required: bool = True,
    params: list[dict[str, Any]] | None = None,
    status: str = "200",
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    """One admin operation: bearer security, 401 (no or wrong token) and 403 (disabled)."""
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["admin"],
        "security": _BEARER,
        "parameters": params or [],
        "responses": {
            status: {"description": "ok", "content": {"application/json": {"schema": response}}},
            "401": {
                "description": "no bearer token, or a wrong one",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
                "content": {"application/json": {"schema": _ERR}},
            },
            "403": {
                "description": "the admin API is disabled (no token configured on the server)",
                "content": {"application/json": {"schema": _ERR}},
            },
            **_errors(*errors),
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {body_type: {"schema": body}},
        }
    return op
