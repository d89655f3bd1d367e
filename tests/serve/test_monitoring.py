"""The server watches every prediction: the prediction log, monitor metrics, the flags."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests._webhook import Receiver
from tests.serve.conftest import RunningServer
from tests.serve.test_app import MIXED_ROWS, call, post_json


def _wait_for_rows(db: Path, query: str, want: int, timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    rows: list[Any] = []
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    rows = conn.execute(query).fetchall()
                except sqlite3.OperationalError:  # tables not created yet
                    rows = []
            if len(rows) >= want:
                return rows
        time.sleep(0.1)
    return rows


def _metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and not line.startswith("#")
    )


def test_every_prediction_and_failure_is_logged_in_the_store(
    start_server: Callable[..., RunningServer], mixed_bundle: Path, tmp_path: Path
) -> None:
    server = start_server(mixed_bundle, "serve.monitor.expand_after=0")  # expanded at once
    status, _, _ = post_json(f"{server.url}/predict", {"records": MIXED_ROWS}, x_request_id="abc")
    assert status == 200
    status, _, _ = post_json(f"{server.url}/predict", {"records": [{"x0": 1}]}, x_request_id="bad")
    assert status == 422
    rows = _wait_for_rows(
        tmp_path / "monitor.db",
        "SELECT request_id, row, label, confidence, features, error FROM predictions ORDER BY id",
        4,
    )
    assert [(r[0], r[1]) for r in rows] == [("abc", 0), ("abc", 1), ("abc", 2), ("bad", 0)]
    assert all(r[2] in ("high", "low", "mid") and 0 < r[3] <= 1 for r in rows[:3])
    assert json.loads(rows[0][4])["color"] == "red"
    assert rows[3][2] is None and rows[3][5].startswith("422: missing_feature")


def test_metrics_show_the_monitors_window_values_and_counters(
    start_server: Callable[..., RunningServer], mixed_bundle: Path
) -> None:
    server = start_server(
        mixed_bundle,
        "serve.monitor.window.every=10",
        "serve.monitor.window.min_seconds=0",
        "serve.monitor.window.min_rows=10",
    )
    for _ in range(10):
        assert post_json(f"{server.url}/predict", {"records": MIXED_ROWS})[0] == 200
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        text = call(f"{server.url}/metrics")[2]
        if (
            "mlcycle_drift_share" in text
            and _metric(text, "mlcycle_monitor_events_written_total") >= 30
        ):
            break
        time.sleep(0.2)
    assert _metric(text, "mlcycle_predicted_class_total") == 30
    assert _metric(text, "mlcycle_monitor_events_written_total") == 30
    assert 'mlcycle_input_missing_rate{feature="x2"' in text
    assert "mlcycle_drift_share{" in text
    memory = [x for x in text.splitlines() if x.startswith("mlcycle_process_resident_memory")]
    assert any('role="monitor"' in line for line in memory)
    assert any('role="server"' in line for line in memory)


def test_several_workers_report_their_monitors_metrics_together(
    start_server: Callable[..., RunningServer], mixed_bundle: Path
) -> None:
    server = start_server(mixed_bundle, "--workers", "2")
    for _ in range(20):
        assert post_json(f"{server.url}/predict", {"records": MIXED_ROWS})[0] == 200
    deadline = time.monotonic() + 20
    total = 0.0
    while time.monotonic() < deadline and total < 60:
        total = _metric(call(f"{server.url}/metrics")[2], "mlcycle_predicted_class_total")
        time.sleep(0.2)
    assert total == 60


def test_no_monitor_logs_nothing_and_starts_no_monitor(
    start_server: Callable[..., RunningServer], mixed_bundle: Path, tmp_path: Path
) -> None:
    server = start_server(mixed_bundle, "--no-monitor")
    assert post_json(f"{server.url}/predict", {"records": MIXED_ROWS})[0] == 200
    text = call(f"{server.url}/metrics")[2]
    assert "mlcycle_predicted_class_total" not in text
    assert not (tmp_path / "monitor.db").exists()


def test_a_store_that_cannot_be_opened_stops_the_command_with_a_clear_error(
    mixed_bundle: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcycle", "serve", "--model", str(mixed_bundle), "--port", "1",
         "--monitor-store", str(tmp_path / "missing" / "folder" / "m.db")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot open the monitoring store" in proc.stderr and "Traceback" not in proc.stderr


def test_feedback_joins_predictions_and_refuses_what_it_cannot_join(
    start_server: Callable[..., RunningServer], mixed_bundle: Path, tmp_path: Path
) -> None:
    server = start_server(mixed_bundle)
    _, _, doc = post_json(f"{server.url}/predict", {"records": MIXED_ROWS}, x_request_id="r1")
    predicted = [p["label"] for p in doc["predictions"]]
    other = next(c for c in ("high", "low", "mid") if c != predicted[0])
    url = f"{server.url}/feedback"

    status, _, answer = post_json(url, {"request_id": "r1", "label": predicted[0]})
    assert status == 200, answer  # right away: the server waits for the log
    assert answer["stored"] == 1
    status, _, answer = post_json(url, {"request_id": "r1", "label": other})
    assert status == 409 and answer["code"] == "duplicate_feedback"
    assert "overwrite=true" in answer["error"]
    status, _, answer = post_json(f"{url}?overwrite=true", {"request_id": "r1", "label": other})
    assert (status, answer["replaced"]) == (200, 1)
    status, _, answer = post_json(url, {"request_id": "nope", "label": "high"})
    assert status == 404 and answer["problems"][0]["request_id"] == "nope"
    status, _, answer = post_json(url, {"request_id": "r1", "row": 1, "label": "purple"})
    assert status == 422 and "high" in answer["error"]
    status, _, answer = call(url, b"{not json")
    assert status == 400 and answer["code"] == "invalid_json"
    bulk = {
        "feedback": [
            {"request_id": "r1", "row": 1, "label": "low"},
            {"request_id": "r1", "row": 2, "label": "zzz"},
        ]
    }
    status, _, _ = post_json(url, bulk)
    assert status == 422  # all or nothing: row 1 was not stored either
    status, _, answer = post_json(url, {"feedback": bulk["feedback"][:1]})
    assert (status, answer["stored"]) == (200, 1)

    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        rows = conn.execute(
            "SELECT row, label, previous_label, source FROM feedback ORDER BY row"
        ).fetchall()
    assert rows == [(0, other, predicted[0], "api"), (1, "low", None, "api")]
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline and "mlcycle_quality_accuracy{" not in text:
        text = call(f"{server.url}/metrics")[2]
        time.sleep(0.2)
    assert "mlcycle_quality_accuracy{" in text


def test_feedback_needs_the_monitor(
    start_server: Callable[..., RunningServer], mixed_bundle: Path
) -> None:
    server = start_server(mixed_bundle, "--no-monitor")
    status, _, answer = post_json(f"{server.url}/feedback", {"request_id": "a", "label": "low"})
    assert status == 503 and "feedback import" in answer["error"]


def test_an_alarm_reaches_the_webhook_the_store_and_the_alarms_command(
    start_server: Callable[..., RunningServer], mixed_bundle: Path, tmp_path: Path
) -> None:
    hook = Receiver([200])
    try:
        server = start_server(
            mixed_bundle,
            "serve.monitor.window.every=4",
            "serve.monitor.window.min_seconds=0",
            "serve.monitor.alarms=[{name: errors, metric: error_rate, threshold: 0.2, "
            "min_samples: 4, severity: critical}]",
            f"serve.monitor.sinks={{webhook_url: '{hook.url}', webhook_timeout: 2}}",
        )
        for i in range(8):  # half of them fail: an error rate of 0.5
            body = {"records": MIXED_ROWS if i % 2 else [{"x0": 1}]}
            post_json(f"{server.url}/predict", body)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not hook.bodies:
            time.sleep(0.1)
    finally:
        hook.close()
    assert hook.bodies, "no alarm reached the webhook"
    alarm = hook.bodies[0]
    assert (alarm["name"], alarm["state"], alarm["severity"]) == ("errors", "firing", "critical")
    assert alarm["metric"] == "error_rate" and alarm["value"] >= 0.25

    db = str(tmp_path / "monitor.db")
    listed = subprocess.run(
        [sys.executable, "-m", "mlcycle", "monitor", "alarms", "--store", db, "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
    )  # fmt: skip
    alarms = json.loads(listed.stdout)
    assert [a["name"] for a in alarms] == ["errors"]
    ack = subprocess.run(
        [sys.executable, "-m", "mlcycle", "monitor", "ack", str(alarms[0]["id"]),
         "--by", "ana", "--store", db],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert ack.returncode == 0, ack.stderr
    again = subprocess.run(
        [sys.executable, "-m", "mlcycle", "monitor", "ack", str(alarms[0]["id"]), "--store", db],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert again.returncode == 2 and "was acknowledged by ana" in again.stderr


def test_a_server_logs_to_postgresql_and_joins_feedback_there(
    start_server: Callable[..., RunningServer], mixed_bundle: Path, postgres_server: Any
) -> None:
    import sqlalchemy as sa

    url = postgres_server.create_database()
    server = start_server(
        mixed_bundle, "--monitor-store", url, "--workers", "2", "serve.monitor.expand_after=0"
    )
    for i in range(6):
        status, _, _ = post_json(
            f"{server.url}/predict", {"records": MIXED_ROWS}, x_request_id=f"pg{i}"
        )
        assert status == 200
    status, _, answer = post_json(
        f"{server.url}/feedback", {"request_id": "pg3", "row": 2, "label": "low"}
    )
    assert status == 200, answer
    engine = sa.create_engine(url)
    try:
        deadline = time.monotonic() + 20
        count = 0
        while time.monotonic() < deadline and count < 18:
            with engine.connect() as conn:
                count = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one()
            time.sleep(0.1)
        with engine.connect() as conn:
            joined = conn.execute(
                sa.text(
                    "SELECT p.label, f.label FROM feedback f JOIN predictions p "
                    "ON p.request_id = f.request_id AND p.row = f.row"
                )
            ).all()
    finally:
        engine.dispose()
    assert count == 18  # two workers, each with its monitor, one PostgreSQL store
    assert len(joined) == 1 and joined[0][1] == "low"
