"""Open Inference Protocol v2 (KServe / Triton REST): tensors in, tensors out.

Supports JSON tensor data and the binary tensor data extension (the JSON header's length
in ``Inference-Header-Content-Length``, raw little-endian tensors after it; ``BYTES``
elements each prefixed by a 4-byte length), which stock clients such as
``tritonclient.http`` use by default.

A request may send the model's own inputs (``numeric`` ``FP32 [N, k]`` and, for models
with categorical features, ``categorical`` ``BYTES [N, m]``; see ``GET
/v2/models/{name}``) or one tensor per feature, each ``[N]`` or ``[N, 1]``, named as the
feature. Outputs are ``label`` (``BYTES [N]``) and ``probabilities`` (``FP32 [N, C]``).
"""

from __future__ import annotations

import math
import reprlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mlcycle.serve.errors import RequestError
from mlcycle.serve.protocols import media_type, parse_json
from mlcycle.serve.validation import FeatureBatch, Validator

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "MAX_DIM",
    "InferRequest",
    "decode_infer",
    "encode_infer",
    "model_metadata",
    "server_metadata",
]

#: Header carrying the JSON part's length in binary-extension requests and responses.
HEADER_LENGTH = "Inference-Header-Content-Length"

_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
#: The tensor datatypes a request may use.
DATATYPES = ("BYTES", *_DTYPES)
#: Largest tensor dimension accepted (int32's maximum); numpy cannot even make an empty
#: array whose other dimensions multiply past 2**63 bytes.
MAX_DIM = 2**31 - 1
_OUTPUTS = ("label", "probabilities")


@dataclass
class InferRequest:
    """A decoded inference request."""

    batch: FeatureBatch
    id: str | None = None
    outputs: list[str] = field(default_factory=lambda: list(_OUTPUTS))
    binary: set[str] = field(default_factory=set)


def server_metadata(version: str) -> dict[str, Any]:
    """``GET /v2``: the server's name, version and protocol extensions."""
    return {"name": "mlcycle", "version": version, "extensions": ["binary_tensor_data"]}


def model_metadata(
    name: str, version: str, validator: Validator, classes: Sequence[str]
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs and outputs from the bundle's signature."""
    inputs = [
        {
            "name": b.name,
            "datatype": "FP32" if b.numeric else "BYTES",
            "shape": [-1, *b.shape] if b.shape is not None else [-1, len(b.features)],
            "parameters": {"features": list(b.features)},
        }
        for b in validator.blocks
    ]
    return {
        "name": name,
        "versions": [version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [-1, len(classes)],
                "parameters": {"classes": list(classes)},
            },
        ],
    }


def decode_infer(
    body: bytes, content_type: str | None, header_length: str | None, validator: Validator
) -> InferRequest:
    """An infer request body (JSON, or JSON + binary tensors) → validated inputs."""
    head, blob = _split(body, content_type, header_length)
    doc = parse_json(head)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise RequestError(
            422,
            "wrong_shape",
            'the body must be {"inputs": [{"name", "shape", "datatype", '
            '"data"}, ...]} with at least one input',
            "inputs",
        )
    tensors = _tensors(doc["inputs"], blob)
    blocks = {b.name for b in validator.blocks}
    if blocks & tensors.keys():
        batch = validator.arrays(tensors, "inputs")
    else:
        batch = validator.columns(_feature_columns(tensors), "inputs")
    outputs, binary = _requested(doc)
    rid = doc.get("id")
    return InferRequest(batch, rid if isinstance(rid, str) else None, outputs, binary)


def encode_infer(
    req: InferRequest,
    labels: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any],
    *,
    name: str,
    version: str,
) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers for ``req``'s requested outputs."""
    values = {"label": labels, "probabilities": proba}
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in req.outputs:
        arr = values[out]
        entry: dict[str, Any] = {
            "name": out,
            "datatype": "BYTES" if out == "label" else "FP32",
            "shape": list(arr.shape),
        }
        if out in req.binary:
            raw = _bytes_blob(arr) if out == "label" else arr.astype("<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = arr.tolist() if out == "label" else arr.ravel().tolist()
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": outputs}
    if req.id is not None:
        doc["id"] = req.id
    head = orjson.dumps(doc)
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }


# -- decoding helpers -------------------------------------------------------------------


def _split(body: bytes, content_type: str | None, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        kind = media_type(content_type)
        if kind not in ("", "application/json") and not kind.endswith("+json"):
            raise RequestError(
                415,
                "unsupported_media_type",
                f"infer takes application/json (or the binary "
                f"tensor extension with {HEADER_LENGTH}), not {kind}",
                "Content-Type",
            )
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 < n <= len(body):
        raise RequestError(
            400,
            "bad_header",
            f"{HEADER_LENGTH} must be the JSON header's length in bytes "
            f"(1..{len(body)}), not {header_length!r}",
            HEADER_LENGTH,
        )
    return body[:n], body[n:]


def _tensors(specs: list[Any], blob: bytes) -> dict[str, np.ndarray[Any, Any]]:
    out: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for i, spec in enumerate(specs):
        where = f"inputs[{i}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestError(422, "wrong_shape", f"{where} must be an object with a name", where)
        name = spec["name"]
        shape = _shape(spec.get("shape"), f"{where}.shape")
        datatype = spec.get("datatype")
        if datatype not in DATATYPES:  # a tuple: datatype may be any JSON value
            raise RequestError(
                422,
                "wrong_type",
                f"{where}.datatype {reprlib.repr(datatype)} is not an OIP datatype "
                f"({', '.join(DATATYPES)})",
                f"{where}.datatype",
            )
        params = spec.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(blob):
                raise RequestError(
                    400,
                    "bad_binary",
                    f"{where}.parameters.binary_data_size {reprlib.repr(size)} does not "
                    f"fit the {len(blob) - offset} binary bytes left",
                    f"{where}.parameters",
                )
            arr = _from_binary(blob[offset : offset + size], datatype, shape, where)
            offset += size
        else:
            arr = _from_json(spec.get("data"), datatype, shape, where)
        if name in out:
            raise RequestError(422, "duplicate_input", f"input {name!r} is sent twice", where)
        out[name] = arr
    if offset != len(blob):
        raise RequestError(
            400,
            "bad_binary",
            f"{len(blob) - offset} binary bytes follow the tensors "
            "declared; each binary input needs parameters.binary_data_size",
            "body",
        )
    return out


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 4
        or not all(type(d) is int and 0 <= d <= MAX_DIM for d in value)
    ):
        raise RequestError(
            422,
            "wrong_shape",
            f"{where} must be a list of one to four integers from 0 to {MAX_DIM}, "
            f"e.g. [N, k] (images: [N, C, H, W]); got {reprlib.repr(value)}",
            where,
        )
    return tuple(value)


def _from_json(
    data: Any, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray[Any, Any]:
    if not isinstance(data, list):
        raise RequestError(422, "wrong_type", f"{where}.data must be a list", f"{where}.data")
    flat = _flatten(data, f"{where}.data")
    if len(flat) != math.prod(shape):
        raise RequestError(
            422,
            "wrong_shape",
            f"{where}.data has {len(flat)} elements but shape {list(shape)} "
            f"needs {math.prod(shape)}",
            f"{where}.data",
        )
    if datatype != "BYTES" and flat:
        try:
            fast = np.array(flat)
        except (ValueError, TypeError, OverflowError):
            fast = np.empty(0, dtype=object)
        if fast.dtype.kind in "fiub" and fast.ndim == 1:
            return fast.reshape(shape)
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return arr.reshape(shape)


def _flatten(data: list[Any], where: str) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]  # a stack, not recursion: nesting depth is the client's choice
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _from_binary(
    raw: bytes, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray[Any, Any]:
    n = math.prod(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                break
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                break
            items.append(raw[pos : pos + length])
            pos += length
        if pos != len(raw) or len(items) != n:
            raise RequestError(
                400,
                "bad_binary",
                f"{where}: the BYTES data does not hold {n} length-prefixed elements",
                where,
            )
        arr = np.empty(n, dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    dtype = _DTYPES[datatype]
    if len(raw) != n * dtype.itemsize:
        raise RequestError(
            400,
            "bad_binary",
            f"{where}: {len(raw)} bytes of {datatype} do not make shape "
            f"{list(shape)} ({n * dtype.itemsize} bytes)",
            where,
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _feature_columns(tensors: Mapping[str, np.ndarray[Any, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for name, arr in tensors.items():
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise RequestError(
                422,
                "wrong_shape",
                f"feature tensor {name!r} has shape {list(arr.shape)}; a "
                "per-feature tensor is [N] or [N, 1]",
                f"inputs.{name}",
            )
        columns[name] = arr.tolist()
    return columns


def _requested(doc: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    params = doc.get("parameters")
    binary_all = isinstance(params, dict) and params.get("binary_data_output") is True
    specs = doc.get("outputs")
    if specs is None:
        return list(_OUTPUTS), set(_OUTPUTS) if binary_all else set()
    if not isinstance(specs, list):
        raise RequestError(422, "wrong_type", "outputs must be a list", "outputs")
    names: list[str] = []
    binary: set[str] = set()
    for i, spec in enumerate(specs):
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in _OUTPUTS:
            raise RequestError(
                422,
                "unknown_output",
                f"outputs[{i}] asks for {reprlib.repr(name)}; the model's outputs "
                f"are {', '.join(_OUTPUTS)}",
                f"outputs[{i}]",
            )
        if name in names:
            raise RequestError(
                422, "duplicate_output", f"output {name!r} is asked for twice", f"outputs[{i}]"
            )
        names.append(name)
        p = spec.get("parameters")
        if binary_all or (isinstance(p, dict) and p.get("binary_data") is True):
            binary.add(name)
    return names, binary


def _bytes_blob(arr: np.ndarray[Any, Any]) -> bytes:
    parts: list[bytes] = []
    for v in arr.ravel().tolist():
        b = v if isinstance(v, bytes) else str(v).encode()
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)
