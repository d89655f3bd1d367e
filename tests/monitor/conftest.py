"""Bundles for the monitor tests (the same models the serving tests use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._bundles import build_bundle


@pytest.fixture(scope="session")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Numeric and categorical features with missing values, three classes."""
    return build_bundle("mixed", tmp_path_factory.mktemp("mixed") / "bundle")
