"""mlcycle monitor report: a window of a real SQLite store as a JSON document and one
self-contained HTML file with plots; an empty window and bad times are clear errors."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mlcycle.exceptions import BundleError, ConfigError, DataError, MlcycleError
from mlcycle.monitor.report import EmptyWindowError, store_document, write_report
from mlcycle.monitor.report_command import add_arguments, parse_since, parse_until, run
from mlcycle.monitor.report_html import _fmt
from mlcycle.monitor.store import (
    ALARMS,
    FEEDBACK,
    METRIC_POINTS,
    PREDICTIONS,
    PredictionEvent,
    connect,
)

T0 = 1_767_312_000.0  # 2026-01-02T00:00:00Z
HOUR = 3600.0


def fill_store(path: Path, *, shift: float = 0.0, n: int = 240) -> sa.Engine:
    """Two hours of predictions (one row a request, every 30 s), feedback on every other
    row, two errors, one alarm and a metric series; one prediction of another model."""
    rng = np.random.default_rng(3)
    engine = connect(path)
    rows, feedback = [], []
    for i in range(n):
        p_high = float(rng.uniform(0.3, 0.95))
        label = "high" if i % 3 else "low"
        event = PredictionEvent(
            request_id=f"r{i}",
            model_name="mixed",
            model_version="2" if i < n // 2 else "3",
            time=T0 + 30.0 * i,
            features={
                "x0": float(rng.normal(shift, 1)),
                "color": str(rng.choice(["red", "green", "blue"], p=[0.4, 0.35, 0.25]))
                if not shift
                else "red",
                "x1": None if i % 10 == 0 else float(rng.normal(0, 1)),
            },
            label=None if i in (5, 77) else label,
            probabilities=None if i in (5, 77) else {label: p_high, "other": 1 - p_high},
            latency_ms=float(1 + i % 7),
            error="boom" if i in (5, 77) else None,
        )
        rows.append(event.to_row())
        if i % 2 == 0 and i not in (5, 77):
            truth = label if i % 4 == 0 else "mid"
            feedback.append({"request_id": f"r{i}", "row": 0, "time": T0 + 30 * i + 5,
                             "label": truth, "source": "api"})  # fmt: skip
    other = PredictionEvent("o1", "other-model", "1", time=T0 + 10, label="x")
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [*rows, other.to_row()])
        conn.execute(FEEDBACK.insert(), feedback)
        conn.execute(ALARMS.insert(), [
            {"time": T0 + 1800, "name": "error-rate", "metric": "error_rate",
             "severity": "critical", "state": "firing", "value": 0.2, "threshold": 0.1,
             "message": "errors above 10%"},
            {"time": T0 - 5 * HOUR, "name": "old", "metric": "latency_p99",
             "severity": "warning", "state": "resolved", "value": 9.0, "threshold": 5.0,
             "message": "x"},
        ])  # fmt: skip
        conn.execute(METRIC_POINTS.insert(), [
            {"time": T0 + 600 * k, "name": "drift_share", "labels": "", "value": k / 10}
            for k in range(6)
        ])  # fmt: skip
    return engine


def reference_rows(rng: np.random.Generator, n: int = 2000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x0": rng.normal(0, 1, n),
            "color": rng.choice(["red", "green", "blue"], n, p=[0.4, 0.35, 0.25]),
            "x1": rng.normal(0, 1, n),
        }
    )


def report_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def feature_svgs(page: str) -> dict[str, int]:
    """Feature -> number of <svg> in its figure of the per-feature section."""
    section = page.split("Reference vs current, per feature", 1)[1]
    figures = re.findall(r"<figure>(.*?)<figcaption>([^:<]+):", section, flags=re.S)
    return {name: body.count("<svg") for body, name in figures}


def test_the_timelines_count_rows_errors_latency_confidence_and_feedback_accuracy(
    tmp_path: Path,
) -> None:
    engine = fill_store(tmp_path / "m.db")
    doc = store_document(engine, T0, T0 + 2 * HOUR, model="mixed")
    s = doc["summary"]
    assert s["rows"] == s["requests"] == 240 and s["errors"] == 2
    assert s["error_rate"] == pytest.approx(2 / 240)
    with engine.connect() as conn:
        p = PREDICTIONS
        got = conn.execute(
            sa.select(p.c.latency_ms, p.c.confidence).where(p.c.model_name == "mixed")
        ).all()
    latency = np.array([r.latency_ms for r in got])
    conf = np.array([r.confidence for r in got if r.confidence is not None])
    assert s["latency_p50_ms"] == pytest.approx(np.percentile(latency, 50))
    assert s["latency_p99_ms"] == pytest.approx(np.percentile(latency, 99))
    assert s["mean_confidence"] == pytest.approx(conf.mean())
    assert s["low_confidence_rate"] == pytest.approx((conf < 0.6).mean())
    # Feedback on every even row: right on multiples of 4, wrong ("mid") on the others.
    assert s["feedback"] == 120 and s["accuracy"] == pytest.approx(0.5)
    assert s["class_mix"] == pytest.approx({"high": 158 / 238, "low": 80 / 238})
    assert s["model_versions"] == ["2", "3"]
    timeline = doc["timeline"]
    assert timeline["bucket_seconds"] == 300  # two hours in 24 buckets of 5 minutes
    buckets = timeline["buckets"]
    assert len(buckets) == 24 and all(b["rows"] == 10 for b in buckets)
    assert buckets[0]["start"] == "2026-01-02T00:00:00Z"
    assert sum(b["errors"] for b in buckets) == 2
    assert buckets[0]["error_rate"] == pytest.approx(0.1)  # row 5 failed
    assert [a["name"] for a in doc["alarms"]] == ["error-rate"]  # the old one is outside
    [series] = doc["metric_points"]
    assert series["name"] == "drift_share" and len(series["points"]) == 6
    assert doc["drift"] is None and "--reference" in doc["drift_note"]


def test_the_html_report_is_self_contained_with_the_same_numbers_as_its_json(
    tmp_path: Path,
) -> None:
    fill_store(tmp_path / "m.db", shift=2.0)
    reference_rows(np.random.default_rng(1)).to_csv(tmp_path / "ref.csv", index=False)
    ns = report_args("--store", str(tmp_path / "m.db"), "--since", "2026-01-02T00:00",
                     "--until", "2026-01-02T02:00Z", "--model", "mixed",
                     "--reference", str(tmp_path / "ref.csv"),
                     "--output", str(tmp_path / "out" / "report.html"))  # fmt: skip
    written = run(ns)
    assert written == [tmp_path / "out" / "report.html", tmp_path / "out" / "report.json"]
    page = written[0].read_text()
    doc: dict[str, Any] = json.loads(written[1].read_text())

    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "<img" not in page

    drift = doc["drift"]
    features = [f["feature"] for f in drift["features"]]
    assert sorted(features) == ["color", "x0", "x1"]
    assert feature_svgs(page) == dict.fromkeys(features, 1)
    assert set(drift["dataset"]["drifted_features"]) == {"x0", "color"}
    assert drift["histograms"]["color"]["current"][0] == 1.0  # only "red" logged
    for f in drift["features"]:
        assert _fmt(f["statistic"]) in page and _fmt(f["psi"]) in page
    for key in ("error_rate", "latency_p99_ms", "mean_confidence", "accuracy"):
        assert _fmt(doc["summary"][key]) in page
    assert "errors above 10%" in page  # the alarms table
    assert page.count("<svg") >= 1 + 3 + 6 + 1  # scores, features, timelines, metrics


def test_drift_against_a_bundle_profile(tmp_path: Path, mixed_bundle: Path) -> None:
    fill_store(tmp_path / "m.db", shift=3.0)
    ns = report_args("--store", str(tmp_path / "m.db"), "--since", "2026-01-01",
                     "--until", "2026-01-03", "--reference", str(mixed_bundle),
                     "--output", str(tmp_path / "r.json"))  # fmt: skip
    assert run(ns) == [tmp_path / "r.json"]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert not (tmp_path / "r.html").exists()
    drift = doc["drift"]
    assert str(mixed_bundle) in drift["reference"]
    assert {f["feature"] for f in drift["features"]} == {"x0", "x1", "color"}
    assert {"x0", "color"} <= set(drift["dataset"]["drifted_features"])
    assert drift["histograms"]["x0"]["type"] == "numeric"
    assert len(drift["histograms"]["x0"]["edges"]) == 31
    assert doc["summary"]["rows"] == 241  # no --model: the other model's row too


def test_a_folder_without_profile_is_a_clear_error(tmp_path: Path) -> None:
    fill_store(tmp_path / "m.db")
    ns = report_args("--store", str(tmp_path / "m.db"), "--since", "2026-01-01",
                     "--until", "2026-01-03", "--reference", str(tmp_path),
                     "--output", str(tmp_path / "r.html"))  # fmt: skip
    with pytest.raises(BundleError, match=r"no profile\.json"):
        run(ns)


def test_an_empty_window_names_the_range_and_what_the_store_holds(tmp_path: Path) -> None:
    fill_store(tmp_path / "m.db")
    ns = report_args("--store", str(tmp_path / "m.db"), "--since", "2026-02-01",
                     "--until", "2026-02-02", "--output", str(tmp_path / "r.html"))  # fmt: skip
    with pytest.raises(EmptyWindowError) as info:
        run(ns)
    text = str(info.value)
    assert isinstance(info.value, DataError)
    assert "from 2026-02-01T00:00:00Z to 2026-02-02T00:00:00Z" in text
    assert "241 prediction(s) in total" in text
    assert "from 2026-01-02T00:00:00Z to 2026-01-02T01:59:30Z" in text
    assert "--since" in text
    assert not (tmp_path / "r.html").exists()

    scoped = report_args("--store", str(tmp_path / "m.db"), "--since", "2026-01-01",
                         "--until", "2026-01-03", "--model", "nope",
                         "--output", str(tmp_path / "r.html"))  # fmt: skip
    with pytest.raises(EmptyWindowError, match=r"model 'nope'.*241 prediction.*0 of them"):
        run(scoped)


def test_an_empty_store_and_a_missing_store_file_are_clear_errors(tmp_path: Path) -> None:
    connect(tmp_path / "empty.db").dispose()
    ns = report_args("--store", str(tmp_path / "empty.db"), "--output", str(tmp_path / "r.html"))
    with pytest.raises(EmptyWindowError, match="holds no predictions at all"):
        run(ns)
    missing = report_args("--store", str(tmp_path / "nope.db"), "--output", "r.html")
    with pytest.raises(DataError, match=r"nope\.db does not exist"):
        run(missing)
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize(
    ("since", "until", "match"),
    [
        ("yesterday", "now", r"--since 'yesterday' is not a time.*24h"),
        ("24x", "now", r"--since '24x' is not a time"),
        ("1h", "2026-13-01", r"--until '2026-13-01' is not a time.*'now'"),
        ("2026-01-03", "2026-01-02", r"--since '2026-01-03' is not before --until"),
    ],
)
def test_bad_times_are_clear_errors(tmp_path: Path, since: str, until: str, match: str) -> None:
    fill_store(tmp_path / "m.db")
    ns = report_args("--store", str(tmp_path / "m.db"), "--since", since, "--until", until,
                     "--output", str(tmp_path / "r.html"))  # fmt: skip
    with pytest.raises(ConfigError, match=match):
        run(ns)


def test_times_are_iso_in_utc_unless_zoned_or_durations_back_from_until() -> None:
    until = parse_until("2026-01-02T02:00:00+02:00")
    assert until == T0
    assert parse_since("90m", until) == T0 - 5400
    assert parse_since("2w", until) == T0 - 14 * 86400
    assert parse_since("2026-01-01", until) == T0 - 86400
    assert parse_until("now", now=5.0) == 5.0


def test_write_report_chooses_by_suffix(tmp_path: Path) -> None:
    doc = {"kind": "drift", "title": "t", "value": float("nan"), "n": np.int64(3)}
    assert write_report(doc, tmp_path / "a.json") == [tmp_path / "a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "kind": "drift", "title": "t", "value": None, "n": 3,
    }  # fmt: skip
    with pytest.raises(MlcycleError, match=r"\.html .*or \.json"):
        write_report(doc, tmp_path / "a.txt")
