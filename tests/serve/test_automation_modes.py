"""Degrees of automation over real HTTP: what ``POST /predict`` answers in each mode, that
the other prediction routes refuse what they cannot express, that a mode set through the
admin API reaches every worker within about a second, and that queued rows survive a
``kill -9`` of the server.

One two-worker server (with an admin token and a SQLite store) serves the module; the
tests switch its mode as they need.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.serve.conftest import RunningServer, _stop, _wait_ready
from tests.serve.test_app import MIXED_ROWS

TOKEN = "automation-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PREDICTION_KEYS = {"label", "probabilities"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("automation") / "monitor.db"


@pytest.fixture(scope="module")
def server(mixed_bundle: Path, store: Path) -> Iterator[RunningServer]:
    """Two workers, an admin token, full mode from the config."""
    folder = store.parent
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(mixed_bundle),
             "--port", str(port), "--workers", "2", "--monitor-store", str(store),
             "serve.monitor.flush_interval=0.1", "serve.monitor.expand_after=0"],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder,
            env={**os.environ, "MLCYCLE_ADMIN_TOKEN": TOKEN}, start_new_session=True,
        )  # fmt: skip
    running = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    _wait_ready(running)
    yield running
    _stop(running)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


_MODE: dict[str, Any] = {"mode": "full", "threshold": None}


def use_mode(client: httpx.Client, mode: str, threshold: float | None = None) -> None:
    """Set the mode through the admin API and wait until both workers follow it."""
    if {"mode": mode, "threshold": threshold} == _MODE:
        return
    body: dict[str, Any] = {"mode": mode}
    if threshold is not None:
        body["threshold"] = threshold
    answer = client.post("/admin/automation", json=body, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["mode"], answer.json()["source"]) == (mode, "store")
    _MODE.update(mode=mode, threshold=threshold)
    time.sleep(1.3)  # every worker reads it at least once a second


def predict(client: httpx.Client, headers: dict[str, str] | None = None) -> Any:
    return client.post("/predict", json={"records": MIXED_ROWS}, headers=headers)


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """The sum of a counter's samples with these labels (over both workers)."""
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def reviewer_item(client: httpx.Client, review_id: str) -> Any:
    answer = client.get(f"/review/api/items/{review_id}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def expected(client: httpx.Client) -> list[dict[str, Any]]:
    """What full mode answers for MIXED_ROWS."""
    use_mode(client, "full")
    answer = predict(client)
    assert answer.status_code == 200, answer.text
    predictions: list[dict[str, Any]] = answer.json()["predictions"]
    return predictions


INFER_BODY = {"inputs": [
    {"name": "numeric", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.0, 2.0]},
    {"name": "categorical", "shape": [1, 2], "datatype": "BYTES", "data": ["red", "S"]},
]}  # fmt: skip
OTHER_ROUTES = [
    ("/invocations", {"dataframe_records": MIXED_ROWS}),
    ("/v2/models/mixed/infer", INFER_BODY),
]


# -- full mode ----------------------------------------------------------------------------------


def test_full_mode_answers_exactly_as_before(
    client: httpx.Client, expected: list[dict[str, Any]]
) -> None:
    use_mode(client, "full")
    answer = predict(client)
    assert answer.status_code == 200
    doc = answer.json()
    assert set(doc) == {"request_id", "model", "predictions"}
    assert doc["predictions"] == expected
    assert all(set(p) == PREDICTION_KEYS for p in doc["predictions"])
    for path, body in OTHER_ROUTES:
        assert client.post(path, json=body).status_code == 200
    # Its rows count as automatic, from the background thread (about once a second).
    deadline = time.monotonic() + 5
    while metric(client, "mlcycle_automation_rows_total", mode="full") < 3:
        assert time.monotonic() < deadline, client.get("/metrics").text
        time.sleep(0.2)


# -- the review modes -----------------------------------------------------------------------------


def test_human_only_queues_every_row_and_never_calls_the_model(client: httpx.Client) -> None:
    use_mode(client, "human_only")
    predicted = metric(client, "mlcycle_predicted_rows_total")
    batches = metric(client, "mlcycle_batch_rows_count")
    answer = predict(client, {"X-Request-ID": "human-1"})
    assert answer.status_code == 202, answer.text
    doc = answer.json()
    assert (doc["mode"], doc["pending"], doc["request_id"]) == ("human_only", 3, "human-1")
    for p in doc["predictions"]:
        assert set(p) == {"status", "review_id", "poll"}
        assert p["status"] == "pending" and p["poll"] == f"/reviews/{p['review_id']}"
    assert metric(client, "mlcycle_predicted_rows_total") == predicted
    assert metric(client, "mlcycle_batch_rows_count") == batches
    assert metric(client, "mlcycle_automation_rows_total", mode="human_only", outcome="review") == 3
    item = reviewer_item(client, doc["predictions"][1]["review_id"])
    assert (item["state"], item["mode"], item["model_version"], item["row"]) == (
        "pending", "human_only", None, 1,
    )  # fmt: skip
    assert "suggestion" not in item
    assert item["features"] == {"x0": None, "x1": 2.0, "x2": 0.1, "color": "", "size": "L"}


def test_shadow_queues_every_row_and_keeps_the_suggestion_from_reviewers(
    client: httpx.Client, store: Path, expected: list[dict[str, Any]]
) -> None:
    use_mode(client, "shadow")
    answer = predict(client, {"X-Request-ID": "shadow-1"})
    assert answer.status_code == 202, answer.text
    rows = answer.json()["predictions"]
    assert [p["status"] for p in rows] == ["pending"] * 3
    assert not any("label" in p or "probabilities" in p for p in rows)
    item = reviewer_item(client, rows[0]["review_id"])
    assert not {"suggestion", "confidence", "probabilities"} & set(item)
    with sqlite3.connect(store) as conn:
        stored = conn.execute(
            "SELECT row, suggestion FROM reviews WHERE request_id = 'shadow-1' ORDER BY row"
        ).fetchall()
    assert stored == [(i, p["label"]) for i, p in enumerate(expected)]
    # The prediction itself is logged to the monitor as in full mode.
    deadline = time.monotonic() + 15
    while True:
        with sqlite3.connect(store) as conn:
            logged = conn.execute(
                "SELECT row, label FROM predictions WHERE request_id = 'shadow-1' ORDER BY row"
            ).fetchall()
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logged == [(i, p["label"]) for i, p in enumerate(expected)]


def test_assist_shows_reviewers_the_suggestion_and_its_confidence(
    client: httpx.Client, expected: list[dict[str, Any]]
) -> None:
    use_mode(client, "assist")
    answer = predict(client)
    assert answer.status_code == 202, answer.text
    rows = answer.json()["predictions"]
    for p, want in zip(rows, expected, strict=True):
        item = reviewer_item(client, p["review_id"])
        assert item["suggestion"] == want["label"]
        assert item["confidence"] == pytest.approx(max(want["probabilities"].values()))
        assert item["probabilities"] == want["probabilities"]
        assert item["classes"] == ["high", "low", "mid"]


def test_routes_that_cannot_say_pending_answer_409_outside_full_mode(client: httpx.Client) -> None:
    use_mode(client, "assist")
    for path, body in OTHER_ROUTES:
        answer = client.post(path, json=body)
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "automation_mode"
        assert "automation mode 'assist'" in answer.json()["error"]
        assert "use POST /predict" in answer.json()["error"]


def test_a_bad_callback_url_is_400(client: httpx.Client) -> None:
    use_mode(client, "assist")
    answer = predict(client, {"X-Callback-URL": "ftp://example.com/x"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "headers.x-callback-url"
    assert "http:// or https://" in answer.json()["error"]


def test_a_store_that_cannot_be_written_is_503_and_the_server_goes_on(
    client: httpx.Client, store: Path
) -> None:
    use_mode(client, "assist")
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(store, timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(30)
        answer = predict(client, {"X-Request-ID": "locked-1"})  # waits out busy_timeout (5 s)
    finally:
        release.set()
        holder.join(30)
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "review_queue_unavailable"
    assert "nothing was queued" in answer.json()["error"]
    again = predict(client, {"X-Request-ID": "locked-2"})
    assert again.status_code == 202, again.text
    with sqlite3.connect(store) as conn:
        queued = conn.execute("SELECT COUNT(*) FROM reviews WHERE request_id = 'locked-1'")
        assert queued.fetchone() == (0,)


def test_partial_answers_the_confident_rows_and_queues_the_others(
    client: httpx.Client, expected: list[dict[str, Any]]
) -> None:
    tops = sorted(max(p["probabilities"].values()) for p in expected)
    assert tops[1] < tops[2], tops
    threshold = (tops[1] + tops[2]) / 2  # the most confident row is answered
    use_mode(client, "partial", threshold)
    answer = predict(client)
    assert answer.status_code == 202, answer.text
    doc = answer.json()
    assert (doc["mode"], doc["pending"]) == ("partial", 2)
    for p, want in zip(doc["predictions"], expected, strict=True):
        if max(want["probabilities"].values()) >= threshold:
            assert p == {**want, "status": "answered"}
        else:
            assert p["status"] == "pending"
            poll = client.get(p["poll"])
            assert poll.status_code == 200 and poll.json()["state"] == "pending"
    use_mode(client, "partial", 0.0)
    answer = predict(client)
    assert answer.status_code == 200, answer.text
    assert answer.json()["pending"] == 0
    assert [p["status"] for p in answer.json()["predictions"]] == ["answered"] * 3


def test_a_mode_set_through_the_admin_api_reaches_both_workers_within_a_second(
    client: httpx.Client, server: RunningServer
) -> None:
    changed = time.monotonic()
    answer = client.post("/admin/automation", json={"mode": "full"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    _MODE.update(mode="full", threshold=None)
    time.sleep(max(0.0, changed + 1.5 - time.monotonic()))
    for _ in range(16):  # fresh connections: both workers answer some of them
        fresh = httpx.post(f"{server.url}/predict", json={"records": MIXED_ROWS[:1]}, timeout=30)
        assert fresh.status_code == 200 and "mode" not in fresh.json(), fresh.text
        status = httpx.get(f"{server.url}/admin/automation", headers=ADMIN, timeout=30).json()
        assert status["worker"]["mode"] == "full", status


def test_admin_automation_refuses_bad_input(client: httpx.Client) -> None:
    cases = [
        ({"mode": "auto"}, "invalid_mode", "human_only, shadow, assist, partial, full"),
        ({"mode": "partial", "threshold": 1.5}, "invalid_threshold", "[0, 1]"),
        ({"mode": "partial", "threshold": "high"}, "invalid_threshold", "[0, 1]"),
        ({"mode": "partial", "reason": "x"}, "unknown_field", "mode and threshold"),
    ]
    for body, code, text in cases:
        answer = client.post("/admin/automation", json=body, headers=ADMIN)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == code and text in answer.json()["error"]
    assert client.post("/admin/automation", json={"mode": "full"}).status_code == 401
    _MODE.update(mode=None)


# -- start-up and restarts ---------------------------------------------------------------------


def test_a_review_mode_without_a_store_fails_at_start(mixed_bundle: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcycle", "serve", "--model", str(mixed_bundle),
         "--port", str(free_port()), "--no-monitor", "serve.automation.mode=partial"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "serve.automation.mode is 'partial'" in proc.stderr
    assert "monitoring is off" in proc.stderr and "Traceback" not in proc.stderr


def test_queued_rows_survive_kill_9(
    start_server: Callable[..., RunningServer],
    mixed_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLCYCLE_ADMIN_TOKEN", raising=False)
    args = ("--monitor-store", str(tmp_path / "kill.db"), "serve.automation.mode=partial",
            "serve.automation.threshold=1.0")  # fmt: skip
    first = start_server(mixed_bundle, *args)
    ids = []
    for i in range(3):
        answer = httpx.post(f"{first.url}/predict", json={"records": MIXED_ROWS}, timeout=30,
                            headers={"X-Request-ID": f"kill-{i}"})  # fmt: skip
        assert answer.status_code == 202, answer.text
        ids += [p["review_id"] for p in answer.json()["predictions"] if p["status"] == "pending"]
    assert len(ids) >= 6
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(30)
    second = start_server(mixed_bundle, *args)
    for review_id in ids:
        poll = httpx.get(f"{second.url}/reviews/{review_id}", timeout=30)
        assert poll.status_code == 200 and poll.json()["state"] == "pending", poll.text
        # No token on this server: the reviewer API is open.
        decided = httpx.post(
            f"{second.url}/review/api/items/{review_id}",
            json={"action": "label", "label": "low", "reviewer": "ana"},
            timeout=30,
        )
        assert decided.status_code == 200, decided.text
        poll = httpx.get(f"{second.url}/reviews/{review_id}", timeout=30).json()
        assert (poll["state"], poll["label"], poll["decided_by"]) == ("labelled", "low", "ana")
