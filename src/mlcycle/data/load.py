"""Read a data file and turn it into a :class:`~mlcycle.data.dataset.Dataset`.

:func:`load_dataset` is the one entry point the workflow uses: it writes the bundled
example when asked to, reads the table, infers the schema on first use (and saves it as an
editable YAML file next to the data), checks the data against the schema and converts the
features to the model's layout. Problems a user can fix raise :class:`DataError` or
:class:`SchemaError` naming the column and the fix; things training can live with (values
out of the schema's range, unknown categories, extra columns) are logged as warnings.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.data._values import missing_mask, parse_numbers, text_values
from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.examples import write_example
from mlcycle.data.infer import infer_schema
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.data.version import data_version
from mlcycle.exceptions import DataError, SchemaError

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.config.project import Project
    from mlcycle.config.structured import DataConfig

__all__ = ["FORMATS", "frame_to_dataset", "load_dataset", "read_table", "schema_file"]

logger = logging.getLogger(__name__)

#: Values of ``data.format``.
FORMATS: tuple[str, ...] = ("auto", "csv", "tsv", "parquet", "npz")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npz": "npz",
}
_EXAMPLES_SHOWN = 3


def _format_of(path: Path, fmt: str) -> str:
    if fmt not in FORMATS:
        raise DataError(f"data.format={fmt!r} is not a known format; use one of {list(FORMATS)}")
    if fmt != "auto":
        return fmt
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"cannot tell the format of data file {path} from its suffix {path.suffix!r}; "
            f"use a {', '.join(_SUFFIXES)} file or set data.format=csv (or parquet, npz)"
        )
    return kind


def read_table(path: Path, fmt: str = "auto") -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or NumPy array (``.npz``) file into a DataFrame.

    Parameters
    ----------
    path
        The data file.
    fmt
        ``auto`` (from the suffix: ``.csv``, ``.tsv``, ``.parquet``, ``.pq``, ``.npz``),
        ``csv``, ``tsv``, ``parquet`` or ``npz``.

    Returns
    -------
    pandas.DataFrame
        The table, with the column types the reader infers. An ``.npz`` file's arrays
        are its columns (see :func:`read_arrays`): an image column holds one float32
        array ``[C, H, W]`` per row.

    Raises
    ------
    DataError
        When the file is missing, of an unknown format, unreadable, empty or has no rows.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("x,y\\n1,a\\n2,b\\n")
    >>> read_table(p).shape
    (2, 2)
    """
    path = Path(path)
    kind = _format_of(path, fmt)
    if path.is_dir():
        raise DataError(f"data file {path} is a folder; set data.path to a CSV or Parquet file")
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist; set data.path=<file> (CSV or Parquet, relative "
            "to the project root) or run `mlcycle data add FILE`"
        )
    pd = require("pandas", "train")
    readable: tuple[type[BaseException], ...] = (
        ValueError,
        OSError,
        UnicodeDecodeError,
        pd.errors.ParserError,
    )
    if kind == "npz":
        return read_arrays(path)
    try:
        if kind == "parquet":
            pa = require("pyarrow", "train")
            readable = (*readable, pa.lib.ArrowException)
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data file {path} is empty; it needs a header row and at least one data row"
        ) from None
    except readable as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"data file {path} could not be read as {kind.upper()}: {first}. "
            f"Check that it is a valid {kind.upper()} file (or set data.format)"
        ) from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"data file {path} has no rows; it needs at least one data row")
    return frame


def read_arrays(path: Path) -> pd.DataFrame:
    """Read an ``.npz`` file whose arrays are the columns of a table.

    Every array has one entry per row (its first axis): a 1-D array is a column of
    numbers or strings (e.g. the labels); an array of 3 or more dimensions is an image
    feature, ``[N, H, W]`` (grey, one channel) or ``[N, C, H, W]``, whose column holds
    one float32 array ``[C, H, W]`` per row.

    Parameters
    ----------
    path
        The ``.npz`` file (``numpy.savez`` / ``savez_compressed``); pickled object
        arrays are refused.

    Returns
    -------
    pandas.DataFrame
        One column per array, in the file's order.

    Raises
    ------
    DataError
        The file is not a readable ``.npz`` of plain arrays, an array is 2-D or has
        more than 4 dimensions, or the arrays differ in length.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.npz"
    >>> np.savez(p, image=np.zeros((3, 4, 4), np.uint8), y=np.array(["a", "b", "a"]))
    >>> frame = read_arrays(p)
    >>> frame["image"][0].shape, frame["y"].tolist()
    ((1, 4, 4), ['a', 'b', 'a'])
    """
    pd = require("pandas", "train")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"data file {path} is not an NPZ archive (numpy.savez / savez_compressed); "
            "save the arrays with numpy.savez, or set data.format to the file's real format"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        raise DataError(
            f"data file {path} holds pickled object arrays, which mlcycle does not load "
            f"({exc}); save plain numeric or string arrays with numpy.savez"
        ) from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"data file {path} could not be read as NPZ: {exc}") from None
    if not arrays:
        raise DataError(f"data file {path} holds no arrays; it needs one array per column")
    columns: dict[str, Any] = {}
    rows: int | None = None
    for name, arr in arrays.items():
        if arr.ndim == 0:
            raise DataError(
                f"array '{name}' of {path} is a single value; every array needs one entry "
                "per row (its first axis)"
            )
        if rows is None:
            rows = len(arr)
            first = name
        elif len(arr) != rows:
            raise DataError(
                f"array '{name}' of {path} has {len(arr)} rows but '{first}' has {rows}; "
                "every array needs one entry per row"
            )
        if arr.ndim == 1:
            if arr.dtype.kind in "US":
                columns[name] = pd.Series(arr.astype(str), dtype=object)
            else:
                columns[name] = pd.Series(arr)
        elif arr.ndim in (3, 4):
            if arr.dtype.kind not in "fiub":
                raise DataError(
                    f"array '{name}' of {path} holds images of dtype {arr.dtype}; images "
                    "must hold numbers (uint8, float32, ...)"
                )
            images = arr[:, None] if arr.ndim == 3 else arr
            column = np.empty(len(images), dtype=object)
            column[:] = list(images.astype(np.float32, copy=False))
            columns[name] = pd.Series(column, dtype=object)
        else:
            raise DataError(
                f"array '{name}' of {path} has shape {list(arr.shape)}; use 1-D arrays for "
                "columns of values and [N, H, W] or [N, C, H, W] arrays for images"
            )
    if not rows:
        raise DataError(f"data file {path} has no rows; it needs at least one data row")
    return pd.DataFrame(columns)


def schema_file(cfg: DataConfig, project: Project) -> Path:
    """Where the schema of ``cfg``'s data lives.

    ``data.schema_path`` when set (relative to the project root), else
    ``<data folder>/<data stem>.schema.yaml``.
    """
    if cfg.schema_path:
        return project.path(cfg.schema_path)
    data = project.path(cfg.path)
    return data.with_name(f"{data.stem}.schema.yaml")


def _examples(values: list[Any]) -> str:
    shown: list[str] = []
    for v in values:
        if repr(v) not in shown:
            shown.append(repr(v))
        if len(shown) == _EXAMPLES_SHOWN:
            break
    return ", ".join(shown)


def _numeric(
    spec: FeatureSpec, column: pd.Series, where: str, problems: list[str]
) -> np.ndarray[Any, Any]:
    values, bad = parse_numbers(column)
    if bad.any():
        problems.append(
            f"column '{spec.name}' is numeric in {where} but {int(bad.sum())} row(s) hold "
            f"text that is not a number (e.g. {_examples(column[bad].tolist())})"
        )
        return values.astype(np.float32)
    present = values[~np.isnan(values)]
    if spec.min is not None and (low := int((present < spec.min).sum())):
        logger.warning("column '%s': %d row(s) below the schema's min %s", spec.name, low, spec.min)
    if spec.max is not None and (high := int((present > spec.max).sum())):
        logger.warning(
            "column '%s': %d row(s) above the schema's max %s", spec.name, high, spec.max
        )
    return values.astype(np.float32)


def _textual(spec: FeatureSpec, column: pd.Series) -> list[str]:
    texts = text_values(column)
    if spec.kind == "categorical" and spec.categories is not None:
        known = set(spec.categories)
        unknown = [t for t in texts if t is not None and t not in known]
        if unknown:
            logger.warning(
                "column '%s': %d row(s) hold categories not in the schema (e.g. %s); "
                "add them to its categories in the schema file if they are valid",
                spec.name,
                len(unknown),
                _examples(unknown),
            )
    return ["" if t is None else t for t in texts]


def _holds_images(column: pd.Series) -> bool:
    return column.dtype == object and any(isinstance(v, np.ndarray) for v in column.head(5))


def _channels(shape: Sequence[int]) -> str:
    c, h, w = shape
    return f"{c} channel{'s' if c != 1 else ''}, {h}x{w}"


def _images(spec: FeatureSpec, column: pd.Series, path: Path, where: str) -> list[Any]:
    """The column's images as float32 ``[C, H, W]``, each checked against ``spec.shape``."""
    expected = tuple(spec.shape or ())
    if len(expected) != 3:
        raise SchemaError(
            f"image feature '{spec.name}' of {where} has no shape; set shape: "
            "[channels, height, width]"
        )
    out: list[Any] = []
    for i, v in enumerate(column.tolist()):
        if v is None and spec.nullable:
            out.append(None)
            continue
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "fiub":
            raise SchemaError(
                f"image feature '{spec.name}' of {path}: row {i} holds "
                f"{type(v).__name__} {str(v)[:40]!r}, not an image; the schema ({where}) "
                f"expects arrays of numbers of shape {list(expected)} "
                f"({_channels(expected)}); store images in an .npz file"
            )
        image = v[None] if v.ndim == 2 else v
        if image.shape != expected:
            what = (
                f"has {image.shape[0]} channel(s)"
                if image.ndim == 3 and image.shape[1:] == expected[1:]
                else f"has shape {list(v.shape)}"
            )
            raise SchemaError(
                f"image feature '{spec.name}' of {path}: row {i} {what}; the schema "
                f"({where}) expects {list(expected)} ({_channels(expected)}). Resize or "
                "convert the images, or fix the shape in the schema file"
            )
        out.append(image.astype(np.float32, copy=False))
    return out


def frame_to_dataset(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    path: Path,
    version: DataVersion,
    where: str = "the schema",
) -> Dataset:
    """Check a table against ``schema`` and convert it to a :class:`Dataset`.

    Rows without a label must already be dropped. The features are taken in schema
    order: numeric as float32 (NaN where missing), categorical and text as ``str``
    (``""`` where missing); the labels as a numpy array of ``str``.

    Parameters
    ----------
    frame
        The table, features and label column.
    schema
        The schema it must match.
    path
        The data file (kept on the dataset).
    version
        The data file's version.
    where
        How messages refer to the schema (usually the schema file's path).

    Returns
    -------
    Dataset
        The checked dataset.

    Raises
    ------
    SchemaError
        When a schema feature is missing from the data, a numeric column holds text,
        or a label is not one of the schema's classes.
    DataError
        When there are no rows, or fewer than two classes.
    """
    pd = require("pandas", "train")
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1).reset_index(drop=True)
    if schema.label not in columns:
        raise DataError(
            f"label column '{schema.label}' is not in the data; columns: {columns}. "
            "Set data.label=<one of them>"
        )
    absent = [n for n in schema.feature_names if n not in columns]
    if absent:
        raise SchemaError(
            f"feature(s) {absent} of {where} are not in the data (columns: {columns}); "
            "add the columns to the data or remove the features from the schema file"
        )
    extra = [c for c in columns if c != schema.label and c not in schema.feature_names]
    if extra:
        logger.warning("ignoring %d column(s) not in %s: %s", len(extra), where, extra)
    if len(frame) == 0:
        raise DataError(f"the dataset {path} has no rows with a label; it needs data to train on")

    problems: list[str] = []
    out: dict[str, Any] = {}
    for spec in schema.features:
        column = frame[spec.name]
        if not spec.nullable and (n_missing := int(missing_mask(column).sum())):
            logger.warning(
                "column '%s': %d missing value(s) but the schema says nullable: false",
                spec.name,
                n_missing,
            )
        if spec.kind == "image":
            out[spec.name] = pd.Series(_images(spec, column, path, where), dtype=object)
            continue
        if _holds_images(column):
            raise SchemaError(
                f"column '{spec.name}' of {path} holds images but is {spec.kind} in {where}; "
                "set its kind to image with shape: [channels, height, width]"
            )
        if spec.kind == "numeric":
            out[spec.name] = pd.Series(_numeric(spec, column, where, problems), dtype="float32")
        else:
            out[spec.name] = pd.Series(_textual(spec, column), dtype=str)
    if problems:
        raise SchemaError(
            "; ".join(problems)
            + ". Clean those values in the data, or declare the feature `kind: categorical` "
            f"in {where}"
        )

    labels = [t or "" for t in text_values(frame[schema.label])]
    y = np.array(labels, dtype=str)
    unknown = sorted(set(labels) - set(schema.classes))
    if unknown:
        raise SchemaError(
            f"label column '{schema.label}' has value(s) {unknown} that are not among the "
            f"classes {schema.classes} of {where}; add them to the schema's classes if they "
            "are valid, or fix the labels"
        )
    present = sorted(set(labels))
    if len(present) < 2:
        raise DataError(
            f"label column '{schema.label}' has a single class {present[0]!r}; "
            "a classifier needs at least two"
        )
    features = pd.DataFrame(out, columns=schema.feature_names)
    return Dataset(frame=features, y=y, schema=schema, version=version, path=path)


def load_dataset(cfg: DataConfig, project: Project, *, save_schema: bool = True) -> Dataset:
    """Load the dataset ``cfg`` describes, checked against its schema.

    Steps: write the bundled example when the file is missing and ``data.example`` is
    set; read the table; drop rows without a label (logged); load the schema file, or
    infer the schema and save it (``save_schema``) as an editable YAML file; check and
    convert the data (see :func:`frame_to_dataset`); compute the DVC data version.

    Parameters
    ----------
    cfg
        The ``data`` config: ``path``, ``label``, ``format``, ``schema_path``, ``example``.
    project
        Resolves relative paths against the project root.
    save_schema
        Write an inferred schema to its file (it is then reused on the next load).

    Returns
    -------
    Dataset
        Features, labels, schema and version.

    Raises
    ------
    DataError
        Missing or unreadable file, missing label column, no labelled rows, a single
        class.
    SchemaError
        The data does not match the schema file, or the schema file is invalid.
    ConfigError
        ``data.example`` names no bundled example.
    """
    path = project.path(cfg.path)
    if not path.exists() and cfg.example:
        write_example(cfg.example, path)
        logger.info("wrote the example dataset '%s' to %s", cfg.example, path)
    frame = read_table(path, cfg.format)
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if cfg.label not in columns:
        raise DataError(
            f"label column '{cfg.label}' is not in {path}; its columns are {columns}. "
            "Set data.label=<one of them>"
        )
    unlabelled = missing_mask(frame[cfg.label])
    if unlabelled.all():
        raise DataError(
            f"label column '{cfg.label}' of {path} is empty in every row; "
            "fill in the labels or set data.label to the right column"
        )
    if unlabelled.any():
        logger.warning(
            "dropping %d row(s) of %s without a label in '%s'",
            int(unlabelled.sum()),
            path,
            cfg.label,
        )
        frame = frame.loc[~unlabelled].reset_index(drop=True)

    schema_path = schema_file(cfg, project)
    if schema_path.is_file():
        schema = Schema.load(schema_path)
        if schema.label != cfg.label:
            raise SchemaError(
                f"schema file {schema_path} is for label '{schema.label}' but "
                f"data.label={cfg.label!r}; set data.label={schema.label!r}, or delete the "
                "schema file to infer it again"
            )
    else:
        schema = infer_schema(frame, cfg.label)
        if save_schema:
            schema.save(schema_path)
            logger.info(
                "inferred the schema of %s and wrote it to %s; edit it to change feature "
                "kinds, ranges or categories",
                path,
                schema_path,
            )
    version = data_version(path, project.root)
    return frame_to_dataset(frame, schema, path=path, version=version, where=str(schema_path))
