"""Fixtures of the training tests: datasets and configs (see ``_datasets``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from mlcycle.config.structured import ModelConfig
from mlcycle.data.dataset import Dataset
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
