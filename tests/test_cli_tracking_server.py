"""Training against a real MLflow tracking server, in a fresh project.

Apart from tests/test_cli.py so that pytest-xdist (``--dist loadfile``) runs it beside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._cli import rest, run, running_mlflow

pytestmark = pytest.mark.slow


def test_train_against_a_tracking_server(tmp_path: Path) -> None:
    root = tmp_path / "remote-tracking"
    run(["init", str(root)], cwd=tmp_path)
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    server_args = [
        "server",
        "--backend-store-uri",
        f"sqlite:///{server_dir / 'store.db'}",
        "--artifacts-destination",
        str(server_dir / "artifacts"),
    ]
    with running_mlflow(server_args, server_dir) as base:
        out = run(["train", "tracking=server", f"tracking.uri={base}"], root).stdout
        assert "version 1" in out
        exp = rest(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=breast_cancer")
        exp_id = exp["experiment"]["experiment_id"]
        (run_info,) = rest(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})[
            "runs"
        ]
        params = {p["key"]: p["value"] for p in run_info["data"]["params"]}
        assert params["model.name"] == "logreg"
        version = rest(base, "/api/2.0/mlflow/model-versions/get?name=breast_cancer&version=1")
        assert version["model_version"]["run_id"] == run_info["info"]["run_id"]
        assert any((server_dir / "artifacts").rglob("model.onnx"))
        run(["promote", "1", "tracking=server", f"tracking.uri={base}"], root)
        model = rest(base, "/api/2.0/mlflow/registered-models/get?name=breast_cancer")
        aliases = {a["alias"]: a["version"] for a in model["registered_model"]["aliases"]}
        assert aliases["champion"] == "1"
    assert not (root / "mlflow.db").exists()  # nothing went to the local store
