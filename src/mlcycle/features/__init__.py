"""Derived features declared in config, computed in training and inside the exported graph.

``data.derived`` lists ratios, bins, date parts and flags of raw features
(:mod:`mlcycle.features.spec`). Training appends them as numeric features in front of the
usual preprocessing (:mod:`mlcycle.features.step`, numpy in
:mod:`mlcycle.features.compute`); export builds the same derivation as ONNX nodes and
merges it in front of the model's graph (:mod:`mlcycle.features.graph`), so a bundle takes
the raw inputs and serving needs no Python preprocessing. See ``docs/features.md``.

This module imports neither scikit-learn nor onnx; :mod:`~mlcycle.features.step` and
:mod:`~mlcycle.features.graph` do, and are imported where needed.
"""

from __future__ import annotations

from mlcycle.features.compute import derive_columns
from mlcycle.features.spec import (
    DATE_PARTS,
    DERIVED_KINDS,
    Bins,
    DatePart,
    DerivedFeature,
    Flag,
    Ratio,
    Term,
    derived_entries,
    parse_derived,
)

__all__ = [
    "DATE_PARTS",
    "DERIVED_KINDS",
    "Bins",
    "DatePart",
    "DerivedFeature",
    "Flag",
    "Ratio",
    "Term",
    "derive_columns",
    "derived_entries",
    "parse_derived",
]
