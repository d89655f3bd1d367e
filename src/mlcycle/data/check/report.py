"""The data check's JSON document: a stable shape, one key per section.

::

    {
      "version": 1,
      "created_at": "2026-11-28T17:30:00Z",
      "dataset": {name, path, md5, tracked, rows, rows_in_file, features, classes},
      "settings": {folds, seed, max_issues, rare_count, min_slice_rows, slice_bins,
                   rare_class_share, max_missing_rate, curve_sizes, metric, min_gain,
                   max_age_days, model},
      "label_issues": {method, rows, found, share, listed, by_class,
                       out_of_sample_accuracy, issues: [{rank, row, given, suggested,
                       quality, suggested_probability}], notes},
      "duplicates": {exact_groups, exact_extra_rows, exact: [{rows, label}],
                     conflicting_groups, conflicting_rows,
                     conflicting: [{rows, labels: {label: [rows]}}]},
      "coverage": {classes: {counts, shares, imbalance_ratio, rare, rare_class_share},
                   rare_categories: [{feature, value, rows}],
                   small_slices: [{feature, kind, slice, rows}],
                   features: [{name, kind, missing, missing_rate, distinct, constant,
                               too_many_missing}]},
      "size": {metric, higher_is_better, sizes, train_mean, train_std, test_mean,
               test_std, fit: {method, params, reason}, gain_if_doubled, spread,
               threshold, more_data_helps, verdict, notes},
      "timeliness": {data_file: {path, modified_at, age_days},
                     time_column: {column, newest, oldest, age_days, unparsed,
                                   is_feature} | null,
                     feedback: {available, store, min_new_rows, reason?, champion?,
                                since?, labels?, labels_all_models?, with_features?,
                                by_source?, newest?, skipped?}},
      "plots": {name: "plots/<file>.png"},
      "findings": [{rank, severity, section, text}],
      "timings_s": {label_issues, duplicates_and_coverage, learning_curve}
    }

Row numbers (``row``, ``rows``) are positions in the data file: 0 is the first data row
after the header, counting rows without a label too. ``version`` changes only when a key
is removed or changes meaning; new keys may appear in the same version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlcycle.data.check.findings import findings

__all__ = ["REPORT_VERSION", "SECTIONS", "build_report", "write_json"]

#: Version of the document's shape.
REPORT_VERSION = 1

#: The section keys, in report order.
SECTIONS = ("label_issues", "duplicates", "coverage", "size", "timeliness")


def build_report(
    *,
    created_at: str,
    dataset: Mapping[str, Any],
    settings: Mapping[str, Any],
    sections: Mapping[str, Any],
    plots: Mapping[str, str],
) -> dict[str, Any]:
    """Assemble the document and rank its findings.

    Parameters
    ----------
    created_at
        ISO 8601 time of the check.
    dataset
        ``name``, ``path``, ``md5``, ``tracked``, ``rows``, ``features``, ``classes``.
    settings
        The ``data.check`` values used, the metric and the model family.
    sections
        One plain-data value per key of :data:`SECTIONS`.
    plots
        Plot name -> path relative to the report's folder.

    Returns
    -------
    dict
        The document, ``findings`` included.

    Raises
    ------
    ValueError
        A section is missing (an internal error).
    """
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise ValueError(f"the report lacks the section(s) {missing}")
    doc: dict[str, Any] = {
        "version": REPORT_VERSION,
        "created_at": created_at,
        "dataset": dict(dataset),
        "settings": dict(settings),
        **{s: sections[s] for s in SECTIONS},
        "plots": dict(plots),
    }
    doc["findings"] = findings(doc)
    return doc


def write_json(doc: Mapping[str, Any], path: Path) -> Path:
    """Write ``doc`` as pretty JSON, atomically (a temporary sibling renamed into place)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text(text, path)


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:  # the umask's permissions, like any file
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
