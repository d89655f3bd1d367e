"""What an augmentation did, as MLflow params, metrics and a JSON artifact.

The same record is the ``augmentation`` entry of the bundle's ``lineage.json``; here it
becomes searchable in MLflow: params ``augment.steps``, ``augment.target_slices`` and
``augment.seed``; metrics ``augment.rows_before``, ``augment.rows_after``,
``augment.rows_added``, ``augment.class.<class>.before|after``,
``augment.<method>.added``, ``augment.slice.<name>.rows|added`` and
``augment.noise.measured_snr_db``; and the artifact ``augmentation.json``.
"""

from __future__ import annotations

from typing import Any

from mlcycle._optional import require

__all__ = ["augmentation_metrics", "augmentation_params", "log_augmentation"]


def augmentation_params(record: dict[str, Any]) -> dict[str, str]:
    """Short params of an augmentation record.

    Examples
    --------
    >>> augmentation_params({"seed": 3, "steps": [{"method": "smote"}], "target_slices": []})
    {'augment.steps': 'smote', 'augment.target_slices': '(all rows)', 'augment.seed': '3'}
    """
    names = [str(s["name"]) for s in record.get("target_slices", [])]
    return {
        "augment.steps": ",".join(str(s["method"]) for s in record.get("steps", [])),
        "augment.target_slices": ",".join(names) or "(all rows)",
        "augment.seed": str(record.get("seed")),
    }


def augmentation_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """Nested numbers of an augmentation record (``log_metrics`` flattens them).

    Examples
    --------
    >>> m = augmentation_metrics({"rows_before": 10, "rows_after": 16, "steps": [
    ...     {"method": "random", "added": 6}], "target_slices": [],
    ...     "class_counts_before": {"a": 8, "b": 2}, "class_counts_after": {"a": 8, "b": 8}})
    >>> m["augment"]["rows_added"], m["augment"]["random"]
    (6, {'added': 6})
    """
    out: dict[str, Any] = {
        "rows_before": record["rows_before"],
        "rows_after": record["rows_after"],
        "rows_added": record["rows_after"] - record["rows_before"],
        "class": {
            c: {"before": n, "after": record["class_counts_after"].get(c, n)}
            for c, n in record["class_counts_before"].items()
        },
        "slice": {
            s["name"]: {"rows": s["rows"], "added": s["added"]}
            for s in record.get("target_slices", [])
        },
    }
    for step in record.get("steps", []):
        entry: dict[str, Any] = {"added": step["added"]}
        if step.get("measured_snr_db") is not None:
            entry["measured_snr_db"] = step["measured_snr_db"]
        out[str(step["method"])] = entry
    return {"augment": out}


def log_augmentation(record: dict[str, Any] | None) -> None:
    """Log ``record`` to the active MLflow run (nothing when it is ``None``).

    Parameters
    ----------
    record
        From :func:`~mlcycle.data.augment.augment_training_set`.
    """
    if record is None:
        return
    from mlcycle.tracking import log_metrics

    mlflow = require("mlflow", "train")
    mlflow.log_params(augmentation_params(record))
    log_metrics(augmentation_metrics(record))
    mlflow.log_dict(record, "augmentation.json")
