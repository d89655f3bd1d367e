"""A loaded dataset: feature frame, labels, schema and data version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.data.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataVersion", "Dataset"]


@dataclass(frozen=True)
class DataVersion:
    """The version of a data file: its DVC content hash.

    Parameters
    ----------
    md5
        MD5 of the file's bytes, the hash DVC 3 records in the ``.dvc`` file.
    path
        The data file, relative to the project root when inside it.
    tracked
        True when a ``.dvc`` file records this very hash (the file is DVC-tracked and
        unchanged since ``dvc add``).
    size
        File size in bytes.
    """

    md5: str
    path: str
    tracked: bool
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for lineage and MLflow tags."""
        return {"md5": self.md5, "path": self.path, "tracked": self.tracked, "size": self.size}


@dataclass
class Dataset:
    """Features and labels of a classification dataset, checked against its schema.

    ``frame`` holds only the feature columns, in schema order: numeric features as
    float32 (missing as NaN), categorical and text features as ``str`` (missing as ``""``).
    ``y`` holds the labels as strings.
    """

    frame: pd.DataFrame
    y: np.ndarray[Any, Any]
    schema: Schema
    version: DataVersion
    path: Path

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray[Any, Any]) -> Dataset:
        """Rows at positions ``index`` (a new Dataset sharing schema and version)."""
        return Dataset(
            frame=self.frame.iloc[index].reset_index(drop=True),
            y=self.y[index],
            schema=self.schema,
            version=self.version,
            path=self.path,
        )

    def columns(self) -> dict[str, np.ndarray[Any, Any]]:
        """Feature name → values, the column-wise form bundles predict from."""
        return {c: self.frame[c].to_numpy() for c in self.frame.columns}
