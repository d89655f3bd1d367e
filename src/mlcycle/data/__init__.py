"""Data: example datasets, loading, schema, splits, versions and the DVC wrapper.

The DVC commands live in :mod:`mlcycle.data.dvc` (``dvc.add``, ``dvc.push``, ...) and are
not re-exported, so their short names stay qualified. Importing this package needs only
the core dependencies; pandas and scikit-learn are imported when a function needs them.
"""

from __future__ import annotations

from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.examples import EXAMPLES, Example, write_example
from mlcycle.data.infer import infer_schema
from mlcycle.data.load import load_dataset, read_table, schema_file
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.data.split import Splits, split_dataset
from mlcycle.data.version import data_version, file_md5

__all__ = [
    "EXAMPLES",
    "DataVersion",
    "Dataset",
    "Example",
    "FeatureSpec",
    "Schema",
    "Splits",
    "data_version",
    "file_md5",
    "infer_schema",
    "load_dataset",
    "read_table",
    "schema_file",
    "split_dataset",
    "write_example",
]
