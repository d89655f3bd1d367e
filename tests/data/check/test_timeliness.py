"""Timeliness: the age of the labelled data, and production feedback since the last training."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlcycle.config.project import Project
from mlcycle.config.structured import (
    Config,
    DataConfig,
    LogRegConfig,
    RemoteConfig,
    TrackingConfig,
    TrainConfig,
)
from mlcycle.data.check.timeliness import (
    champion_training,
    data_file_age,
    feedback_since,
    store_location,
    time_column_age,
)
from mlcycle.exceptions import DataError
from mlcycle.monitor.store import FEEDBACK, PREDICTIONS, connect

DAY = 86400.0


def config(**tracking: str) -> Config:
    return Config(
        data=DataConfig(name="t", path="data/t.csv", label="y"),
        model=LogRegConfig(),
        train=TrainConfig(),
        tracking=TrackingConfig(experiment="t", registered_model="t", **tracking),
        remote=RemoteConfig(),
    )


def test_data_file_age_is_days_since_its_last_change(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,a\n")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    age = data_file_age(path, now=1_700_000_000 + 10 * DAY)
    assert age == {"path": str(path), "modified_at": "2023-11-14T22:13:20Z", "age_days": 10.0}


def test_time_column_reads_iso_times_and_unix_seconds() -> None:
    now = pd.Timestamp("2024-03-11T00:00:00Z").timestamp()
    iso = pd.DataFrame({"t": ["2024-03-01T00:00:00Z", "2024-03-01", None, "2024-02-01 12:00"]})
    out = time_column_age(iso, "t", now)
    assert out == {
        "column": "t",
        "newest": "2024-03-01T00:00:00Z",
        "oldest": "2024-02-01T12:00:00Z",
        "age_days": 10.0,
        "unparsed": 1,
    }
    seconds = pd.DataFrame({"t": [now - 2 * DAY, now - 5 * DAY]})
    assert time_column_age(seconds, "t", now)["age_days"] == 2.0


def test_a_time_column_not_in_the_data_names_the_setting() -> None:
    with pytest.raises(DataError, match=r"data.time_column is 'when'.*columns: \['t'\]"):
        time_column_age(pd.DataFrame({"t": [1.0]}), "when", time.time())


def test_a_time_column_without_any_time_is_an_error() -> None:
    with pytest.raises(DataError, match=r"data.time_column 't' holds no time"):
        time_column_age(pd.DataFrame({"t": ["soon", "later"]}), "t", time.time())


def _log(
    engine: sa.Engine, request: str, *, at: float, model: str = "t", features: bool = True
) -> None:
    with engine.begin() as conn:
        conn.execute(
            PREDICTIONS.insert().values(
                request_id=request,
                row=0,
                time=at - 1,
                model_name=model,
                model_version="1",
                arm="champion",
                stage="",
                label="a",
                features=json.dumps({"x": 1.0}) if features else None,
            )
        )
        conn.execute(
            FEEDBACK.insert().values(request_id=request, row=0, time=at, label="b", source="api")
        )


def test_feedback_counts_labels_given_since_the_training(tmp_path: Path) -> None:
    store = tmp_path / "monitor.db"
    engine = connect(store)
    trained = 1_700_000_000.0
    _log(engine, "old", at=trained - 10)
    _log(engine, "new1", at=trained + 10)
    _log(engine, "new2", at=trained + 20, features=False)
    _log(engine, "other", at=trained + 30, model="someone-else")
    engine.dispose()
    out = feedback_since(str(store), trained, "t")
    assert out["labels"] == 2
    assert out["labels_all_models"] == 3
    assert out["with_features"] == 1
    assert out["by_source"] == {"api": 2}
    assert out["newest"] == "2023-11-14T22:13:40Z"
    assert feedback_since(str(store), None, "t")["labels"] == 3


def test_store_location_says_whether_the_store_exists(tmp_path: Path) -> None:
    project = Project(tmp_path)
    cfg = config()
    assert store_location(cfg, project, None) == (str(tmp_path / "monitor.db"), False)
    (tmp_path / "other.db").write_bytes(b"")
    assert store_location(cfg, project, "other.db") == (str(tmp_path / "other.db"), True)
    url = "postgresql+psycopg://u@h/db"
    assert store_location(cfg, project, url) == (url, True)


def test_no_tracking_store_means_no_champion_and_creates_none(tmp_path: Path) -> None:
    project = Project(tmp_path)
    out = champion_training(config(), project)
    assert out["version"] is None and "no tracking store" in out["reason"]
    assert not project.mlflow_db.exists()
