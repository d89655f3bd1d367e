"""Datasets and configs for the train, export and bundle tests, built in memory.

No data loader and no downloads: sklearn's bundled datasets and a synthetic mixed one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.config.structured import (
    GBDTConfig,
    LogRegConfig,
    MLPConfig,
    ModelConfig,
    RandomForestConfig,
)
from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.schema import FeatureSpec, Schema


def make_dataset(frame: pd.DataFrame, y: np.ndarray, schema: Schema) -> Dataset:
    return Dataset(
        frame=frame.reset_index(drop=True),
        y=np.asarray(y).astype(str),
        schema=schema,
        version=DataVersion(md5="x", path="p", tracked=False, size=0),
        path=Path("p"),
    )


def sklearn_dataset(loader: Callable[..., object]) -> Dataset:
    bunch = loader(as_frame=True)
    frame = bunch.data.astype(np.float32)
    names = bunch.target_names
    y = np.array([str(names[i]) for i in bunch.target])
    schema = Schema("target", sorted(set(y)), [FeatureSpec(c, "numeric") for c in frame.columns])
    return make_dataset(frame, y, schema)


def mixed_dataset(n: int = 400, seed: int = 0) -> Dataset:
    """Numeric + categorical features (schema order interleaved), missing values in both,
    three classes."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 3)).astype(np.float32)
    num[rng.random((n, 3)) < 0.1] = np.nan
    color = rng.choice(["red", "green", "blue", ""], size=n, p=[0.35, 0.3, 0.25, 0.1])
    size = rng.choice(["S", "M", "L", ""], size=n, p=[0.3, 0.3, 0.3, 0.1])
    score = (
        np.nan_to_num(num[:, 0])
        + 1.5 * (color == "red")
        - 1.0 * (size == "S")
        + 0.3 * rng.normal(size=n)
    )
    y = np.where(score > 0.7, "high", np.where(score > -0.4, "mid", "low"))
    frame = pd.DataFrame(
        {
            "x0": num[:, 0],
            "color": pd.Series(color, dtype=object),
            "x1": num[:, 1],
            "size": pd.Series(size, dtype=object),
            "x2": num[:, 2],
        }
    )
    schema = Schema(
        "y",
        ["high", "low", "mid"],
        [
            FeatureSpec("x0", "numeric", nullable=True),
            FeatureSpec(
                "color", "categorical", "string", categories=["blue", "green", "red"], nullable=True
            ),
            FeatureSpec("x1", "numeric", nullable=True),
            FeatureSpec("size", "categorical", "string", categories=["L", "M", "S"], nullable=True),
            FeatureSpec("x2", "numeric", nullable=True),
        ],
    )
    return make_dataset(frame, y, schema)


def tickets_dataset(rows: int = 400) -> Dataset:
    """Text + categorical + numeric features: the generated support tickets, with a few
    rows that trip tokenisers (punctuation between words, repeats, accents, empty text)."""
    from mlcycle.data.infer import infer_schema
    from mlcycle.data.tickets import tickets_frame

    frame = tickets_frame(rows=rows, seed=3)
    tricky = [
        "Refund, refund, REFUND!! invoice:wrong;card-declined",
        "Ecran noir apres la mise a jour -- l'app plante. \u00c9CRAN NOIR, \u00e9cran noir",
        "Stra\u00dfe \u00d6L \u00efc 2 MB 500 error_500 a b c",
        "",
    ]
    frame.loc[: len(tricky) - 1, "message"] = tricky
    schema = infer_schema(frame, "team")
    schema.feature("message").nullable = True
    return make_dataset(frame.drop(columns=["team"]), frame["team"].to_numpy(), schema)


def digits_dataset(rows: int | None = None) -> Dataset:
    """scikit-learn's 8x8 digits as an image feature (one float32 [1, 8, 8] array per row)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[:rows, None]
    column = np.empty(len(images), dtype=object)
    column[:] = list(images)
    y = np.array([str(t) for t in bunch.target[:rows]])
    schema = Schema(
        "digit",
        [str(d) for d in range(10)],
        [FeatureSpec("image", "image", "float32", min=0.0, max=16.0, shape=[1, 8, 8])],
    )
    return make_dataset(pd.DataFrame({"image": column}), y, schema)


def fast_config(family: str, **overrides: object) -> ModelConfig:
    """A small, quick config of ``family`` (defaults otherwise)."""
    base: dict[str, ModelConfig] = {
        "logreg": LogRegConfig(),
        "gbdt": GBDTConfig(max_iter=10),
        "random_forest": RandomForestConfig(n_estimators=20),
        "mlp": MLPConfig(hidden_layer_sizes=[16], max_iter=200),
    }
    cfg = base[family]
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def split(ds: Dataset, train_share: float = 0.7, seed: int = 0) -> tuple[Dataset, Dataset]:
    idx = np.random.default_rng(seed).permutation(len(ds))
    cut = int(len(ds) * train_share)
    return ds.subset(idx[:cut]), ds.subset(idx[cut:])
