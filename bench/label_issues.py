"""Benchmark: does ``mlcycle data check`` find labels flipped on purpose?

For scikit-learn's bundled breast_cancer (569 rows, 2 classes) and wine (178 rows, 3
classes) tables (or, with ``--model cnn``, its 8x8 digits images: 1797 rows, 10 classes,
a PyTorch CNN), flips ``--rate`` (default 5 %) of the labels to another class, chosen
at random with ``--seed``, then runs the check's label-issue finder exactly as the
command does (out-of-sample probabilities of the project's pipeline from stratified
``--folds``-fold cross-validation, then cleanlab's confident learning) and prints, per
dataset: the rows flipped, the issues found, how many flips were among them (precision
= flips found / issues found, recall = flips found / flips) and the time it took.

Run: ``.venv/bin/python bench/label_issues.py [--model logreg|gbdt|random_forest|cnn]
[--rate 0.05] [--seeds 0,1,2] [--folds 5]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from mlcycle.config.structured import (
    CNNConfig,
    GBDTConfig,
    LogRegConfig,
    ModelConfig,
    PreprocessConfig,
    RandomForestConfig,
)
from mlcycle.data.check.label_issues import find_label_issues, out_of_sample_probabilities
from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.schema import FeatureSpec, Schema

MODELS: dict[str, Callable[[], ModelConfig]] = {
    "logreg": LogRegConfig,
    "gbdt": GBDTConfig,
    "random_forest": RandomForestConfig,
    "cnn": CNNConfig,
}
LOADERS: dict[str, Callable[..., Any]] = {
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
}


def sklearn_dataset(loader: Callable[..., Any]) -> Dataset:
    """A bundled scikit-learn table as an mlcycle Dataset (numeric features, str labels)."""
    bunch = loader(as_frame=True)
    frame = bunch.data.astype(np.float32).reset_index(drop=True)
    y = np.array([str(bunch.target_names[i]) for i in bunch.target])
    schema = Schema("target", sorted(set(y)), [FeatureSpec(c, "numeric") for c in frame.columns])
    version = DataVersion(md5="-", path="-", tracked=False, size=0)
    return Dataset(frame=frame, y=y, schema=schema, version=version, path=Path("-"))


def digits_dataset() -> Dataset:
    """The bundled 8x8 digits as one image feature (a float32 [1, 8, 8] array per row)."""
    bunch = load_digits()
    column = np.empty(len(bunch.images), dtype=object)
    column[:] = list(bunch.images.astype(np.float32)[:, None])
    y = np.array([str(t) for t in bunch.target])
    spec = FeatureSpec("image", "image", "float32", min=0.0, max=16.0, shape=[1, 8, 8])
    schema = Schema("digit", [str(d) for d in range(10)], [spec])
    version = DataVersion(md5="-", path="-", tracked=False, size=0)
    return Dataset(
        frame=pd.DataFrame({"image": column}), y=y, schema=schema, version=version, path=Path("-")
    )


def flip(y: np.ndarray[Any, Any], rate: float, seed: int) -> tuple[np.ndarray[Any, Any], set[int]]:
    """``y`` with ``rate`` of its labels changed to another class at random."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(y.tolist()))
    rows = rng.choice(len(y), size=round(rate * len(y)), replace=False)
    noisy = y.copy()
    for i in rows:
        noisy[i] = rng.choice([c for c in classes if c != y[i]])
    return noisy, {int(i) for i in rows}


def measure(
    data: Dataset, model: ModelConfig, *, rate: float, seed: int, folds: int
) -> dict[str, Any]:
    """Flip, find, and score one dataset."""
    noisy, flipped = flip(data.y, rate, seed)
    dirty = Dataset(
        frame=data.frame, y=noisy, schema=data.schema, version=data.version, path=data.path
    )
    started = time.perf_counter()
    probs, classes = out_of_sample_probabilities(
        dirty, model, PreprocessConfig(), folds=folds, seed=seed
    )
    found = find_label_issues(noisy, probs, classes, max_issues=len(noisy))
    seconds = time.perf_counter() - started
    rows = {i.row for i in found.issues}
    hits = len(rows & flipped)
    return {
        "rows": len(noisy),
        "flipped": len(flipped),
        "found": found.found,
        "hits": hits,
        "precision": hits / found.found if found.found else 0.0,
        "recall": hits / len(flipped),
        "seconds": seconds,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="logreg")
    p.add_argument("--rate", type=float, default=0.05)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the flips")
    p.add_argument("--folds", type=int, default=5)
    ns = p.parse_args()
    seeds = [int(s) for s in ns.seeds.split(",")]
    print(
        f"model={ns.model}, {ns.rate:.0%} of labels flipped, {ns.folds}-fold out-of-sample "
        f"probabilities, cleanlab confident learning; seeds {seeds}"
    )
    header = ("dataset", "seed", "rows", "flipped", "found", "flips found")
    print(
        f"{header[0]:<14}{header[1]:>5}{header[2]:>6}{header[3]:>9}{header[4]:>7}"
        f"{header[5]:>13}{'precision':>11}{'recall':>8}{'seconds':>9}"
    )
    datasets = (
        {"digits": digits_dataset}
        if ns.model == "cnn"
        else {
            name: (lambda loader=loader: sklearn_dataset(loader))
            for name, loader in LOADERS.items()
        }
    )
    for name, make in datasets.items():
        data = make()
        results = []
        for seed in seeds:
            r = measure(data, MODELS[ns.model](), rate=ns.rate, seed=seed, folds=ns.folds)
            results.append(r)
            print(
                f"{name:<14}{seed:>5}{r['rows']:>6}{r['flipped']:>9}{r['found']:>7}"
                f"{r['hits']:>13}{r['precision']:>11.2f}{r['recall']:>8.2f}{r['seconds']:>9.2f}"
            )
        mean = pd.DataFrame(results).mean()
        print(
            f"{name + ' mean':<14}{'':>5}{'':>6}{'':>9}{mean['found']:>7.1f}{mean['hits']:>13.1f}"
            f"{mean['precision']:>11.2f}{mean['recall']:>8.2f}{mean['seconds']:>9.2f}"
        )


if __name__ == "__main__":
    main()
