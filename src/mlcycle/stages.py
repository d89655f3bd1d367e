"""Files the DVC pipeline stages hand to each other: splits, the fitted model, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.schema import Schema
from mlcycle.data.split import Splits
from mlcycle.exceptions import DataError, MlcycleError
from mlcycle.train.fit import TrainedModel

__all__ = [
    "headline_metrics",
    "load_evaluation",
    "load_model",
    "load_splits",
    "save_model",
    "save_splits",
]

_LABEL = "__label__"
_SPLITS = ("train", "val", "test")


def save_splits(splits: Splits, folder: Path) -> Path:
    """Write each split as Parquet plus ``meta.json`` (schema and data version)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = splits.train
    for name in _SPLITS:
        ds: Dataset = getattr(splits, name)
        frame = ds.frame.copy()
        frame[_LABEL] = ds.y
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    meta = {
        "schema": first.schema.to_dict(),
        "version": first.version.to_dict(),
        "path": str(first.path),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def load_splits(folder: Path) -> Splits:
    """Read what :func:`save_splits` wrote; a clear error if the stage has not run."""
    import pandas as pd

    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        raise DataError(
            f"no prepared splits in {folder}; run `mlcycle prepare` (or `dvc repro`) first"
        )
    meta = json.loads(meta_file.read_text())
    schema = Schema.from_dict(meta["schema"], where=str(meta_file))
    version = DataVersion(**meta["version"])
    parts = {}
    for name in _SPLITS:
        frame = pd.read_parquet(folder / f"{name}.parquet")
        y = np.asarray(frame.pop(_LABEL).astype(str).to_numpy(), dtype=str)
        parts[name] = Dataset(
            frame=frame, y=y, schema=schema, version=version, path=Path(meta["path"])
        )
    return Splits(**parts)


def save_model(trained: TrainedModel, path: Path) -> Path:
    """Pickle the fitted model with joblib (an intermediate file of the DVC pipeline)."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(trained, path)
    return path


def load_model(path: Path) -> TrainedModel:
    """Load what :func:`save_model` wrote."""
    import joblib

    if not path.is_file():
        raise MlcycleError(f"no fitted model at {path}; run `mlcycle fit` (or `dvc repro`)")
    trained = joblib.load(path)
    if not isinstance(trained, TrainedModel):
        raise MlcycleError(f"{path} does not hold an mlcycle model; re-run `mlcycle fit`")
    return trained


def load_evaluation(reports: Path) -> Any:
    """The :class:`~mlcycle.workflow.Evaluation` the evaluate stage wrote."""
    from mlcycle.evaluate.baselines import BaselineResult
    from mlcycle.workflow import Evaluation

    path = reports / "evaluation.json"
    if not path.is_file():
        raise MlcycleError(f"no evaluation at {path}; run `mlcycle evaluate` first")
    report = json.loads(path.read_text())
    plots = {p.stem: p for p in sorted((reports / "plots").glob("*.png"))}
    baselines = [BaselineResult(**b) for b in report.get("baselines", [])]
    return Evaluation(report=report, baselines=baselines, plots=plots)


def headline_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics per split, for ``dvc metrics show``."""
    out: dict[str, Any] = {}
    for split, metrics in report["splits"].items():
        out[split] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    return out
