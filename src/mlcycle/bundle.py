"""Read a model bundle and predict with it: the serving-light side of mlcycle.

A bundle is the folder :func:`mlcycle.export.bundle.write_bundle` writes (``model.onnx``,
``signature.json``, ``profile.json``, ``evaluation.json``, ``lineage.json``, plots and
``MANIFEST.json``). Loading checks every file against the manifest's sha256, checks the
format version and opens an onnxruntime session.

This module imports only the standard library, numpy and onnxruntime, so a serving image
needs nothing else: no pandas, scikit-learn, MLflow, onnx or Hydra.

Examples
--------
>>> bundle = Bundle.load("bundle/")                              # doctest: +SKIP
>>> labels, proba = bundle.predict(bundle.inputs_from_columns(   # doctest: +SKIP
...     {"mean radius": [14.1], "mean texture": [19.3], ...}))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mlcycle.exceptions import BundleError

__all__ = [
    "EVALUATION_FILE",
    "FORMAT_VERSION",
    "LINEAGE_FILE",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "PROFILE_FILE",
    "SIGNATURE_FILE",
    "SUPPORTED_FORMAT_VERSIONS",
    "Bundle",
    "BundleInputError",
    "image_shape",
    "sha256_file",
]

#: Bundle layout version written by this mlcycle.
FORMAT_VERSION = 1
#: Bundle layout versions this mlcycle reads.
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1,)

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
PROFILE_FILE = "profile.json"
EVALUATION_FILE = "evaluation.json"
LINEAGE_FILE = "lineage.json"
MANIFEST_FILE = "MANIFEST.json"
_REQUIRED = (MODEL_FILE, SIGNATURE_FILE, MANIFEST_FILE)
_REEXPORT = "re-export the bundle"


class BundleInputError(BundleError, ValueError):
    """Inputs do not match the bundle's signature (missing feature, wrong type or shape)."""


def image_shape(spec: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of an image input of the signature, ``None`` for a tabular input.

    An image input is float32 ``[N, C, H, W]`` (its one feature is the image); the
    tabular inputs are ``[N, k]``.

    Examples
    --------
    >>> image_shape({"name": "image", "dtype": "float32", "shape": [None, 1, 8, 8]})
    (1, 8, 8)
    >>> image_shape({"name": "numeric", "dtype": "float32", "shape": [None, 3]}) is None
    True
    """
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 4:
        return None
    c, h, w = (int(v) for v in shape[1:])
    return c, h, w


class Bundle:
    """A loaded, verified bundle with an onnxruntime session.

    Build it with :meth:`load`; the constructor takes already-verified parts.
    """

    def __init__(
        self, path: Path, signature: dict[str, Any], manifest: dict[str, Any], session: Any
    ) -> None:
        self._path = path
        self._signature = signature
        self._manifest = manifest
        self._session = session

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization: str | None = None,
    ) -> Bundle:
        """Verify the bundle at ``path`` and open its model.

        Parameters
        ----------
        path
            The bundle folder.
        intra_op_threads
            onnxruntime's intra-op thread count; ``None``: onnxruntime's default (all
            cores). ``1`` is as fast per row for small models and leaves cores to a server.
        inter_op_threads
            onnxruntime's inter-op thread count; ``None``: 1 when ``intra_op_threads`` is
            given, else onnxruntime's default.
        graph_optimization
            ``disable``, ``basic``, ``extended`` or ``all``; ``None``: onnxruntime's
            default (``all``).

        Returns
        -------
        Bundle
            The loaded bundle.

        Raises
        ------
        BundleError
            The folder or a required file is missing, a file does not match its sha256
            in ``MANIFEST.json``, the format version is not supported, or onnxruntime
            cannot load ``model.onnx``.
        """
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"bundle folder {root} does not exist or is not a folder")
        absent = [name for name in _REQUIRED if not (root / name).is_file()]
        if absent:
            raise BundleError(
                f"bundle {root} lacks {', '.join(absent)}; a bundle holds "
                f"{', '.join(_REQUIRED)} and more: {_REEXPORT}"
            )
        manifest = _read_json(root / MANIFEST_FILE)
        _check_version(manifest, MANIFEST_FILE, root)
        model_bytes = _verify(root, manifest)
        signature = _read_json(root / SIGNATURE_FILE)
        _check_version(signature, SIGNATURE_FILE, root)
        _check_signature(signature, root)
        session = _session(
            model_bytes,
            root,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            graph_optimization=graph_optimization,
        )
        bundle = cls(root, signature, manifest, session)
        bundle._check_session()
        return bundle

    # -- metadata ------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The bundle folder."""
        return self._path

    @property
    def signature(self) -> dict[str, Any]:
        """The parsed ``signature.json``."""
        return self._signature

    @property
    def classes(self) -> list[str]:
        """Class names, in the order of the probability columns."""
        return [str(c) for c in self._signature["classes"]]

    @property
    def feature_names(self) -> list[str]:
        """All feature names, in schema order."""
        return [str(f["name"]) for f in self._signature["features"]]

    @property
    def feature_names_used(self) -> list[str]:
        """Features the model reads, in input order (numeric, then categorical)."""
        return [str(n) for spec in self._signature["inputs"] for n in spec["features"]]

    @property
    def input_names(self) -> list[str]:
        """Names of the ONNX inputs (``numeric``, ``categorical``), in graph order."""
        return [str(i["name"]) for i in self._signature["inputs"]]

    @property
    def model_name(self) -> str:
        """The model's name as recorded in the signature."""
        return str(self._signature.get("model_name", ""))

    @property
    def files(self) -> list[str]:
        """Files of the bundle (relative POSIX paths), as listed in the manifest."""
        return sorted(self._manifest["files"])

    @cached_property
    def evaluation(self) -> dict[str, Any]:
        """The parsed ``evaluation.json`` (read on first use)."""
        return self._optional_json(EVALUATION_FILE)

    @cached_property
    def profile(self) -> dict[str, Any]:
        """The parsed ``profile.json`` (read on first use)."""
        return self._optional_json(PROFILE_FILE)

    @cached_property
    def lineage(self) -> dict[str, Any]:
        """The parsed ``lineage.json`` (read on first use)."""
        return self._optional_json(LINEAGE_FILE)

    def __repr__(self) -> str:
        return (
            f"Bundle(path={str(self._path)!r}, model_name={self.model_name!r}, "
            f"classes={self.classes!r})"
        )

    # -- prediction ----------------------------------------------------------------

    def inputs_from_columns(
        self, columns: Mapping[str, Sequence[Any] | np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """The model's inputs built from feature columns.

        Parameters
        ----------
        columns
            Feature name → values (one per row). Numeric values may be ``None`` or NaN
            (missing); categorical values are turned into strings, with ``None`` / NaN
            as ``""`` (missing). Columns that are not features are ignored.

        Returns
        -------
        dict
            ``numeric`` (float32 ``[N, n_numeric]``) and/or ``categorical`` (object
            array of ``str``, ``[N, n_categorical]``), as in the signature.

        Raises
        ------
        BundleInputError
            A feature is missing, columns differ in length, or a numeric feature holds
            a value that is not a number.
        """
        missing = [f for f in self.feature_names_used if f not in columns]
        if missing:
            raise BundleInputError(
                f"missing feature(s) {missing}; the model needs {self.feature_names_used}"
            )
        out: dict[str, np.ndarray[Any, Any]] = {}
        rows: int | None = None
        first = ""
        for spec in self._signature["inputs"]:
            names = [str(n) for n in spec["features"]]
            image = image_shape(spec)
            if image is not None:
                out[spec["name"]] = arr = _images(columns[names[0]], names[0], image)
                if rows is not None and len(arr) != rows:
                    raise BundleInputError(
                        f"feature '{names[0]}' has {len(arr)} images but '{first}' has {rows}"
                    )
                rows, first = len(arr), names[0]
                continue
            convert = _floats if spec["dtype"] == "float32" else _strings
            cols = [convert(columns[name], name) for name in names]
            for name, col in zip(names, cols, strict=True):
                if rows is None:
                    rows, first = len(col), name
                elif len(col) != rows:
                    raise BundleInputError(
                        f"feature '{name}' has {len(col)} values but '{first}' has {rows}; "
                        "every feature needs one value per row"
                    )
            out[spec["name"]] = np.stack(cols, axis=1)
        return out

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Predicted labels and class probabilities.

        Parameters
        ----------
        inputs
            The model's inputs, e.g. from :meth:`inputs_from_columns`.

        Returns
        -------
        labels : numpy.ndarray
            ``[N]`` of ``str``.
        probabilities : numpy.ndarray
            float32 ``[N, n_classes]``, columns in :attr:`classes` order.
        """
        labels, proba = self._session.run(["label", "probabilities"], self._feed(inputs))
        return np.asarray(labels).astype(str), np.asarray(proba, dtype=np.float32)

    def predict_proba(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        """Class probabilities, float32 ``[N, n_classes]`` (see :meth:`predict`)."""
        (proba,) = self._session.run(["probabilities"], self._feed(inputs))
        return np.asarray(proba, dtype=np.float32)

    def predict_columns(
        self, columns: Mapping[str, Sequence[Any] | np.ndarray[Any, Any]]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """:meth:`predict` on :meth:`inputs_from_columns` ``(columns)``."""
        return self.predict(self.inputs_from_columns(columns))

    # -- internals -----------------------------------------------------------------

    def _feed(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        feed: dict[str, Any] = {}
        for spec in self._signature["inputs"]:
            name = spec["name"]
            if name not in inputs:
                raise BundleInputError(
                    f"input '{name}' is missing; the model takes {self.input_names} "
                    "(build them with inputs_from_columns)"
                )
            dtype = np.float32 if spec["dtype"] == "float32" else object
            arr = np.asarray(inputs[name], dtype=dtype)
            image = image_shape(spec)
            if image is not None:
                if arr.ndim == 3 and image[0] == 1:
                    arr = arr[:, None]
                if arr.shape[1:] != image:
                    raise BundleInputError(
                        f"input '{name}' has shape {list(arr.shape)}; expected "
                        f"[rows, {', '.join(map(str, image))}]"
                    )
                feed[name] = np.ascontiguousarray(arr)
                continue
            width = len(spec["features"])
            if arr.ndim != 2 or arr.shape[1] != width:
                raise BundleInputError(
                    f"input '{name}' has shape {arr.shape}; expected [rows, {width}]"
                )
            feed[name] = arr
        return feed

    def _optional_json(self, name: str) -> dict[str, Any]:
        entry = self._manifest["files"].get(name)
        if entry is None:
            raise BundleError(f"bundle {self._path} has no {name}")
        path = self._path / name
        if not path.is_file() or sha256_file(path) != entry.get("sha256"):
            raise BundleError(
                f"{name} in {self._path} changed or disappeared after the bundle was "
                f"loaded; {_REEXPORT}"
            )
        return _read_json(path)

    def _check_session(self) -> None:
        got_in = [i.name for i in self._session.get_inputs()]
        got_out = {o.name for o in self._session.get_outputs()}
        if got_in != self.input_names or not {"label", "probabilities"} <= got_out:
            raise BundleError(
                f"model.onnx has inputs {got_in} and outputs {sorted(got_out)}, but the "
                f"signature declares inputs {self.input_names} and outputs label, "
                f"probabilities: {_REEXPORT}"
            )


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "f"
    ...     _ = p.write_bytes(b"abc")
    ...     sha256_file(p)[:12]
    'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: {_REEXPORT}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path.name} is not valid JSON ({exc}): {_REEXPORT}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path.name} must hold a JSON object: {_REEXPORT}")
    return data


def _check_version(doc: Mapping[str, Any], name: str, root: Path) -> None:
    found = doc.get("format_version")
    if found not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(
            f"bundle {root}: {name} has format_version {found!r}; this mlcycle reads "
            f"format_version {', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}. Re-export "
            "the bundle with this mlcycle, or load it with the mlcycle that wrote it"
        )


def _check_signature(signature: Mapping[str, Any], root: Path) -> None:
    missing = [k for k in ("inputs", "outputs", "features", "classes") if k not in signature]
    inputs = signature.get("inputs")
    ok = isinstance(inputs, list) and all(
        isinstance(i, dict)
        and {"name", "dtype", "features"} <= set(i)
        and i["dtype"] in ("float32", "string")
        for i in inputs
    )
    if missing or not ok:
        raise BundleError(
            f"{SIGNATURE_FILE} in {root} is incomplete (missing {missing} or malformed "
            f"inputs); {_REEXPORT}"
        )


def _verify(root: Path, manifest: Mapping[str, Any]) -> bytes:
    """Check every manifest entry; return the verified bytes of ``model.onnx``."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{MANIFEST_FILE} in {root} has no 'files' mapping: {_REEXPORT}")
    unlisted = [n for n in (MODEL_FILE, SIGNATURE_FILE) if n not in files]
    if unlisted:
        raise BundleError(f"{MANIFEST_FILE} in {root} does not list {unlisted}: {_REEXPORT}")
    model_bytes = b""
    for rel, entry in sorted(files.items()):
        rel_path = PurePosixPath(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            raise BundleError(f"{MANIFEST_FILE} in {root} lists an unsafe path {rel!r}")
        path = root.joinpath(*rel_path.parts)
        if not path.is_file():
            raise BundleError(f"{rel} is listed in {MANIFEST_FILE} but missing: {_REEXPORT}")
        if rel == MODEL_FILE:
            # Hash the very bytes the session will load.
            model_bytes = path.read_bytes()
            digest, size = hashlib.sha256(model_bytes).hexdigest(), len(model_bytes)
        else:
            digest, size = sha256_file(path), path.stat().st_size
        if digest != entry.get("sha256") or size != entry.get("size"):
            raise BundleError(
                f"{rel} in {root} does not match its sha256 in {MANIFEST_FILE}: the file was "
                f"changed or corrupted after export; {_REEXPORT}"
            )
    return model_bytes


_GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _session(
    model_bytes: bytes,
    root: Path,
    *,
    intra_op_threads: int | None,
    inter_op_threads: int | None,
    graph_optimization: str | None,
) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads is not None:
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1; got {intra_op_threads}")
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
    if inter_op_threads is not None:
        if inter_op_threads < 1:
            raise ValueError(f"inter_op_threads must be >= 1; got {inter_op_threads}")
        options.inter_op_num_threads = inter_op_threads
    if graph_optimization is not None:
        if graph_optimization not in _GRAPH_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {sorted(_GRAPH_LEVELS)}; "
                f"got {graph_optimization!r}"
            )
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _GRAPH_LEVELS[graph_optimization]
        )
    try:
        return ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise BundleError(
            f"{MODEL_FILE} in {root} is not a valid ONNX model onnxruntime "
            f"{ort.__version__} can load ({type(exc).__name__}: {exc}); {_REEXPORT}"
        ) from None


def _floats(values: Sequence[Any] | np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise BundleInputError(f"feature '{name}' must be a 1-D sequence of values")
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float32)
    try:
        return np.array(
            [math.nan if v is None or v == "" else v for v in arr.tolist()], dtype=np.float32
        )
    except (TypeError, ValueError):
        bad = next(v for v in arr.tolist() if not _is_number(v))
        raise BundleInputError(
            f"numeric feature '{name}' has the value {bad!r}, which is not a number"
        ) from None


def _images(
    values: Sequence[Any] | np.ndarray[Any, Any], name: str, shape: tuple[int, int, int]
) -> np.ndarray[Any, Any]:
    """One image per row (each ``[C, H, W]``, or ``[H, W]`` for one channel) as float32
    ``[N, C, H, W]``."""
    try:
        if isinstance(values, np.ndarray) and values.dtype != np.dtype(object):
            arr = values.astype(np.float32)
        else:
            arr = np.stack([np.asarray(v, dtype=np.float32) for v in values])
    except (TypeError, ValueError) as exc:
        raise BundleInputError(
            f"image feature '{name}' must hold images of numbers of shape {list(shape)}: {exc}"
        ) from None
    if arr.ndim == 3 and shape[0] == 1:
        arr = arr[:, None]
    if arr.shape[1:] != shape:
        raise BundleInputError(
            f"image feature '{name}' has images of shape {list(arr.shape[1:])}; the model "
            f"expects {list(shape)} (channels, height, width)"
        )
    return np.ascontiguousarray(arr)


def _is_number(v: Any) -> bool:
    if v is None or v == "":
        return True
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _strings(values: Sequence[Any] | np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise BundleInputError(f"feature '{name}' must be a 1-D sequence of values")
    out = np.empty(len(arr), dtype=object)
    for i, v in enumerate(arr.tolist()):
        out[i] = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return out
