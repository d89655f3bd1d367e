"""``mlcycle feedback import FILE.csv``: labels checked against a bundle's classes (or the
logged ones), a summary printed, one bad row refusing the file unless --skip-invalid."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlcycle.exceptions import BundleError, DataError
from mlcycle.monitor import feedback_command
from mlcycle.monitor.feedback import FeedbackError
from mlcycle.monitor.store import FEEDBACK, PREDICTIONS, PredictionEvent, connect


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlcycle feedback")
    feedback_command.add_arguments(parser)
    return parser.parse_args(list(args))


def store_with_predictions(path: Path, labels: list[str]) -> str:
    engine = connect(path)
    events = [
        PredictionEvent(request_id=f"r{i}", model_name="m", model_version="1", label=label)
        for i, label in enumerate(labels)
    ]
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [e.to_row() for e in events])
    engine.dispose()
    return str(path)


def feedback_rows(store: str) -> dict[str, str]:
    engine = connect(store)
    with engine.connect() as conn:
        got = {r.request_id: r.label for r in conn.execute(sa.select(FEEDBACK))}
    engine.dispose()
    return got


def test_import_checks_labels_against_the_bundle_classes_and_prints_a_summary(
    tmp_path: Path, mixed_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = store_with_predictions(tmp_path / "m.db", ["mid", "mid", "high"])
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label\nr0,low\nr1,mid\n")  # low was never predicted
    result = feedback_command.run(
        parse("import", str(csv), "--store", store, "--model", str(mixed_bundle))
    )
    assert result.stored == 2
    assert f"feedback from {csv}: 2 stored, 0 replaced, 0 unchanged, 0 rejected" in (
        capsys.readouterr().out
    )
    assert feedback_rows(store) == {"r0": "low", "r1": "mid"}


def test_without_a_bundle_the_classes_are_the_logged_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = store_with_predictions(tmp_path / "m.db", ["mid", "mid", "high"])
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label,row\nr0,low,0\nr1,mid,0\nr2,high,0\n")
    with pytest.raises(FeedbackError) as info:
        feedback_command.run(parse("import", str(csv), "--store", store))
    assert info.value.status == 422
    assert "line 2: label 'low' is not one of the model's classes ('high', 'mid')" in str(
        info.value
    )
    assert feedback_rows(store) == {}
    feedback_command.run(parse("import", str(csv), "--store", store, "--skip-invalid"))
    out = capsys.readouterr().out
    assert "2 stored, 0 replaced, 0 unchanged, 1 rejected" in out
    assert "rejected [unknown_label] line 2: label 'low'" in out


def test_a_stored_label_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_with_predictions(tmp_path / "m.db", ["a", "b"])
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("request_id,label\nr0,a\nr1,b\n")
    second.write_text("request_id,label\nr0,b\nr1,b\n")
    feedback_command.run(parse("import", str(first), "--store", store))
    with pytest.raises(FeedbackError, match="--overwrite") as info:
        feedback_command.run(parse("import", str(second), "--store", store))
    assert info.value.status == 409
    feedback_command.run(parse("import", str(second), "--store", store, "--overwrite"))
    assert "0 stored, 1 replaced, 1 unchanged, 0 rejected" in capsys.readouterr().out
    assert feedback_rows(store) == {"r0": "b", "r1": "b"}


def test_the_default_store_is_monitor_db_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store_with_predictions(tmp_path / "monitor.db", ["a"])
    (tmp_path / "f.csv").write_text("request_id,label\nr0,a\n")
    assert feedback_command.run(parse("import", "f.csv")).stored == 1


def test_a_bad_file_or_bundle_is_a_clear_error(tmp_path: Path) -> None:
    store = store_with_predictions(tmp_path / "m.db", ["a"])
    with pytest.raises(DataError, match="does not exist"):
        feedback_command.run(parse("import", str(tmp_path / "nope.csv"), "--store", store))
    (tmp_path / "f.csv").write_text("request_id,label\nr0,a\n")
    with pytest.raises(BundleError, match="not a bundle folder"):
        feedback_command.run(
            parse("import", str(tmp_path / "f.csv"), "--store", store, "--model", str(tmp_path))
        )
