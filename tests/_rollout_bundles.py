"""Challenger bundles for rollout tests, all with the signature of ``build_bundle("cancer")``.

Every bundle here is a real, verified bundle (written with
:func:`mlcycle.export.bundle.write_bundle`) on the breast-cancer data: the ``numeric``
input (30 float32 features), the outputs ``label`` and ``probabilities`` and the classes
``benign`` and ``malignant``, so :meth:`mlcycle.bundle.Bundle.load` accepts it and a
server can swap it in for the champion. Everything is seeded, so a rollout simulation
through a real server is deterministic.

- :func:`faulty_bundle`: the champion's model, but ``probabilities`` is NaN for about
  ``share`` of the rows: those whose ``mean radius`` is above the ``1 - share`` quantile
  of the data set (:func:`faulty_rows` tells which). Labels are unchanged.
- :func:`slow_bundle`: the champion's predictions (bit for bit), but every ``predict``
  call runs a chain of 256 x 256 MatMul + Tanh steps on a tensor built from the input
  (so onnxruntime cannot fold it) whose bounded result, times 0, is added to the
  probabilities. One step costs :data:`SLOW_STEP_MS` (a conservative figure) and the
  bundle has ``ceil(extra_ms / SLOW_STEP_MS)`` steps (a fixed count: on a faster machine
  the added latency is smaller). Measured on the 2-core AMD EPYC test machine,
  ``intra_op_threads=1``, medians of 200 predicts of one row (64 rows): the champion
  0.02-0.04 ms (0.05-0.11 ms); ``extra_ms=1.0`` (3 steps) 1.5-1.8 ms; ``extra_ms=4.0``
  (10 steps) 4.6-5.3 ms (4.6-6.1 ms), up to 6.5 ms while other tests shared the cores;
  ``extra_ms=8.0`` (20 steps) 8.4-8.8 ms. So about 0.45-0.5 ms a step, and the call is
  at least ``extra_ms`` slower whatever the batch size. The bundle is about 520 kB.
- :func:`inaccurate_bundle`: the champion's config trained on seeded permuted labels;
  about 0.60 accuracy on the true held-out labels (the champion: 0.95).
- :func:`better_bundle`: gradient boosting with 100 iterations instead of 20; 0.965
  accuracy on the held-out split.

Requests: :func:`cancer_rows` samples request records (feature name -> value) and
:func:`cancer_labels` gives their true class names, for feedback. The held-out split is
:func:`cancer_split` (the same split as ``build_bundle``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import helper, numpy_helper
from sklearn.datasets import load_breast_cancer

from mlcycle.config.structured import GBDTConfig, ModelConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import OUTPUT_PROBABILITIES, to_onnx
from mlcycle.export.parity import check_parity
from mlcycle.export.profile import build_profile
from mlcycle.train.fit import TrainedModel, fit_model
from mlcycle.train.pipeline import INPUT_NUMERIC
from tests import _datasets

__all__ = [
    "FAULTY_FEATURE",
    "MODEL_NAME",
    "SLOW_STEP_MS",
    "SLOW_WIDTH",
    "better_bundle",
    "cancer_frame",
    "cancer_labels",
    "cancer_rows",
    "cancer_split",
    "faulty_bundle",
    "faulty_rows",
    "faulty_threshold",
    "inaccurate_bundle",
    "slow_bundle",
]

#: The ``model_name`` of ``build_bundle("cancer")``'s signature.
MODEL_NAME = "breast_cancer"
#: The feature whose high values make :func:`faulty_bundle` output NaN.
FAULTY_FEATURE = "mean radius"
#: Side of the square matrices of :func:`slow_bundle`'s MatMul chain.
SLOW_WIDTH = 256
#: Milliseconds one MatMul + Tanh step is assumed to cost (measured: 0.45 to 0.5 ms).
SLOW_STEP_MS = 0.4

_CHAMPION_ITERATIONS = 20  # as build_bundle("cancer")
_PREFIX = "rollout_fixture_"


@dataclass(frozen=True)
class _Fitted:
    model: TrainedModel
    onx: onnx.ModelProto
    train: Dataset
    val: Dataset


# -- data ------------------------------------------------------------------------------


@functools.cache
def _dataset() -> Dataset:
    return _datasets.sklearn_dataset(load_breast_cancer)


def cancer_split() -> tuple[Dataset, Dataset]:
    """The breast-cancer train and held-out splits ``build_bundle("cancer")`` uses.

    Returns
    -------
    tuple of Dataset
        ``(train, val)``; features float32, labels the class names.
    """
    return _datasets.split(_dataset())


def cancer_frame() -> pd.DataFrame:
    """All 569 breast-cancer rows: the 30 features as float64 (as sklearn ships them).

    Returns
    -------
    pandas.DataFrame
        One column per feature, in the signature's feature order.
    """
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).data
    return frame.astype(np.float64).reset_index(drop=True)


def _sample(n: int, seed: int) -> np.ndarray[Any, Any]:
    size = len(_dataset())
    return np.random.default_rng(seed).choice(size, size=n, replace=n > size)


def cancer_rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    """``n`` request records sampled (seeded) from the breast-cancer data.

    Parameters
    ----------
    n
        Number of records; rows repeat only when ``n`` exceeds the 569 rows.
    seed
        Seed of the sample; :func:`cancer_labels` with the same ``n`` and ``seed``
        gives the records' true labels.

    Returns
    -------
    list of dict
        Feature name -> value (a Python float), JSON-ready.
    """
    frame = cancer_frame().iloc[_sample(n, seed)]
    return [{str(k): float(v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def cancer_labels(n: int, seed: int = 0) -> list[str]:
    """The true class names of ``cancer_rows(n, seed)``, in the same order.

    Parameters
    ----------
    n, seed
        As for :func:`cancer_rows`.

    Returns
    -------
    list of str
        ``benign`` or ``malignant`` per record.
    """
    return [str(v) for v in _dataset().y[_sample(n, seed)]]


def faulty_threshold(share: float = 0.3) -> float:
    """The ``mean radius`` above which :func:`faulty_bundle` outputs NaN.

    Parameters
    ----------
    share
        Share of the data set's rows to affect, in ``(0, 1)``.

    Returns
    -------
    float
        The ``1 - share`` quantile of the float32 ``mean radius``, as a float32 value.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    values = _dataset().frame[FAULTY_FEATURE].to_numpy(dtype=np.float32)
    return float(np.float32(np.quantile(values, 1.0 - share)))


def faulty_rows(
    frame: pd.DataFrame | Sequence[Mapping[str, float]], *, share: float = 0.3
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which rows :func:`faulty_bundle` ``(share=share)`` gives NaN probabilities for.

    Parameters
    ----------
    frame
        Rows with a ``mean radius`` column: a frame or records (e.g. from
        :func:`cancer_rows`).
    share
        As passed to :func:`faulty_bundle`.

    Returns
    -------
    numpy.ndarray
        bool ``[N]``: the float32 ``mean radius`` is above :func:`faulty_threshold`.
    """
    if isinstance(frame, pd.DataFrame):
        column = frame[FAULTY_FEATURE].to_numpy(dtype=np.float64)
    else:
        column = np.array([float(rec[FAULTY_FEATURE]) for rec in frame], dtype=np.float64)
    values = column.astype(np.float32)
    out: np.ndarray[Any, np.dtype[np.bool_]] = values > np.float32(faulty_threshold(share))
    return out


# -- training and writing --------------------------------------------------------------


def _fit(cfg: ModelConfig, train: Dataset, val: Dataset, seed: int = 42) -> _Fitted:
    model = fit_model(train, cfg, TrainConfig(seed=seed))
    return _Fitted(model, to_onnx(model.pipeline, train.schema), train, val)


@functools.cache
def _champion() -> _Fitted:
    train, val = cancer_split()
    return _fit(GBDTConfig(max_iter=_CHAMPION_ITERATIONS), train, val)


def _write(dest: Path, fitted: _Fitted, onx: onnx.ModelProto, kind: str, **notes: Any) -> Path:
    model, train, val = fitted.model, fitted.train, fitted.val
    accuracy = float(np.mean(model.predict(val) == val.y))
    return write_bundle(
        dest,
        model=onx,
        signature=make_signature(train.schema, model.classes, onx, MODEL_NAME),
        profile=build_profile(train, model.predict_proba(val), val.y, model.classes),
        evaluation={"rollout_fixture": {"kind": kind, "val_accuracy": accuracy, **notes}},
        lineage={"git": {"commit": "abc"}, "rollout_fixture": kind},
    )


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _reroute_probabilities(graph: onnx.GraphProto) -> str:
    """Rename the node output ``probabilities`` to an internal name and return it."""
    raw = f"{_PREFIX}raw_probabilities"
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == OUTPUT_PROBABILITIES:
                node.output[i] = raw
    return raw


def _checked(model: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(model, full_check=True)
    return model


# -- the bundles -----------------------------------------------------------------------


def faulty_bundle(dest: Path, *, share: float = 0.3) -> Path:
    """The champion's model with NaN probabilities on :func:`faulty_rows`.

    Parameters
    ----------
    dest
        The bundle folder to write.
    share
        About this share of the breast-cancer rows (those with the largest
        ``mean radius``) get NaN in every ``probabilities`` column; the other rows get
        the champion's output. ``label`` is the champion's for every row.

    Returns
    -------
    Path
        ``dest``.
    """
    fitted = _champion()
    onx = _copy(fitted.onx)
    graph = onx.graph
    raw = _reroute_probabilities(graph)
    col = [i for i, f in enumerate(fitted.train.schema.numeric) if f.name == FAULTY_FEATURE]
    p = _PREFIX
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(col, dtype=np.int64), f"{p}column"),
            numpy_helper.from_array(
                np.array(faulty_threshold(share), dtype=np.float32), f"{p}threshold"
            ),
            numpy_helper.from_array(np.array(np.nan, dtype=np.float32), f"{p}nan"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), f"{p}one"),
        ]
    )
    graph.node.extend(
        [
            # [N, 1] mean radius > threshold -> factor NaN, else 1.
            helper.make_node("Gather", [INPUT_NUMERIC, f"{p}column"], [f"{p}radius"], axis=1),
            helper.make_node("Greater", [f"{p}radius", f"{p}threshold"], [f"{p}faulty"]),
            helper.make_node("Where", [f"{p}faulty", f"{p}nan", f"{p}one"], [f"{p}factor"]),
            helper.make_node("Mul", [raw, f"{p}factor"], [OUTPUT_PROBABILITIES]),
        ]
    )
    return _write(dest, fitted, _checked(onx), "faulty", share=share)


def slow_bundle(dest: Path, *, extra_ms: float = 4.0) -> Path:
    """The champion's predictions, with about ``extra_ms`` more work per ``predict`` call.

    Parameters
    ----------
    dest
        The bundle folder to write.
    extra_ms
        Added latency per call (any batch size) with one onnxruntime thread: the graph
        gets ``ceil(extra_ms / SLOW_STEP_MS)`` chained ``SLOW_WIDTH``-square MatMul + Tanh
        steps. NaN or infinite inputs cannot reach the probabilities (NaN is zeroed and
        everything is squashed by Tanh before the chain, whose result is multiplied by 0).

    Returns
    -------
    Path
        ``dest``.
    """
    if extra_ms <= 0:
        raise ValueError(f"extra_ms must be positive, got {extra_ms}")
    steps = math.ceil(extra_ms / SLOW_STEP_MS)
    fitted = _champion()
    onx = _copy(fitted.onx)
    graph = onx.graph
    raw = _reroute_probabilities(graph)
    p = _PREFIX
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((SLOW_WIDTH, SLOW_WIDTH)) / math.sqrt(SLOW_WIDTH)).astype(
        np.float32
    )
    graph.initializer.extend(
        [
            numpy_helper.from_array(weight, f"{p}weight"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), f"{p}zero"),
        ]
    )
    nodes = [
        # A finite scalar in [-1, 1] that depends on the input.
        helper.make_node("IsNaN", [INPUT_NUMERIC], [f"{p}isnan"]),
        helper.make_node("Where", [f"{p}isnan", f"{p}zero", INPUT_NUMERIC], [f"{p}clean"]),
        helper.make_node("Tanh", [f"{p}clean"], [f"{p}squashed"]),
        helper.make_node("ReduceMean", [f"{p}squashed"], [f"{p}seed"], keepdims=0),
        helper.make_node("Mul", [f"{p}weight", f"{p}seed"], [f"{p}h0"]),
    ]
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [f"{p}h{i}", f"{p}weight"], [f"{p}mm{i}"]))
        nodes.append(helper.make_node("Tanh", [f"{p}mm{i}"], [f"{p}h{i + 1}"]))
    nodes += [
        helper.make_node("Sin", [f"{p}h{steps}"], [f"{p}sin"]),
        helper.make_node("ReduceMean", [f"{p}sin"], [f"{p}mean"], keepdims=0),
        helper.make_node("Mul", [f"{p}mean", f"{p}zero"], [f"{p}nothing"]),
        helper.make_node("Add", [raw, f"{p}nothing"], [OUTPUT_PROBABILITIES]),
    ]
    graph.node.extend(nodes)
    return _write(dest, fitted, _checked(onx), "slow", extra_ms=extra_ms, steps=steps)


def inaccurate_bundle(dest: Path, *, seed: int = 0) -> Path:
    """The champion's config trained on permuted labels: near-chance accuracy.

    Parameters
    ----------
    dest
        The bundle folder to write.
    seed
        Seed of the label permutation.

    Returns
    -------
    Path
        ``dest``.
    """
    ds = _dataset()
    shuffled = ds.y[np.random.default_rng(seed).permutation(len(ds))]
    train, val = _datasets.split(_datasets.make_dataset(ds.frame, shuffled, ds.schema))
    fitted = _fit(GBDTConfig(max_iter=_CHAMPION_ITERATIONS), train, val)
    return _write(dest, fitted, fitted.onx, "inaccurate", label_permutation_seed=seed)


def better_bundle(dest: Path) -> Path:
    """Gradient boosting with 100 iterations: at least as accurate as the champion.

    Parameters
    ----------
    dest
        The bundle folder to write.

    Returns
    -------
    Path
        ``dest``.
    """
    train, val = cancer_split()
    fitted = _fit(GBDTConfig(max_iter=100), train, val)
    parity = check_parity(fitted.model, fitted.onx, val, 1e-4)
    return _write(dest, fitted, fitted.onx, "better", parity=parity.to_dict())
