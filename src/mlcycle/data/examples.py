"""Example datasets built from tables scikit-learn ships (nothing is downloaded).

Each example is a classification table with numeric features and a string label, written
as CSV (or Parquet) so a new project has data to train on at once; ``digits`` holds images
and is written as an ``.npz`` array file::

    >>> sorted(EXAMPLES)
    ['breast_cancer', 'digits', 'tickets', 'wine']
    >>> EXAMPLES["wine"].label
    'cultivar'
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXAMPLES", "Example", "get_example", "write_example"]


@dataclass(frozen=True)
class Example:
    """A bundled example dataset.

    Parameters
    ----------
    name
        Key in :data:`EXAMPLES` and the value of ``data.example``.
    label
        Name of the label column.
    description
        One line shown by the CLI.
    loader
        Name of the scikit-learn loader in :mod:`sklearn.datasets`, or ``""`` when
        ``build`` makes the table.
    build
        A function that returns the whole table (label included), for examples that
        are generated in code rather than loaded from scikit-learn.
    arrays
        A function that returns the example as named arrays (one per column, first axis
        the rows; images ``[N, H, W]``), for examples written as ``.npz`` files only.
    """

    name: str
    label: str
    description: str
    loader: str = ""
    build: Callable[[], pd.DataFrame] | None = None
    arrays: Callable[[], dict[str, np.ndarray[Any, Any]]] | None = None

    def frame(self) -> pd.DataFrame:
        """The table: the features in scikit-learn's order, then the label as strings."""
        if self.build is not None:
            return self.build()
        if self.arrays is not None:
            pd = require("pandas", "train")
            columns: dict[str, Any] = {}
            for name, arr in self.arrays().items():
                if arr.ndim == 1:
                    columns[name] = arr.tolist()
                else:
                    column = np.empty(len(arr), dtype=object)
                    column[:] = list((arr[:, None] if arr.ndim == 3 else arr).astype(np.float32))
                    columns[name] = column
            return pd.DataFrame(columns)
        pd = require("pandas", "train")
        datasets = require("sklearn.datasets", "train")
        bunch: Any = getattr(datasets, self.loader)()
        frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
        names = [str(n) for n in bunch.target_names]
        frame[self.label] = [names[int(t)] for t in bunch.target]
        return frame


def _tickets() -> pd.DataFrame:
    from mlcycle.data.tickets import tickets_frame

    return tickets_frame()


def _digits() -> dict[str, np.ndarray[Any, Any]]:
    datasets = require("sklearn.datasets", "train")
    bunch: Any = datasets.load_digits()
    return {
        "image": np.asarray(bunch.images, dtype=np.uint8),
        "digit": np.asarray([str(int(t)) for t in bunch.target]),
    }


EXAMPLES: dict[str, Example] = {
    "breast_cancer": Example(
        name="breast_cancer",
        label="diagnosis",
        description="Wisconsin breast cancer: 569 rows, 30 numeric features, malignant/benign",
        loader="load_breast_cancer",
    ),
    "digits": Example(
        name="digits",
        label="digit",
        description="Handwritten digits: 1797 grey images of 8x8 pixels (0..16), 10 "
        "classes; an .npz array file (train it with model=cnn)",
        arrays=_digits,
    ),
    "tickets": Example(
        name="tickets",
        label="team",
        description="Support tickets (generated): 1200 rows, a text message, a channel and "
        "the account age; 4 teams",
        build=_tickets,
    ),
    "wine": Example(
        name="wine",
        label="cultivar",
        description="Wine recognition: 178 rows, 13 numeric features, 3 cultivars",
        loader="load_wine",
    ),
}


def get_example(name: str) -> Example:
    """The example called ``name``.

    Parameters
    ----------
    name
        A key of :data:`EXAMPLES`.

    Returns
    -------
    Example
        The example.

    Raises
    ------
    ConfigError
        When there is no such example; the message lists the available ones.
    """
    try:
        return EXAMPLES[name]
    except KeyError:
        raise ConfigError(
            f"unknown example dataset {name!r} (data.example); "
            f"available: {', '.join(sorted(EXAMPLES))}"
        ) from None


def write_example(name: str, path: Path) -> Path:
    """Write the example ``name`` to ``path``, creating parent folders.

    The file is Parquet when the suffix is ``.parquet`` / ``.pq``, an ``.npz`` array file
    for ``.npz`` (one array per column, images as ``[N, H, W]``; the only format of an
    image example), tab-separated for ``.tsv``, else CSV. Floats are written in their
    shortest round-trip form, and ``.npz`` members with a fixed time stamp, so the bytes
    are the same on every call. The file is written to a temporary sibling and
    renamed, so a failure leaves no partial file.

    Parameters
    ----------
    name
        A key of :data:`EXAMPLES`.
    path
        Destination file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ConfigError
        When ``name`` is not a bundled example, or an image example is asked for in a
        table format.

    Examples
    --------
    >>> import tempfile
    >>> out = write_example("wine", Path(tempfile.mkdtemp()) / "data" / "wine.csv")
    >>> out.read_text().splitlines()[0].split(",")[-1]
    'cultivar'
    """
    example = get_example(name)
    path = Path(path)
    suffix = path.suffix.lower()
    if example.arrays is not None and suffix != ".npz":
        raise ConfigError(
            f"the example {name!r} holds images, which only an .npz file stores; set "
            f"data.path to a .npz file (e.g. data/{name}.npz)"
        )
    writer: Callable[[Path], None]
    if suffix == ".npz":
        if example.arrays is not None:
            arrays = example.arrays()
        else:
            arrays = {str(c): _column_array(v) for c, v in example.frame().items()}

        def writer(target: Path) -> None:
            _write_npz(target, arrays)

        return _write_atomically(path, writer)
    frame = example.frame()
    if suffix in (".parquet", ".pq"):

        def writer(target: Path) -> None:
            frame.to_parquet(target, index=False)

    else:
        sep = "\t" if suffix == ".tsv" else ","

        def writer(target: Path) -> None:
            frame.to_csv(target, index=False, sep=sep, lineterminator="\n")

    return _write_atomically(path, writer)


def _column_array(values: Any) -> np.ndarray[Any, Any]:
    arr = np.asarray(values)
    return arr.astype(str) if arr.dtype == object else arr


def _write_npz(target: Path, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
    """``numpy.savez_compressed`` with a fixed time stamp on every member (same bytes
    on every call; numpy stamps members with the current time)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def _write_atomically(path: Path, writer: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
