"""Fixtures of the export tests: datasets, configs and models fitted once per session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from mlcycle.config.structured import ModelConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.train.fit import TrainedModel, fit_model
from tests.train import _datasets


@pytest.fixture(scope="session")
def breast_cancer() -> Dataset:
    return _datasets.sklearn_dataset(load_breast_cancer)


@pytest.fixture(scope="session")
def wine() -> Dataset:
    return _datasets.sklearn_dataset(load_wine)


@pytest.fixture(scope="session")
def mixed() -> Dataset:
    return _datasets.mixed_dataset()


@pytest.fixture(scope="session")
def datasets(breast_cancer: Dataset, wine: Dataset, mixed: Dataset) -> dict[str, Dataset]:
    return {"breast_cancer": breast_cancer, "wine": wine, "mixed": mixed}


@pytest.fixture(scope="session")
def fast_config() -> Callable[..., ModelConfig]:
    """Factory: ``fast_config("gbdt", C=0.1)`` is a small, quick config of that family."""
    return _datasets.fast_config


@pytest.fixture(scope="session")
def split() -> Callable[..., tuple[Dataset, Dataset]]:
    """Factory: ``split(ds)`` is a seeded 70/30 (train, validation) split."""
    return _datasets.split


@pytest.fixture(scope="session")
def trained(
    datasets: dict[str, Dataset],
) -> Callable[[str, str], tuple[TrainedModel, Dataset, Dataset]]:
    """Factory: ``trained("gbdt", "mixed")`` is (model, train split, validation split),
    fitted once per session with ``fast_config``."""
    cache: dict[tuple[str, str], tuple[TrainedModel, Dataset, Dataset]] = {}

    def get(family: str, dataset: str) -> tuple[TrainedModel, Dataset, Dataset]:
        if (family, dataset) not in cache:
            train, val = _datasets.split(datasets[dataset])
            model = fit_model(train, _datasets.fast_config(family), TrainConfig())
            cache[family, dataset] = (model, train, val)
        return cache[family, dataset]

    return get
