"""Write a model bundle atomically, and build its signature.

The bundle is written into a hidden temporary sibling of ``dest`` and renamed into place
once every file and the manifest are on disk, so a failed export leaves nothing behind:
neither a half-written ``dest`` nor the temporary folder. Read bundles with
:class:`mlcycle.bundle.Bundle`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.bundle import (
    EVALUATION_FILE,
    FORMAT_VERSION,
    LINEAGE_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    SIGNATURE_FILE,
    sha256_file,
)
from mlcycle.data.schema import Schema
from mlcycle.exceptions import BundleError, ExportError
from mlcycle.export.onnx import OUTPUT_LABEL, OUTPUT_PROBABILITIES
from mlcycle.train.pipeline import INPUT_CATEGORICAL, INPUT_IMAGE, INPUT_NUMERIC, INPUT_TEXT

if TYPE_CHECKING:
    import onnx

__all__ = ["make_signature", "write_bundle"]

_RESERVED = frozenset(
    {MODEL_FILE, SIGNATURE_FILE, PROFILE_FILE, EVALUATION_FILE, LINEAGE_FILE, MANIFEST_FILE}
)
_DTYPES = {1: "float32", 7: "int64", 8: "string", 11: "float64"}  # onnx.TensorProto codes


def write_bundle(
    dest: Path,
    *,
    model: onnx.ModelProto,
    signature: dict[str, Any],
    profile: dict[str, Any],
    evaluation: dict[str, Any],
    lineage: dict[str, Any],
    files: Mapping[str, Path] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the bundle folder ``dest`` in one step.

    Parameters
    ----------
    dest
        The bundle folder to create. Its parent is created when missing.
    model
        The ONNX graph (``model.onnx``).
    signature
        From :func:`make_signature` (``signature.json``).
    profile, evaluation, lineage
        Written as ``profile.json``, ``evaluation.json``, ``lineage.json``: pretty,
        sorted keys, UTF-8, strict JSON (NaN and infinity are refused: use ``None``).
        numpy scalars and arrays are written as numbers and lists.
    files
        Extra files: bundle-relative POSIX path → source file, e.g.
        ``{"plots/confusion_matrix.png": Path(...)}``.
    overwrite
        Replace an existing non-empty ``dest`` (swapped in only once the new bundle is
        complete).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    BundleError
        ``dest`` exists and is not empty (without ``overwrite``) or is a file, a document
        is not JSON-serialisable, an extra file is missing or has a bad name, or the
        signature does not match the model. Nothing is left behind.
    """
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise BundleError(f"{dest} exists and is not a folder; choose another bundle path")
        if not overwrite and any(dest.iterdir()):
            raise BundleError(
                f"{dest} already exists and is not empty; choose another folder, remove it, "
                "or pass overwrite=True"
            )
    extra = _check_extra_files(files or {})
    _check_signature(signature, model)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        _write_bytes(tmp / MODEL_FILE, model.SerializeToString())
        documents = {
            SIGNATURE_FILE: signature,
            PROFILE_FILE: profile,
            EVALUATION_FILE: evaluation,
            LINEAGE_FILE: lineage,
        }
        for name, doc in documents.items():
            _write_bytes(tmp / name, _dumps(doc, name))
        for rel, source in extra.items():
            target = tmp.joinpath(*PurePosixPath(rel).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        manifest = {"format_version": FORMAT_VERSION, "files": _inventory(tmp)}
        _write_bytes(tmp / MANIFEST_FILE, _dumps(manifest, MANIFEST_FILE))
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def make_signature(
    schema: Schema, classes: list[str], model: onnx.ModelProto, model_name: str
) -> dict[str, Any]:
    """The ``signature.json`` of a bundle: what the model takes and returns.

    Parameters
    ----------
    schema
        The training data's schema (``features`` and ``label``).
    classes
        Class names in the order of the probability columns.
    model
        The ONNX graph; input and output shapes are read from it and checked against
        the schema.
    model_name
        Name recorded in the signature (e.g. the registered model name).

    Returns
    -------
    dict
        ``format_version``, ``model_name``, ``inputs`` (name, dtype, shape, features),
        ``outputs``, ``features`` (the schema's feature dicts), ``label``, ``classes``,
        ``missing_category`` (``""``) and ``opset``.

    Raises
    ------
    ExportError
        The graph's inputs or outputs do not match the schema and classes.
    """
    groups = {
        INPUT_NUMERIC: [f.name for f in schema.numeric],
        INPUT_CATEGORICAL: [f.name for f in schema.categorical],
        INPUT_TEXT: [f.name for f in schema.text],
        INPUT_IMAGE: [f.name for f in schema.image],
    }
    inputs = []
    for value in model.graph.input:
        name = value.name
        shape = _shape(value)
        # the image input is [N, C, H, W] of the schema's one image feature
        dims = _image_dims(schema) if name == INPUT_IMAGE else [len(groups.get(name, []))]
        if name not in groups or shape[1:] != dims:
            raise ExportError(
                f"the ONNX input {name!r} with shape {shape} does not match the schema "
                f"({len(groups[INPUT_NUMERIC])} numeric, {len(groups[INPUT_CATEGORICAL])} "
                f"categorical, {len(groups[INPUT_TEXT])} text, {len(groups[INPUT_IMAGE])} image "
                "features); export the model trained on this schema"
            )
        inputs.append(
            {
                "name": name,
                "dtype": _dtype(value),
                "shape": shape,
                "features": groups[name],
            }
        )
    outputs = [{"name": o.name, "dtype": _dtype(o), "shape": _shape(o)} for o in model.graph.output]
    names = [o["name"] for o in outputs]
    if names != [OUTPUT_LABEL, OUTPUT_PROBABILITIES]:
        raise ExportError(f"the ONNX outputs are {names}; expected label, probabilities")
    width = outputs[1]["shape"][1] if len(outputs[1]["shape"]) == 2 else None
    if width not in (None, len(classes)):
        raise ExportError(f"the model outputs {width} probabilities for {len(classes)} classes")
    return {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "inputs": inputs,
        "outputs": outputs,
        "features": [f.to_dict() for f in schema.features],
        "label": schema.label,
        "classes": [str(c) for c in classes],
        "missing_category": "",
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
    }


def _check_extra_files(files: Mapping[str, Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for rel, source in files.items():
        p = PurePosixPath(rel)
        if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
            raise BundleError(f"extra bundle file name {rel!r} must be a relative POSIX path")
        if p.as_posix() in _RESERVED:
            raise BundleError(f"extra bundle file {rel!r} would replace the bundle's own file")
        if not Path(source).is_file():
            raise BundleError(f"extra bundle file {rel!r}: source {source} does not exist")
        out[p.as_posix()] = Path(source)
    return out


def _check_signature(signature: Mapping[str, Any], model: onnx.ModelProto) -> None:
    if signature.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"signature format_version is {signature.get('format_version')!r}; this mlcycle "
            f"writes {FORMAT_VERSION} (build it with make_signature)"
        )
    declared = [i.get("name") for i in signature.get("inputs", [])]
    actual = [i.name for i in model.graph.input]
    if declared != actual:
        raise BundleError(
            f"the signature declares inputs {declared} but the model has {actual}; "
            "build the signature from this model with make_signature"
        )


def _dumps(doc: Any, name: str) -> bytes:
    try:
        text = json.dumps(
            doc,
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
            default=_plain,
        )
    except (TypeError, ValueError) as exc:
        raise BundleError(
            f"{name} cannot be written as JSON: {exc}. Use plain numbers, strings, lists "
            "and dicts, and None for missing values (NaN and infinity are not JSON)"
        ) from None
    return (text + "\n").encode("utf-8")


def _plain(value: Any) -> Any:
    """JSON fallback for numpy values and paths; anything else is an error."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePosixPath | Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _write_bytes(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _inventory(root: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under ``root``, by relative POSIX path."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            out[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return out


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(tmp, dest)
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _image_dims(schema: Schema) -> list[int | None]:
    return list(schema.image[0].shape or []) if len(schema.image) == 1 else [None]


def _shape(value: Any) -> list[int | None]:
    dims = value.type.tensor_type.shape.dim
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in dims]


def _dtype(value: Any) -> str:
    code = int(value.type.tensor_type.elem_type)
    return _DTYPES.get(code, f"onnx:{code}")
