"""Check that the ONNX graph predicts what the scikit-learn pipeline predicts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import ExportError
from mlcycle.export.onnx import OUTPUT_LABEL, OUTPUT_PROBABILITIES
from mlcycle.train.fit import TrainedModel
from mlcycle.train.pipeline import model_frame, onnx_inputs

if TYPE_CHECKING:
    import onnx

__all__ = ["ParityError", "ParityReport", "check_parity"]


@dataclass(frozen=True)
class ParityReport:
    """ONNX vs scikit-learn on the same rows.

    Parameters
    ----------
    rows
        Rows compared.
    max_abs_diff
        Largest ``|p_onnx - p_sklearn|`` over all rows and classes (``inf`` when either
        side produced NaN).
    label_mismatches
        Rows whose predicted labels differ, ties excepted.
    tolerance
        Largest ``max_abs_diff`` allowed.
    passed
        ``max_abs_diff <= tolerance`` and no label differs.
    label_ties
        Rows whose labels differ only because scikit-learn's two best classes tie
        within ``tolerance`` (e.g. a forest voting 0.45 / 0.45): either label is right,
        and float32 rounding decides which one wins.
    """

    rows: int
    max_abs_diff: float
    label_mismatches: int
    tolerance: float
    passed: bool
    label_ties: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a non-finite difference becomes ``None``)."""
        d = asdict(self)
        if not math.isfinite(self.max_abs_diff):
            d["max_abs_diff"] = None
        return d


class ParityError(ExportError):
    """The ONNX graph disagrees with the pipeline; ``report`` holds the numbers."""

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


def check_parity(
    trained: TrainedModel, model: onnx.ModelProto, ds: Dataset, tolerance: float
) -> ParityReport:
    """Run ``model`` in onnxruntime and ``trained.pipeline`` on ``ds`` and compare.

    Parameters
    ----------
    trained
        The fitted pipeline.
    model
        Its ONNX graph (from :func:`~mlcycle.export.onnx.to_onnx`).
    ds
        Rows to compare on (usually the validation split).
    tolerance
        Largest allowed ``|p_onnx - p_sklearn|`` (``train.parity_tolerance``).

    Returns
    -------
    ParityReport
        The measured agreement (``passed`` is true).

    Raises
    ------
    ParityError
        An :class:`~mlcycle.exceptions.ExportError`: a probability differs by more than
        ``tolerance`` or a label differs. Its ``report`` attribute holds the numbers.
    ExportError
        ``ds`` is empty, or onnxruntime cannot run the graph.
    """
    import onnxruntime as ort

    if len(ds) == 0:
        raise ExportError(
            "the parity check needs at least one row; give the validation split some rows "
            "(data.split.val_fraction > 0)"
        )
    frame = model_frame(ds, ds.schema)
    expected_p = np.asarray(trained.pipeline.predict_proba(frame), dtype=np.float64)
    expected_y = np.asarray(trained.pipeline.predict(frame)).astype(str)
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        labels, proba = session.run(
            [OUTPUT_LABEL, OUTPUT_PROBABILITIES], onnx_inputs(frame, ds.schema)
        )
    except Exception as exc:
        raise ExportError(f"onnxruntime could not run the exported graph: {exc}") from exc
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != expected_p.shape:
        raise ExportError(
            f"the ONNX probabilities have shape {proba.shape}, scikit-learn's "
            f"{expected_p.shape}; the graph does not match the pipeline"
        )
    diff = np.abs(proba - expected_p)
    max_diff = float(diff.max()) if np.all(np.isfinite(diff)) else math.inf
    mismatches, ties = _label_mismatches(
        np.asarray(labels).astype(str), expected_y, expected_p, trained.classes, tolerance
    )
    passed = max_diff <= tolerance and mismatches == 0
    report = ParityReport(
        rows=len(ds),
        max_abs_diff=max_diff,
        label_mismatches=mismatches,
        tolerance=float(tolerance),
        passed=passed,
        label_ties=ties,
    )
    if not passed:
        worst = int(np.unravel_index(np.argmax(np.nan_to_num(diff, nan=np.inf)), diff.shape)[0])
        raise ParityError(
            f"the ONNX parity check failed on {len(ds)} rows: max |p_onnx - p_sklearn| = "
            f"{max_diff:.3g} (train.parity_tolerance {tolerance:.3g}, worst row {worst}), "
            f"{mismatches} label(s) differ. The exported model would not behave like the "
            "trained one, so it is not exported. Try another model family, or report the "
            "estimator and skl2onnx version",
            report,
        )
    return report


def _label_mismatches(
    got: np.ndarray[Any, Any],
    expected: np.ndarray[Any, Any],
    expected_p: np.ndarray[Any, Any],
    classes: list[str],
    tolerance: float,
) -> tuple[int, int]:
    """(mismatches, ties): a differing label is a tie when scikit-learn gives the ONNX
    label a probability within ``tolerance`` of its best one."""
    index = {c: i for i, c in enumerate(classes)}
    mismatches = ties = 0
    for row in np.flatnonzero(got != expected):
        k = index.get(str(got[row]))
        if k is not None and expected_p[row, k] >= expected_p[row].max() - tolerance:
            ties += 1
        else:
            mismatches += 1
    return mismatches, ties
