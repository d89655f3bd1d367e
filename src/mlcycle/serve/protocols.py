"""Request bodies in and response bodies out, for ``/predict`` and MLflow's ``/invocations``.

Decoders turn raw bytes plus a content type into a :class:`FeatureBatch` (through the one
:class:`~mlcycle.serve.validation.Validator`), raising
:class:`~mlcycle.serve.errors.RequestError` with a 4xx status for anything wrong.
Encoders turn labels and probabilities into JSON-ready documents.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import orjson

from mlcycle.serve.errors import RequestError
from mlcycle.serve.validation import FeatureBatch, Validator

__all__ = [
    "MLFLOW_FORMATS",
    "decode_invocations",
    "decode_predict",
    "media_type",
    "parse_json",
    "prediction_rows",
]

#: The JSON shapes ``/invocations`` accepts (MLflow's scoring protocol).
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def media_type(content_type: str | None) -> str:
    """The bare media type of a ``Content-Type`` header, lower-cased.

    Examples
    --------
    >>> media_type("application/json; charset=utf-8")
    'application/json'
    """
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``, or a 400 naming the problem."""
    if not body.strip():
        raise RequestError(400, "empty_body", "the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _require_json(content_type: str | None, route: str) -> None:
    kind = media_type(content_type)
    if kind != "application/json" and not kind.endswith("+json"):
        raise RequestError(
            415,
            "unsupported_media_type",
            f"{route} takes Content-Type application/json, not {kind or 'none'}",
            "Content-Type",
        )


def decode_predict(body: bytes, content_type: str | None, validator: Validator) -> FeatureBatch:
    """``{"records": [{feature: value, ...}, ...]}`` → validated inputs."""
    _require_json(content_type, "/predict")
    doc = parse_json(body)
    if not isinstance(doc, dict) or "records" not in doc:
        raise RequestError(
            422,
            "wrong_shape",
            'the body must be an object {"records": [{feature: value, ...}]}',
            "records",
        )
    extra = sorted(set(doc) - {"records"})
    if extra:
        raise RequestError(
            422,
            "unknown_field",
            f"unknown top-level field {extra[0]!r}; only 'records' is accepted",
            extra[0],
        )
    return validator.records(doc["records"])


def decode_invocations(body: bytes, content_type: str | None, validator: Validator) -> FeatureBatch:
    """MLflow scoring input (JSON in any of :data:`MLFLOW_FORMATS`, or CSV) → inputs."""
    kind = media_type(content_type)
    if kind in ("text/csv", "application/csv"):
        return _decode_csv(body, validator)
    if kind != "application/json" and not kind.endswith("+json"):
        raise RequestError(
            415,
            "unsupported_media_type",
            f"/invocations takes application/json or text/csv, not {kind or 'none'}",
            "Content-Type",
        )
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise RequestError(
            422,
            "wrong_shape",
            f"the body must be an object with one of {', '.join(MLFLOW_FORMATS)}",
        )
    keys = [k for k in MLFLOW_FORMATS if k in doc]
    extra = sorted(set(doc) - set(MLFLOW_FORMATS) - {"params"})
    if len(keys) != 1 or extra:
        found = ", ".join(sorted(doc)) or "nothing"
        raise RequestError(
            422,
            "wrong_shape",
            f"the body must have exactly one of {', '.join(MLFLOW_FORMATS)} "
            f"(and optionally params); found {found}",
            (keys[1:] or extra or ["body"])[0],
        )
    if not isinstance(doc.get("params", {}), dict | None):
        raise RequestError(
            422, "wrong_type", "params must be an object of parameter: value pairs", "params"
        )
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise RequestError(
                422,
                "wrong_type",
                'dataframe_split must be {"columns": [...], "data": [[...]]}',
                key,
            )
        return validator.table(value.get("columns"), value.get("data"), key)
    if key == "dataframe_records":
        return validator.records(value, key)
    if isinstance(value, dict):
        return validator.columns(value, key)
    if isinstance(value, list) and value and isinstance(value[0], list):
        return validator.positional(value, key)
    return validator.records(value, key)


def _decode_csv(body: bytes, validator: Validator) -> FeatureBatch:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestError(400, "malformed_csv", "the CSV body is not UTF-8 text") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise RequestError(400, "malformed_csv", f"the CSV body cannot be parsed: {exc}") from None
    rows = [r for r in rows if r]
    if not rows:
        raise RequestError(400, "empty_body", "the CSV body is empty; send a header and rows")
    return validator.text_rows(rows[0], rows[1:], "csv")


def prediction_rows(
    labels: np.ndarray[Any, Any], proba: np.ndarray[Any, Any], classes: list[str]
) -> list[dict[str, Any]]:
    """One ``{"label": ..., "probabilities": {class: p}}`` per row.

    Examples
    --------
    >>> prediction_rows(np.array(["a"]), np.array([[0.25, 0.75]], np.float32), ["a", "b"])
    [{'label': 'a', 'probabilities': {'a': 0.25, 'b': 0.75}}]
    """
    if len(proba) <= 8:  # numpy's per-call overhead dominates for a few rows
        values = [[round(p, 7) for p in row] for row in proba.tolist()]
    else:
        values = proba.astype(np.float64).round(7).tolist()
    return [
        {"label": label, "probabilities": dict(zip(classes, p, strict=True))}
        for label, p in zip(labels.tolist(), values, strict=True)
    ]
