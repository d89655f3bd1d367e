"""MLflow fixtures shared by the tracking and registry tests (a plugin of tests/conftest.py).

Modules that call code setting MLflow's globals use
``pytestmark = pytest.mark.usefixtures("isolated_mlflow_globals")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["isolated_mlflow_globals", "template_db"]


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables created once (creating them takes seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture()
def isolated_mlflow_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo the global tracking URI and S3 endpoint that the code under test sets."""
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
