"""Fixtures of the export tests: datasets, configs and models fitted once per session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mlcycle.config.structured import TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.train.fit import TrainedModel, fit_model
from tests import _datasets


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
