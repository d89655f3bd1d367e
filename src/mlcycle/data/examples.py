"""Example datasets built from tables scikit-learn ships (nothing is downloaded).

Each example is a classification table with numeric features and a string label, written
as CSV (or Parquet) so a new project has data to train on at once::

    >>> sorted(EXAMPLES)
    ['breast_cancer', 'tickets', 'wine']
    >>> EXAMPLES["wine"].label
    'cultivar'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    """

    name: str
    label: str
    description: str
    loader: str = ""
    build: Callable[[], pd.DataFrame] | None = None

    def frame(self) -> pd.DataFrame:
        """The table: the features in scikit-learn's order, then the label as strings."""
        if self.build is not None:
            return self.build()
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


EXAMPLES: dict[str, Example] = {
    "breast_cancer": Example(
        name="breast_cancer",
        label="diagnosis",
        description="Wisconsin breast cancer: 569 rows, 30 numeric features, malignant/benign",
        loader="load_breast_cancer",
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

    The file is Parquet when the suffix is ``.parquet`` / ``.pq``, tab-separated for
    ``.tsv``, else CSV. Floats are written in their shortest round-trip form, so the
    bytes are the same on every call. The file is written to a temporary sibling and
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
        When ``name`` is not a bundled example.

    Examples
    --------
    >>> import tempfile
    >>> out = write_example("wine", Path(tempfile.mkdtemp()) / "data" / "wine.csv")
    >>> out.read_text().splitlines()[0].split(",")[-1]
    'cultivar'
    """
    example = get_example(name)
    frame = example.frame()
    path = Path(path)
    suffix = path.suffix.lower()
    writer: Callable[[Path], None]
    if suffix in (".parquet", ".pq"):

        def writer(target: Path) -> None:
            frame.to_parquet(target, index=False)

    else:
        sep = "\t" if suffix == ".tsv" else ","

        def writer(target: Path) -> None:
            frame.to_csv(target, index=False, sep=sep, lineterminator="\n")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
