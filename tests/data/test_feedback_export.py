"""``mlcycle data feedback`` on a real SQLite monitoring store and a real DVC project:
review labels and API labels joined to logged features, deduplicated, checked against the
schema, written with provenance, tracked as a DVC data version, and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.feedback_export import (
    PROVENANCE_COLUMNS,
    export_feedback,
    load_feedback,
    parse_since,
)
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import DataError, SchemaError
from mlcycle.monitor.store import FEEDBACK, PREDICTIONS, connect, metadata
from mlcycle.review.tables import REVIEWS

SCHEMA = Schema(
    label="y",
    classes=["no", "yes"],
    features=[
        FeatureSpec("x", "numeric", nullable=True),
        FeatureSpec("c", "categorical", dtype="string", categories=["a", "b"], nullable=True),
    ],
)
DATA_COLUMNS = ["x", "c", "y"]


class Store:
    """A monitoring store in a temp folder, written the way the server writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = connect(path)
        self._reviews = 0

    def predict(
        self,
        rid: str,
        features: dict[str, Any] | None,
        *,
        row: int = 0,
        version: str = "3",
        arm: str = "champion",
        model: str = "m",
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                PREDICTIONS.insert(),
                {
                    "request_id": rid,
                    "row": row,
                    "time": 100.0,
                    "model_name": model,
                    "model_version": version,
                    "arm": arm,
                    "features": None if features is None else json.dumps(features),
                    "label": "no",
                },
            )

    def feedback(
        self, rid: str, label: str, at: float, *, row: int = 0, source: str = "api"
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                FEEDBACK.insert(),
                {"request_id": rid, "row": row, "time": at, "label": label, "source": source},
            )

    def review(
        self,
        rid: str,
        features: dict[str, Any],
        label: str | None,
        at: float,
        *,
        row: int = 0,
        by: str = "ana",
        model: str = "m",
        version: str | None = "3",
    ) -> None:
        self._reviews += 1
        with self.engine.begin() as conn:
            conn.execute(
                REVIEWS.insert(),
                {
                    "review_id": f"rv-{self._reviews}",
                    "request_id": rid,
                    "row": row,
                    "created_at": at - 50,
                    "model_name": model,
                    "model_version": version,
                    "mode": "partial",
                    "features": json.dumps(features),
                    "state": "pending" if label is None else "labelled",
                    "label": label,
                    "decided_by": None if label is None else by,
                    "decided_at": None if label is None else at,
                },
            )


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "monitor.db")


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_reviews_and_api_labels_become_rows_with_provenance_sorted_by_label_time(
    store: Store, tmp_path: Path
) -> None:
    store.predict("r1", {"x": 1.5, "c": "a"}, version="2")
    store.feedback("r1", "yes", at=1_700_000_300.0)
    store.predict("r2", {"x": None, "c": "b"}, row=1)
    store.feedback("r2", "no", at=1_700_000_100.0, row=1, source="import:labels.csv")
    store.review("r3", {"x": 7, "c": "a"}, "no", at=1_700_000_200.0, by="bo")
    store.review("r4", {"x": 1.0, "c": "b"}, None, at=1_700_000_250.0)  # pending: not a label
    out = tmp_path / "feedback.csv"

    summary = export_feedback(store.engine, SCHEMA, out)

    frame = read(out)
    assert list(frame.columns) == [*DATA_COLUMNS, *PROVENANCE_COLUMNS]
    assert frame.to_dict("records") == [
        {"x": "", "c": "b", "y": "no", "_request_id": "r2", "_row": "1", "_labelled_by": "",
         "_labelled_at": "2023-11-14T22:15:00.000Z", "_source": "import:labels.csv",
         "_model_version": "3"},
        {"x": "7.0", "c": "a", "y": "no", "_request_id": "r3", "_row": "0", "_labelled_by": "bo",
         "_labelled_at": "2023-11-14T22:16:40.000Z", "_source": "review", "_model_version": "3"},
        {"x": "1.5", "c": "a", "y": "yes", "_request_id": "r1", "_row": "0", "_labelled_by": "",
         "_labelled_at": "2023-11-14T22:18:20.000Z", "_source": "api", "_model_version": "2"},
    ]  # fmt: skip
    assert summary.rows == 3 and summary.skipped == {}
    assert summary.by_source == {"api": 1, "import:labels.csv": 1, "review": 1}


def test_a_review_label_wins_over_another_label_of_the_same_row(
    store: Store, tmp_path: Path
) -> None:
    store.predict("r1", {"x": 1.0, "c": "a"})
    store.feedback("r1", "yes", at=500.0)
    store.review("r1", {"x": 1.0, "c": "a"}, "no", at=400.0)
    out = tmp_path / "feedback.csv"

    summary = export_feedback(store.engine, SCHEMA, out)

    frame = read(out)
    assert frame[["y", "_source"]].values.tolist() == [["no", "review"]]
    assert summary.skipped == {"review_wins": 1}


def test_the_review_copy_in_the_feedback_table_is_not_exported_twice(
    store: Store, tmp_path: Path
) -> None:
    # A review label is also written to `feedback` (source review); only the review counts.
    store.predict("r1", {"x": 1.0, "c": "a"})
    store.review("r1", {"x": 1.0, "c": "a"}, "yes", at=400.0)
    store.feedback("r1", "yes", at=400.0, source="review")

    summary = export_feedback(store.engine, SCHEMA, tmp_path / "f.csv")

    assert summary.rows == 1 and summary.skipped == {}


def test_a_store_from_before_the_review_queue_exports_its_api_labels(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    metadata.create_all(engine, tables=[PREDICTIONS, FEEDBACK])
    with engine.begin() as conn:
        conn.execute(
            PREDICTIONS.insert(),
            {"request_id": "r1", "time": 1.0, "model_name": "m", "model_version": "1",
             "features": json.dumps({"x": 1.0, "c": "a"}), "label": "no"},
        )  # fmt: skip
        conn.execute(FEEDBACK.insert(), {"request_id": "r1", "time": 2.0, "label": "yes"})

    summary = export_feedback(engine, SCHEMA, tmp_path / "f.csv")

    assert summary.rows == 1 and summary.by_source == {"api": 1}


def test_labels_whose_features_were_not_logged_are_counted_not_exported(
    store: Store, tmp_path: Path
) -> None:
    store.predict("logged", {"x": 1.0, "c": "a"})
    store.feedback("logged", "yes", at=10.0)
    for i in range(3):  # log_features: none (or not sampled)
        store.predict(f"bare{i}", None)
        store.feedback(f"bare{i}", "no", at=20.0 + i)
    store.feedback("never-logged", "no", at=30.0)

    summary = export_feedback(store.engine, SCHEMA, tmp_path / "f.csv")

    assert summary.rows == 1
    assert summary.skipped == {"no_features": 3, "no_prediction": 1}
    text = "\n".join(summary.lines())
    assert "3 features not logged" in text and "log_features" in text


def test_a_prediction_logged_by_two_arms_is_taken_once_preferring_logged_features(
    store: Store, tmp_path: Path
) -> None:
    store.predict("r1", None, arm="champion", version="3")
    store.predict("r1", {"x": 2.0, "c": "b"}, arm="shadow", version="4")
    store.feedback("r1", "yes", at=10.0)

    export_feedback(store.engine, SCHEMA, tmp_path / "f.csv")

    frame = read(tmp_path / "f.csv")
    assert frame[["x", "c", "_model_version"]].values.tolist() == [["2.0", "b", "4"]]


def test_rows_that_do_not_fit_the_schema_are_skipped_with_a_reason_each(
    store: Store, tmp_path: Path
) -> None:
    store.review("ok", {"x": 1, "c": "a"}, "yes", at=1.0)
    store.review("missing", {"x": 1}, "yes", at=2.0)
    store.review("unknown", {"x": 1, "c": "a", "zip": "1"}, "yes", at=3.0)
    store.review("text-in-numeric", {"x": "lots", "c": "a"}, "yes", at=4.0)
    store.review("list-in-categorical", {"x": 1, "c": ["a"]}, "yes", at=5.0)
    store.review("other-class", {"x": 1, "c": "a"}, "maybe", at=6.0)

    summary = export_feedback(store.engine, SCHEMA, tmp_path / "f.csv")

    assert summary.rows == 1
    assert summary.skipped == {
        "missing_feature": 1,
        "unknown_feature": 1,
        "bad_value": 2,
        "unknown_label": 1,
    }


def test_since_and_model_choose_the_labels_exported(store: Store, tmp_path: Path) -> None:
    store.review("old", {"x": 1, "c": "a"}, "yes", at=parse_since("2024-01-01"))
    store.review("new", {"x": 2, "c": "a"}, "no", at=parse_since("2024-03-01T10:00:00Z"))
    store.review("other", {"x": 3, "c": "a"}, "no", at=parse_since("2024-03-02"), model="n")
    store.predict("api-other", {"x": 4, "c": "b"}, model="n")
    store.feedback("api-other", "yes", at=parse_since("2024-03-03"))

    export_feedback(
        store.engine, SCHEMA, tmp_path / "f.csv", since=parse_since("2024-02-01"), model="m"
    )

    assert read(tmp_path / "f.csv")["_request_id"].tolist() == ["new"]
    with pytest.raises(DataError, match="neither Unix seconds nor an ISO 8601 time"):
        parse_since("last tuesday")


def test_no_labels_is_an_error_that_says_how_to_get_some_and_keeps_the_old_file(
    store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "feedback.csv"
    out.write_text("previous export\n")
    store.review("pending", {"x": 1, "c": "a"}, None, at=1.0)

    with pytest.raises(DataError, match="no labelled feedback yet") as err:
        export_feedback(store.engine, SCHEMA, out)
    assert "POST /feedback" in str(err.value) and "mlcycle feedback import" in str(err.value)
    assert "review page" in str(err.value)

    store.predict("bare", None)
    store.feedback("bare", "no", at=2.0)
    with pytest.raises(DataError, match=r"none of the labelled rows .* can be used: 1 features"):
        export_feedback(store.engine, SCHEMA, out)
    assert out.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_each_export_is_a_dvc_version_and_an_unchanged_one_keeps_its_md5(
    repo: Path, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store.db")
    store.review("r1", {"x": 1.5, "c": "a"}, "yes", at=10.0)
    out = repo / "data" / "feedback.csv"

    first = export_feedback(store.engine, SCHEMA, out, dvc_root=repo)
    again = export_feedback(store.engine, SCHEMA, out, dvc_root=repo)
    store.review("r2", {"x": 2.5, "c": "b"}, "no", at=20.0)
    changed = export_feedback(store.engine, SCHEMA, out, dvc_root=repo)

    assert first.dvc_file == repo / "data" / "feedback.csv.dvc"
    assert first.md5 is not None and len(first.md5) == 32
    assert again.md5 == first.md5
    assert changed.md5 != first.md5
    assert changed.md5 == yaml.safe_load(first.dvc_file.read_text())["outs"][0]["md5"]
    lines = changed.lines(repo)
    assert f"tracked with DVC in data/feedback.csv.dvc: data version md5 {changed.md5}" in lines
    assert any("mlcycle retrain" in line for line in lines)


def test_load_feedback_reads_the_export_back_ready_to_append_to_training_data(
    store: Store, tmp_path: Path
) -> None:
    store.review("007", {"x": 1.5, "c": "a"}, "yes", at=10.0, by="")
    store.predict("r2", {"x": None, "c": None}, row=2)
    store.feedback("r2", "yes", at=20.0, row=2)
    out = tmp_path / "feedback.csv"
    export_feedback(store.engine, SCHEMA, out)

    loaded = load_feedback(out, SCHEMA)

    ds = loaded.dataset
    assert len(loaded) == 2 and ds.frame.columns.tolist() == ["x", "c"]
    assert ds.frame["x"].dtype == np.float32 and np.isnan(ds.frame["x"][1])
    assert ds.frame["c"].tolist() == ["a", ""] and ds.y.tolist() == ["yes", "yes"]
    assert list(loaded.provenance) == list(PROVENANCE_COLUMNS)
    assert loaded.provenance["_request_id"].tolist() == ["007", "r2"]
    assert loaded.provenance["_row"].tolist() == [0, 2]
    assert loaded.provenance["_labelled_by"].tolist() == ["", ""]
    assert loaded.provenance["_source"].tolist() == ["review", "api"]

    base = Dataset(
        frame=pd.DataFrame({"x": np.array([9.0], np.float32), "c": ["b"]}),
        y=np.array(["no"]),
        schema=SCHEMA,
        version=DataVersion(md5="0" * 32, path="data/t.csv", tracked=True, size=1),
        path=tmp_path / "t.csv",
    )
    both = loaded.append_to(base)
    assert both.y.tolist() == ["no", "yes", "yes"] and both.frame["c"].tolist() == ["b", "a", ""]
    assert both.frame["x"].dtype == np.float32 and both.version == base.version


def test_load_feedback_names_the_columns_that_do_not_match_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "feedback.csv"
    path.write_text("x,colour,y," + ",".join(PROVENANCE_COLUMNS) + "\n1,a,no,r,0,,t,api,1\n")
    with pytest.raises(SchemaError, match=r"missing columns \['c'\], unexpected .*\['colour'\]"):
        load_feedback(path, SCHEMA)
    path.write_text("x,c,y," + ",".join(PROVENANCE_COLUMNS) + "\n1,a,maybe,r,0,,t,api,1\n")
    with pytest.raises(SchemaError, match=r"labels \['maybe'\] are not among the classes"):
        load_feedback(path, SCHEMA)
    with pytest.raises(DataError, match="does not exist; write it with `mlcycle data feedback`"):
        load_feedback(tmp_path / "absent.csv", SCHEMA)


def test_data_feedback_command_exports_breast_cancer_labels_and_fails_cleanly_when_empty(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    breast_cancer: Dataset,
) -> None:
    from mlcycle.cli import main
    from mlcycle.project_init import project_config_yaml

    (repo / "conf").mkdir()
    (repo / "conf" / "config.yaml").write_text(project_config_yaml({}, []))
    monkeypatch.chdir(repo)
    store = Store(repo / "monitor.db")
    with pytest.raises(SystemExit) as exit_:
        main(["data", "feedback"])
    assert exit_.value.code == 2
    assert "error: there is no labelled feedback yet" in capsys.readouterr().err
    assert not (repo / "data" / "feedback.csv").exists()

    columns = breast_cancer.columns()
    for i in range(4):
        features = {k: float(v[i]) for k, v in columns.items()}
        store.review(f"r{i}", features, str(breast_cancer.y[i]), at=1000.0 + i)
    main(["data", "feedback"])

    printed = capsys.readouterr().out
    assert "exported 4 labelled row(s) to data/feedback.csv (review 4)" in printed
    assert "data/feedback.csv.dvc: data version md5" in printed
    schema = Schema.load(repo / "data" / "breast_cancer.schema.yaml")
    header = (repo / "data" / "feedback.csv").read_text().splitlines()[0].split(",")
    assert header == [*schema.feature_names, schema.label, *PROVENANCE_COLUMNS]
    assert len(load_feedback(repo / "data" / "feedback.csv", schema)) == 4
