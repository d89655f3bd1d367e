"""``POST /admin/feedback``: a CSV of true labels through the admin API, stored as
``mlcycle feedback import`` stores a file, against a real server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcycle.monitor.log_batches import expand_batches
from mlcycle.monitor.store import connect
from tests.conftest import free_port
from tests.serve.conftest import RunningServer, _stop, _wait_ready
from tests.serve.test_app import MIXED_ROWS

TOKEN = "feedback-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CSV = {"Content-Type": "text/csv"}
LIMIT = 4096  # serve.validation.max_body_bytes of the module's server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin-feedback") / "monitor.db"


@pytest.fixture(scope="module")
def server(mixed_bundle: Path, store: Path) -> Iterator[RunningServer]:
    """A mixed-bundle server with an admin token and a small body limit."""
    folder = store.parent
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(mixed_bundle),
             "--port", str(port), "--monitor-store", str(store),
             f"serve.validation.max_body_bytes={LIMIT}", "serve.monitor.flush_interval=0.1",
             "serve.monitor.expand_after=0"],
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


def predict(client: httpx.Client, rid: str) -> list[str]:
    """Predict the three mixed rows under ``rid``; their labels."""
    answer = client.post("/predict", json={"records": MIXED_ROWS}, headers={"X-Request-ID": rid})
    assert answer.status_code == 200, answer.text
    return [p["label"] for p in answer.json()["predictions"]]


def other(label: str) -> str:
    return next(c for c in ("high", "low", "mid") if c != label)


def post(client: httpx.Client, body: str | bytes, query: str = "", **headers: str) -> Any:
    return client.post(
        f"/admin/feedback{query}",
        content=body.encode() if isinstance(body, str) else body,
        headers={**AUTH, **CSV, **{k.replace("_", "-"): v for k, v in headers.items()}},
    )


def test_a_csv_import_is_stored_and_joins_the_predictions(
    client: httpx.Client, store: Path
) -> None:
    labels = predict(client, "join-1")
    # Right away: the import waits for the monitor to write the predictions it holds.
    body = "request_id,row,label,comment\n" + "".join(
        f"join-1,{row},{label},ok\n" for row, label in enumerate(labels)
    )
    answer = post(client, body, X_Admin_User="ana")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "stored": 3, "replaced": 0, "unchanged": 0, "rejected": 0, "problems": [],
    }  # fmt: skip
    expand_batches(connect(store))  # for this test's own SQL (mlcycle reads batches as they are)
    with sqlite3.connect(store) as conn:
        joined = conn.execute(
            "SELECT p.row, p.label, f.label, f.source FROM predictions p JOIN feedback f "
            "ON p.request_id = f.request_id AND p.row = f.row WHERE p.request_id = 'join-1' "
            "ORDER BY p.row"
        ).fetchall()
    assert joined == [(i, label, label, "import:ana") for i, label in enumerate(labels)]
    # The same file again changes nothing; the monitor counted the labels once.
    again = post(client, body)
    assert again.status_code == 200 and again.json()["unchanged"] == 3
    deadline = time.monotonic() + 20
    while True:
        text = client.get("/metrics").text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("mlcycle_feedback_total")
        )
        if counted >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counted == 3


def test_a_different_label_is_a_409_unless_overwrite(client: httpx.Client, store: Path) -> None:
    labels = predict(client, "dup-1")
    assert post(client, f"request_id,label\ndup-1,{labels[0]}\n").status_code == 200
    changed = f"request_id,label\ndup-1,{other(labels[0])}\n"
    refused = post(client, changed)
    assert refused.status_code == 409, refused.text
    doc = refused.json()
    assert doc["code"] == "duplicate_feedback" and "nothing stored" in doc["error"]
    assert [(p["code"], p["line"], p["request_id"]) for p in doc["problems"]] == [
        ("duplicate", 2, "dup-1")
    ]
    replaced = post(client, changed, "?overwrite=true")
    assert replaced.status_code == 200 and replaced.json()["replaced"] == 1
    with sqlite3.connect(store) as conn:
        stored = conn.execute(
            "SELECT label, previous_label FROM feedback WHERE request_id = 'dup-1' AND row = 0"
        ).fetchone()
    assert stored == (other(labels[0]), labels[0])


def test_unknown_predictions_and_labels_refuse_the_file_or_are_skipped(
    client: httpx.Client, store: Path
) -> None:
    labels = predict(client, "skip-1")
    body = (
        "request_id,row,label\n"
        f"skip-1,0,{labels[0]}\n"
        f"never-predicted,0,{labels[0]}\n"
        "skip-1,1,purple\n"
    )
    refused = post(client, body)
    assert refused.status_code == 422, refused.text  # 422 comes before 404
    doc = refused.json()
    assert doc["code"] == "unknown_label"
    assert {(p["code"], p["line"]) for p in doc["problems"]} == {
        ("unknown_prediction", 3),
        ("unknown_label", 4),
    }
    with sqlite3.connect(store) as conn:  # nothing of a refused file is stored
        assert (
            conn.execute("SELECT count(*) FROM feedback WHERE request_id = 'skip-1'").fetchone()[0]
            == 0
        )
    unknown = post(client, f"request_id,label\nnever-predicted,{labels[0]}\n")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_prediction"
    skipped = post(client, body, "?skip_invalid=true")
    assert skipped.status_code == 200, skipped.text
    result = skipped.json()
    assert (result["stored"], result["rejected"]) == (1, 2)
    assert [p["line"] for p in result["problems"]] == [3, 4]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("", "is empty"),
        ("request_id,row\nabc,0\n", "lacks the column(s) label"),
        ("request_id,label\n", "has a header but no rows"),
        (b"request_id,label\n\xff\xfe,low\n", "not UTF-8"),
    ],
)
def test_a_malformed_csv_is_a_400(client: httpx.Client, body: str | bytes, needle: str) -> None:
    answer = post(client, body)
    assert answer.status_code == 400, answer.text
    doc = answer.json()
    assert doc["code"] in ("invalid_csv", "invalid_feedback") and needle in doc["error"], doc


def test_a_bad_row_is_a_400_naming_its_line(client: httpx.Client) -> None:
    answer = post(client, "request_id,row,label\nabc,-1,low\n")
    assert answer.status_code == 400, answer.text
    doc = answer.json()
    assert doc["code"] == "invalid_feedback"
    assert doc["problems"][0]["line"] == 2 and "row" in doc["problems"][0]["message"]


def test_the_request_itself_is_checked(client: httpx.Client) -> None:
    json_body = client.post(
        "/admin/feedback", json=[{"request_id": "a", "label": "low"}], headers=AUTH
    )
    assert json_body.status_code == 415 and json_body.json()["code"] == "unsupported_media_type"
    compressed = post(client, "request_id,label\n", Content_Encoding="gzip")
    assert compressed.status_code == 415
    big = "request_id,label\n" + ("x" * 40 + ",low\n") * 200
    assert len(big) > LIMIT
    too_large = post(client, big)
    assert too_large.status_code == 413 and too_large.json()["code"] == "body_too_large"
    chunked = client.post(  # no Content-Length: counted while read
        "/admin/feedback", content=iter([big[:2000].encode(), big[2000:].encode()]),
        headers={**AUTH, **CSV},
    )  # fmt: skip
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and chunked.json()["code"] == "body_too_large"
    flag = post(client, "request_id,label\na,low\n", "?overwrite=maybe")
    assert flag.status_code == 400 and flag.json()["code"] == "invalid_query"
    charset = post(client, "request_id,label\n", Content_Type="text/csv; charset=utf-8")
    assert charset.status_code == 400  # taken (no rows), not refused as a media type


def test_the_token_is_required(client: httpx.Client, server: RunningServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = client.post(
            "/admin/feedback", content=b"request_id,label\na,low\n", headers={**CSV, **headers}
        )
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "refused POST /admin/feedback" in server.output()


def test_without_monitoring_or_token(
    start_server: Callable[..., RunningServer],
    mixed_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off = start_server(mixed_bundle, "--no-monitor", env={"MLCYCLE_ADMIN_TOKEN": TOKEN})
    answer = httpx.post(
        f"{off.url}/admin/feedback", content=b"request_id,label\na,low\n", headers={**AUTH, **CSV}
    )
    assert answer.status_code == 503 and answer.json()["code"] == "monitoring_off"
    monkeypatch.delenv("MLCYCLE_ADMIN_TOKEN", raising=False)
    closed = start_server(mixed_bundle, "--no-monitor")
    answer = httpx.post(
        f"{closed.url}/admin/feedback",
        content=b"request_id,label\na,low\n",
        headers={**AUTH, **CSV},
    )
    assert answer.status_code == 403 and answer.json()["code"] == "admin_disabled"


def test_text_and_file_imports_give_the_same_result(tmp_path: Path) -> None:
    """``import_feedback_text`` (the route's) and ``import_feedback_csv`` (the command's)
    check and store a CSV the same way."""
    from mlcycle.monitor.feedback import import_feedback_csv, import_feedback_text
    from mlcycle.monitor.store import connect
    from tests.monitor.test_feedback import CLASSES, log_predictions, stored

    text = "\ufeffrequest_id,label,row\nr1,yes,0\nr2,yes,\nnope,no,0\nr4,no,x\nr5,maybe,0\n"
    results = []
    for name in ("file", "text"):
        engine = connect(tmp_path / f"{name}.db")
        log_predictions(engine, 10)
        if name == "file":
            path = tmp_path / "labels.csv"
            path.write_text(text, encoding="utf-8")
            result = import_feedback_csv(engine, path, classes=CLASSES, skip_invalid=True, now=1.0)
        else:
            result = import_feedback_text(
                engine,
                text,
                classes=CLASSES,
                skip_invalid=True,
                now=1.0,
                source="import:labels.csv",
            )
        results.append((result.to_dict(), stored(engine)))
        engine.dispose()
    assert results[0] == results[1]
    assert [(p["line"], p["code"]) for p in results[1][0]["problems"]] == [
        (4, "unknown_prediction"), (5, "invalid"), (6, "unknown_label"),
    ]  # fmt: skip
