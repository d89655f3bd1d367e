"""mlcycle.monitor.feedback on SQLite: bodies parsed with the path of each mistake, a batch
checked whole and written all-or-nothing (404 / 422 / 409), the same label again is a
no-op, overwrite keeps the old label, CSV imports, and the join back to predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mlcycle.exceptions import DataError
from mlcycle.monitor.feedback import (
    FeedbackError,
    FeedbackItem,
    import_feedback_csv,
    labelled_predictions,
    parse_feedback,
    record_feedback,
)
from mlcycle.monitor.store import FEEDBACK, PREDICTIONS, PredictionEvent, connect

CLASSES = ["no", "yes"]


def log_predictions(engine: sa.Engine, n: int, *, version: str = "1", t0: float = 1000.0) -> None:
    """Predictions r0..r{n-1} (row 0), r{i} at time t0 + i, label yes for odd i."""
    events = [
        PredictionEvent(
            request_id=f"r{i}",
            model_name="m",
            model_version=version,
            time=t0 + i,
            label="yes" if i % 2 else "no",
            probabilities={"no": 0.4, "yes": 0.6},
        )
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [e.to_row() for e in events])


def stored(engine: sa.Engine) -> dict[tuple[str, int], tuple[str, str | None, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(FEEDBACK))
        return {(r.request_id, r.row): (r.label, r.previous_label, r.source) for r in rows}


@pytest.fixture()
def engine(tmp_path: Path) -> sa.Engine:
    engine = connect(tmp_path / "monitor.db")
    log_predictions(engine, 10)
    return engine


def test_parse_accepts_one_object_a_list_and_the_bulk_form_with_labels_as_text() -> None:
    assert parse_feedback({"request_id": "a", "label": "yes"}) == [FeedbackItem("a", "yes", 0)]
    bulk = parse_feedback(
        {
            "feedback": [
                {"request_id": "a", "label": 1, "row": 2},
                {"request_id": "b", "label": True},
                {"request_id": "c", "label": 2.0},
                {"request_id": "d", "label": 0.5},
            ],
            "overwrite": True,
        }
    )
    assert bulk == [
        FeedbackItem("a", "1", 2),
        FeedbackItem("b", "True", 0),
        FeedbackItem("c", "2", 0),
        FeedbackItem("d", "0.5", 0),
    ]
    assert parse_feedback([{"request_id": "a", "label": "no"}]) == [FeedbackItem("a", "no")]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"feedback": [{"request_id": "a", "label": "x"}] * 3 + [{"request_id": "a"}]},
         "feedback[3].label"),
        ([{"request_id": "a", "label": None}], "feedback[0].label"),
        ([{"request_id": "", "label": "x"}], "feedback[0].request_id"),
        ([{"request_id": "a", "label": "x", "row": -1}], "feedback[0].row"),
        ([{"request_id": "a", "label": "x", "row": True}], "feedback[0].row"),
        ([{"request_id": "a", "label": "x", "lable": "y"}], "feedback[0].lable"),
        ([{"request_id": "a", "label": [1]}], "feedback[0].label"),
        ([17], "feedback[0] must be an object"),
        ({"label": "x"}, "body.request_id"),
        ({"feedback": {"request_id": "a"}}, "feedback must be a list"),
        ({"feedback": []}, "feedback is an empty list"),
        ({"feedback": [], "extra": 1}, "extra is not a field"),
        ("text", "the body must be"),
    ],
)  # fmt: skip
def test_a_badly_shaped_body_is_a_400_naming_the_path(doc: object, path: str) -> None:
    with pytest.raises(FeedbackError) as info:
        parse_feedback(doc)
    assert info.value.status == 400
    assert path in str(info.value)
    assert all(p["code"] == "invalid" for p in info.value.problems)


def test_every_bad_item_of_a_body_is_reported_with_its_index() -> None:
    doc = [{"request_id": "a", "label": "x"}, {"request_id": 5, "label": "x"}, {"label": "y"}]
    with pytest.raises(FeedbackError) as info:
        parse_feedback(doc)
    assert [p["index"] for p in info.value.problems] == [1, 2]
    assert set(info.value.problems[0]) == {"index", "request_id", "row", "code", "message"}


def test_labels_are_stored_and_joined_back_to_their_predictions(engine: sa.Engine) -> None:
    items = [FeedbackItem("r1", "yes"), FeedbackItem("r2", "yes"), FeedbackItem("r3", "no")]
    result = record_feedback(engine, items, classes=CLASSES, now=5000.0)
    assert (result.stored, result.replaced, result.unchanged, result.rejected) == (3, 0, 0, [])
    assert stored(engine)[("r2", 0)] == ("yes", None, "api")
    assert labelled_predictions(engine) == [
        ("yes", "yes", 1001.0),
        ("no", "yes", 1002.0),
        ("yes", "no", 1003.0),
    ]
    assert labelled_predictions(engine, since=1002.0, until=1003.0) == [("no", "yes", 1002.0)]
    assert labelled_predictions(engine, model_version="2") == []


def test_an_unknown_request_or_row_is_a_404_and_nothing_is_stored(engine: sa.Engine) -> None:
    items = [FeedbackItem("r1", "yes"), FeedbackItem("nope", "yes"), FeedbackItem("r2", "no", 1)]
    with pytest.raises(FeedbackError) as info:
        record_feedback(engine, items, classes=CLASSES)
    assert info.value.status == 404
    assert [(p["index"], p["code"]) for p in info.value.problems] == [
        (1, "unknown_prediction"),
        (2, "unknown_prediction"),
    ]
    assert "'nope'" in str(info.value) and "row 1" in str(info.value)
    assert stored(engine) == {}  # r1 was fine, but the batch is all or nothing


def test_a_label_outside_the_classes_is_a_422_listing_them(engine: sa.Engine) -> None:
    with pytest.raises(FeedbackError) as info:
        record_feedback(engine, [FeedbackItem("r1", "maybe")], classes=CLASSES)
    assert info.value.status == 422
    assert info.value.problems[0]["code"] == "unknown_label"
    assert "'maybe'" in str(info.value) and "'no', 'yes'" in str(info.value)


def test_booleans_and_numeric_text_map_to_their_class(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    events = [
        PredictionEvent(request_id=f"r{i}", model_name="m", model_version="1", label="1")
        for i in range(4)
    ]
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [e.to_row() for e in events])
    items = parse_feedback([
        {"request_id": "r0", "label": 1},
        {"request_id": "r1", "label": 1.0},
        {"request_id": "r2", "label": "1.0"},
        {"request_id": "r3", "label": "false"},
    ])  # fmt: skip
    result = record_feedback(engine, items[:3], classes=["0", "1"])
    assert result.stored == 3
    assert {v[0] for v in stored(engine).values()} == {"1"}
    bools = record_feedback(engine, items[3:], classes=["False", "True"])
    assert bools.stored == 1 and stored(engine)[("r3", 0)][0] == "False"
    with pytest.raises(FeedbackError) as info:  # True is not the class "1"
        record_feedback(
            engine, parse_feedback({"request_id": "r0", "label": True}), classes=["0", "1"]
        )
    assert info.value.status == 422


def test_a_different_label_is_a_409_unless_overwrite_keeps_the_old_one(engine: sa.Engine) -> None:
    record_feedback(engine, [FeedbackItem("r1", "yes")], classes=CLASSES)
    with pytest.raises(FeedbackError) as info:
        record_feedback(engine, [FeedbackItem("r1", "no")], classes=CLASSES)
    assert info.value.status == 409 and info.value.problems[0]["code"] == "duplicate"
    assert "send overwrite=true to replace it" in str(info.value)
    assert stored(engine)[("r1", 0)] == ("yes", None, "api")
    result = record_feedback(
        engine, [FeedbackItem("r1", "no")], classes=CLASSES, overwrite=True, source="review"
    )
    assert (result.stored, result.replaced) == (0, 1)
    assert stored(engine)[("r1", 0)] == ("no", "yes", "review")


def test_the_same_label_again_is_idempotent(engine: sa.Engine) -> None:
    items = [FeedbackItem("r1", "yes"), FeedbackItem("r2", "no")]
    first = record_feedback(engine, items, classes=CLASSES, now=1.0)
    again = record_feedback(engine, items, classes=CLASSES, now=2.0)
    assert (first.stored, again.stored, again.unchanged) == (2, 0, 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(FEEDBACK.c.time))).scalar() == 1.0
    overwrite = record_feedback(engine, items, classes=CLASSES, overwrite=True)
    assert (overwrite.replaced, overwrite.unchanged) == (0, 2)
    assert stored(engine)[("r1", 0)][1] is None


def test_one_prediction_twice_in_a_batch(engine: sa.Engine) -> None:
    same = record_feedback(
        engine, [FeedbackItem("r1", "yes"), FeedbackItem("r1", "yes")], classes=CLASSES
    )
    assert (same.stored, same.unchanged) == (1, 1)
    with pytest.raises(FeedbackError) as info:
        record_feedback(
            engine,
            [FeedbackItem("r2", "yes"), FeedbackItem("r3", "no"), FeedbackItem("r2", "no")],
            classes=CLASSES,
            overwrite=True,
        )
    assert info.value.status == 409
    assert [(p["index"], p["code"]) for p in info.value.problems] == [(2, "duplicate_in_batch")]
    assert "feedback[0]" in str(info.value)
    assert ("r3", 0) not in stored(engine)


def test_every_problem_is_reported_and_the_status_is_of_the_first_kind(engine: sa.Engine) -> None:
    record_feedback(engine, [FeedbackItem("r1", "yes")], classes=CLASSES)
    items = [FeedbackItem("r1", "no"), FeedbackItem("zz", "no"), FeedbackItem("r2", "maybe")]
    with pytest.raises(FeedbackError) as info:
        record_feedback(engine, items, classes=CLASSES)
    assert info.value.status == 422
    codes = [p["code"] for p in info.value.problems]
    assert codes == ["duplicate", "unknown_prediction", "unknown_label"]
    partial = record_feedback(
        engine, [*items, FeedbackItem("r4", "no")], classes=CLASSES, skip_invalid=True
    )
    assert partial.stored == 1 and len(partial.rejected) == 3


def test_labelled_predictions_leave_out_failed_ones_and_filter_by_version(
    tmp_path: Path,
) -> None:
    engine = connect(tmp_path / "m.db")
    log_predictions(engine, 2, version="1")
    failed = PredictionEvent(request_id="bad", model_name="m", model_version="1", error="boom")
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [failed.to_row()])
        row = {"request_id": "bad", "row": 0, "time": 0.0, "label": "no", "source": "api"}
        conn.execute(FEEDBACK.insert(), [row])
    record_feedback(engine, [FeedbackItem("r0", "no"), FeedbackItem("r1", "no")], classes=CLASSES)
    assert len(labelled_predictions(engine)) == 2
    assert labelled_predictions(engine, model_version="1", since=1001.0) == [("yes", "no", 1001.0)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_import_is_all_or_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", "request_id,label,row,note\nr1,yes,,x\nr2,no,0,y\n")
    result = import_feedback_csv(engine, good, classes=CLASSES)
    assert (result.stored, result.rejected) == (2, [])
    assert stored(engine)[("r1", 0)] == ("yes", None, "import:good.csv")
    bad = write(tmp_path / "bad.csv", "request_id,label\nr3,yes\nr4,maybe\nnope,no\nr5,\n")
    with pytest.raises(FeedbackError) as info:
        import_feedback_csv(engine, bad, classes=CLASSES)
    assert [(p["line"], p["code"]) for p in info.value.problems] == [
        (3, "unknown_label"),
        (4, "unknown_prediction"),
        (5, "invalid"),
    ]
    assert "line 3: label 'maybe'" in str(info.value)
    assert ("r3", 0) not in stored(engine)


def test_skip_invalid_stores_the_good_rows_and_reports_the_rest(
    engine: sa.Engine, tmp_path: Path
) -> None:
    record_feedback(engine, [FeedbackItem("r1", "yes")], classes=CLASSES)
    csv = write(tmp_path / "f.csv", "\ufeffrequest_id,label,row\nr1,no,0\nr3,yes,0\nr4,no,x\n")
    result = import_feedback_csv(engine, csv, classes=CLASSES, skip_invalid=True)
    assert result.stored == 1
    assert [(p["line"], p["code"]) for p in result.rejected] == [(2, "duplicate"), (4, "invalid")]
    assert "--overwrite" in result.rejected[0]["message"]
    assert "line 4.row" in result.rejected[1]["message"]
    replaced = import_feedback_csv(engine, csv, classes=CLASSES, skip_invalid=True, overwrite=True)
    assert (replaced.replaced, replaced.unchanged, len(replaced.rejected)) == (1, 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("request_id,label\n", "has a header but no rows"),
        ("request_id,truth\nr1,yes\n", "lacks the column(s) label"),
        ("id,truth\nr1,yes\n", "lacks the column(s) request_id, label"),
    ],
)
def test_a_csv_without_rows_or_columns_is_a_clear_error(
    engine: sa.Engine, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_feedback_csv(engine, write(tmp_path / "f.csv", text), classes=CLASSES)


def test_a_missing_or_unreadable_csv_is_a_clear_error(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        import_feedback_csv(engine, tmp_path / "nope.csv", classes=CLASSES)
    with pytest.raises(DataError, match="is a folder"):
        import_feedback_csv(engine, tmp_path, classes=CLASSES)
    binary = tmp_path / "f.csv"
    binary.write_bytes(b"request_id,label\n\xff\xfe,\x80\n")
    with pytest.raises(DataError, match="UTF-8"):
        import_feedback_csv(engine, binary, classes=CLASSES)
