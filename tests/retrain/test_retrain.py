"""Retraining end to end: a real project, MLflow registry, bundles, monitor store, server.

One project is trained once for the module (breast_cancer, logreg; version 1 promoted to
champion). Each test writes its own feedback dataset in the export format: rows of the
real data with true labels, their size features 1.5 times larger (tests/retrain/_drift.py),
so the champion is worse on them and a retrained model is not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.cli import main
from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.data.version import file_md5
from mlcycle.retrain.run import RetrainOutcome, retrain
from mlcycle.retrain.store import RetrainStore
from tests.conftest import free_port
from tests.retrain._drift import drifted_feedback, write_feedback
from tests.serve.conftest import RunningServer, _stop, _wait_ready

pytestmark = pytest.mark.slow

MODEL = "breast_cancer"
TOKEN = "retrain-admin-token-0815"
PACKAGED_CONFIG = Path(__file__).parents[2] / "src/mlcycle/config/conf/config.yaml"


@dataclass
class Trained:
    """The module's project: its root, its champion's bundle and a server of it."""

    root: Path
    server: RunningServer | None = None

    def client(self) -> Any:
        from mlflow import MlflowClient

        uri = f"sqlite:///{self.root / 'mlflow.db'}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def versions(self) -> set[str]:
        return {v.version for v in self.client().search_model_versions(f"name='{MODEL}'")}

    def store(self) -> RetrainStore:
        return RetrainStore.open(self.root / "monitor.db")

    def data(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "data" / "breast_cancer.csv")

    def feedback(self, name: str, rows: pd.DataFrame | None = None, **kw: Any) -> str:
        """Write a feedback file (default: the drift recipe); its retrain.feedback_path."""
        relative = f"data/feedback-{name}.csv"
        frame = drifted_feedback(self.data()) if rows is None else rows
        write_feedback(self.root / relative, frame, **kw)
        return relative

    def retrain(self, *overrides: str, **kw: Any) -> RetrainOutcome:
        project = Project(self.root)
        raw = compose(list(overrides), project=project)
        return retrain(to_config(raw), project, raw, store=self.store(), **kw)


def _mlflow_globals(mp: pytest.MonkeyPatch) -> None:
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    for var in [k for k in os.environ if k.startswith("MLFLOW_")] + ["MLCYCLE_PROJECT_ROOT"]:
        mp.delenv(var, raising=False)
    mp.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    mp.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)


def _start_server(root: Path, bundle: Path) -> RunningServer:
    port = free_port()
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLCYCLE_ADMIN_TOKEN"] = TOKEN
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle),
             "--port", str(port), "--monitor-store", str(root / "server.db")],
            stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env, start_new_session=True,
        )  # fmt: skip
    return RunningServer(f"http://127.0.0.1:{port}", port, proc, log)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """A project trained and promoted once; a server of its champion starts meanwhile."""
    from mlcycle import registry, workflow
    from mlcycle.tracking import configure_tracking

    root = tmp_path_factory.mktemp("retrain") / "proj"
    (root / "conf").mkdir(parents=True)
    shutil.copy(PACKAGED_CONFIG, root / "conf" / "config.yaml")
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    with pytest.MonkeyPatch.context() as mp:
        _mlflow_globals(mp)
        project = Project(root)
        raw = compose([], project=project)
        cfg = to_config(raw)
        result = workflow.train(cfg, project, raw)
        registry.promote(configure_tracking(cfg.tracking, project), MODEL, "1", reason="test")
        out = Trained(root, _start_server(root, result.bundle))
        try:
            yield out
        finally:
            assert out.server is not None
            _stop(out.server)
            # mlflow.set_tracking_uri exported these; later modules must not see this store
            for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
                os.environ.pop(key)
            os.environ.update(saved)


@pytest.fixture(autouse=True)
def _in_project(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in the project, with MLflow's globals restored afterwards."""
    _mlflow_globals(monkeypatch)
    monkeypatch.chdir(trained.root)
    monkeypatch.setenv("COLUMNS", "200")


def test_a_retrain_that_beats_the_champion_becomes_challenger_and_is_rolled_out(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    feedback = trained.feedback("drift")
    token_file = trained.root / "admin.token"
    token_file.write_text(TOKEN + "\n")
    assert trained.server is not None
    _wait_ready(trained.server)
    capsys.readouterr()
    # exit status 0: no SystemExit
    main(["retrain", "--trigger", "alarm", "--alarm-ids", "3,4", "--who", "server",
          "--rollout-url", trained.server.url, "--token-file", str(token_file), "--json",
          f"retrain.feedback_path={feedback}"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "passed" and doc["exit_code"] == 0 and doc["rollout_error"] is None
    row = doc["retrain"]
    version = row["version"]
    assert doc["challenger"] == f"models:/{MODEL}/{version}" and version != "1"

    # the recipe: clearly better on recent drifted traffic, as good on the holdout
    holdout, recent = doc["comparison"]["holdout"], doc["comparison"]["recent"]
    assert (holdout["rows"], recent["rows"]) == (114, 60)
    assert recent["candidate"] - recent["champion"] > 0.1
    assert abs(holdout["candidate"] - holdout["champion"]) < 0.02
    print(f"retrain recipe: holdout {holdout}, recent {recent}", file=sys.stderr)

    # registry: the new version is the challenger, the champion did not move
    client = trained.client()
    model = client.get_registered_model(MODEL)
    assert str(model.aliases["challenger"]) == version and str(model.aliases["champion"]) == "1"
    expected = {
        "mlcycle.parent_version": "1",
        "mlcycle.trigger": "alarm",
        "mlcycle.alarm_ids": "[3, 4]",
        "mlcycle.feedback_md5": file_md5(trained.root / feedback),
        "mlcycle.feedback_rows": "200",
        "mlcycle.retrain_id": str(row["id"]),
        "mlcycle.gate": "passed",
    }
    mv = client.get_model_version(MODEL, version)
    run = client.get_run(mv.run_id)
    assert expected.items() <= mv.tags.items() and expected.items() <= run.data.tags.items()
    assert run.data.metrics["gate.passed"] == 1.0
    assert run.data.metrics["compare.recent.candidate.f1_macro"] == recent["candidate"]
    gate = json.loads(Path(client.download_artifacts(run.info.run_id, "gate.json")).read_text())
    assert gate["passed"] and [c["name"] for c in gate["checks"]] == [
        "improvement", "slices", "baselines",
    ]  # fmt: skip

    # the bundle knows its parent and the feedback it learned from
    lineage = json.loads((Path(row["bundle"]) / "lineage.json").read_text())
    assert lineage["parent"]["version"] == "1" and lineage["retrain"]["id"] == row["id"]
    feedback_version = lineage["retrain"]["data_versions"]["feedback"]
    assert (feedback_version["rows"], feedback_version["train_rows"]) == (200, 140)

    # the record, and the rollout it started on the server
    record = trained.store().get(row["id"])
    assert (record.state, record.run_id, record.version, record.parent_version) == (
        "passed", mv.run_id, version, "1",
    )  # fmt: skip
    assert record.alarm_ids == [3, 4] and record.who == "server"
    assert record.data_versions is not None
    assert record.data_versions["training_rows"] == 341 + 140
    assert record.gate is not None and record.gate["passed"]
    assert record.rollout_id is not None and record.rollout_id == row["rollout_id"]
    from mlcycle.rollout.client import AdminClient

    status = AdminClient(trained.server.url, TOKEN, "test").get("/admin/rollout")
    assert status["rollout"]["id"] == record.rollout_id
    assert status["rollout"]["challenger_version"] == version
    assert status["rollout"]["mode"] == "canary"


def test_a_retrain_below_the_margin_fails_the_gate_and_registers_nothing(
    trained: Trained,
) -> None:
    feedback = trained.feedback("margin")
    before = trained.versions()
    outcome = trained.retrain("retrain.gate.margin=1.0", f"retrain.feedback_path={feedback}")
    assert outcome.state == "failed" and outcome.exit_code == 1
    assert outcome.reason.startswith("improvement: f1_macro on recent")
    assert "less than gate.margin=1" in outcome.reason
    assert trained.versions() == before
    record = outcome.retrain
    assert record is not None and record.state == "failed" and record.version is None
    assert record.reason == outcome.reason and record.run_id
    assert record.gate is not None and not record.gate["passed"]
    run = trained.client().get_run(record.run_id)
    assert run.data.tags["mlcycle.gate"] == "failed" and run.data.metrics["gate.passed"] == 0.0
    assert run.data.tags["mlcycle.retrain_id"] == str(record.id)
    artifacts = {a.path for a in trained.client().list_artifacts(record.run_id)}
    assert "gate.json" in artifacts and "bundle" not in artifacts


def test_no_feedback_dataset_skips_without_training(trained: Trained) -> None:
    runs_before = len(trained.client().search_runs([]))
    outcome = trained.retrain("retrain.feedback_path=data/nothing.csv")
    assert outcome.state == "skipped" and outcome.exit_code == 2
    assert "there is no feedback dataset at" in outcome.reason
    assert "mlcycle data feedback" in outcome.reason
    assert outcome.retrain is not None and outcome.retrain.state == "skipped"
    assert len(trained.client().search_runs([])) == runs_before


def test_too_few_rows_labelled_since_the_champion_skip_with_the_numbers(
    trained: Trained,
) -> None:
    rows = drifted_feedback(trained.data(), rows=40)
    # 35 rows labelled long before the champion, then 5 new ones
    old = write_feedback(trained.root / "data/old.csv", rows.iloc[:35],
                         start=datetime(2020, 1, 1, tzinfo=UTC))  # fmt: skip
    new = write_feedback(trained.root / "data/new.csv", rows.iloc[35:],
                         start=datetime.now(UTC) + timedelta(seconds=1))  # fmt: skip
    combined = trained.root / "data/feedback-few.csv"
    combined.write_text(old.read_text() + "".join(new.read_text().splitlines(True)[1:]))
    before = trained.versions()
    outcome = trained.retrain("retrain.feedback_path=data/feedback-few.csv")
    assert outcome.state == "skipped"
    assert "only 5 of the 40 feedback rows" in outcome.reason
    assert "retrain.min_new_rows is 20" in outcome.reason
    assert outcome.retrain is not None and outcome.retrain.parent_version == "1"
    assert outcome.retrain.data_versions is not None
    assert outcome.retrain.data_versions["feedback"]["new_rows"] == 5
    assert trained.versions() == before


def test_the_cli_says_nothing_to_retrain_with_exit_2_and_lists_the_history(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["retrain", "retrain.feedback_path=data/missing.csv"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("nothing to retrain (retrain ") and "data/missing.csv" in err
    main(["retrain", "history", "--json", "--limit", "1"])
    [latest] = json.loads(capsys.readouterr().out)
    assert latest["state"] == "skipped" and "data/missing.csv" in latest["reason"]
    main(["retrain", "history"])
    table = capsys.readouterr().out
    assert "Retrainings of 'breast_cancer'" in table and "skipped" in table


def test_a_retrain_while_another_runs_is_coalesced_and_exits_2(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    store = trained.store()
    running = store.start(MODEL, "alarm", "server", [7])
    assert running is not None
    try:
        with pytest.raises(SystemExit) as exited:
            main(["retrain", "--trigger", "alarm", "--alarm-ids", "8"])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"retrain {running.id} of 'breast_cancer'" in err
        assert "is already running" in err and "started " in err
        assert store.get(running.id).alarm_ids == [7, 8]
    finally:
        store.finish(running.id, "error", "test over")


def test_a_feedback_dataset_without_label_times_is_an_error_saying_what_to_do(
    trained: Trained,
) -> None:
    path = trained.root / "data/feedback-bad.csv"
    drifted_feedback(trained.data(), rows=30).to_csv(path, index=False)
    outcome = trained.retrain("retrain.feedback_path=data/feedback-bad.csv")
    assert outcome.state == "error" and outcome.exit_code == 2
    assert "does not match the data's schema: missing columns ['_request_id'" in outcome.reason
    assert "mlcycle data feedback" in outcome.reason
    assert outcome.retrain is not None and outcome.retrain.state == "error"


def test_bad_retrain_settings_are_refused_before_anything_runs(trained: Trained) -> None:
    from mlcycle.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"retrain.recent_fraction must be in \[0, 1\)"):
        trained.retrain("retrain.recent_fraction=1.5")
