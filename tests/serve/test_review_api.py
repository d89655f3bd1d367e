"""The review API of a real server: the caller's poll, the reviewer routes behind their
token, decisions and their conflicts, the feedback and metrics a label leaves, webhooks
delivered to a real receiver (with retries within a round and by the sweeper), and
answers that conform to the OpenAPI document.

One server (assist mode, an admin token and a reviewer token) serves the module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis import checks as schema_checks

from tests._webhook import Receiver
from tests.conftest import free_port
from tests.serve.conftest import RunningServer, _stop, _wait_ready
from tests.serve.test_app import MIXED_ROWS

ADMIN_TOKEN = "review-admin-token"
REVIEWER_TOKEN = "review-reviewer-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REVIEWER = {"Authorization": f"Bearer {REVIEWER_TOKEN}"}
CLASSES = ["high", "low", "mid"]


@pytest.fixture(scope="module")
def default_hook() -> Iterator[Receiver]:
    """The server's serve.automation.webhook (every decision without X-Callback-URL)."""
    receiver = Receiver([200])
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("review-api") / "monitor.db"


@pytest.fixture(scope="module")
def server(mixed_bundle: Path, store: Path, default_hook: Receiver) -> Iterator[RunningServer]:
    folder = store.parent
    token_file = folder / "reviewers.token"
    token_file.write_text(REVIEWER_TOKEN + "\n")
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(mixed_bundle),
             "--port", str(port), "--monitor-store", str(store),
             "serve.automation.mode=assist", f"serve.automation.webhook={default_hook.url}",
             "serve.automation.webhook_retries=1", "serve.automation.webhook_timeout=2",
             f"serve.automation.reviewer_token_file={token_file}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder,
            env={**os.environ, "MLCYCLE_ADMIN_TOKEN": ADMIN_TOKEN}, start_new_session=True,
        )  # fmt: skip
    running = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    _wait_ready(running)
    yield running
    _stop(running)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def queue_rows(client: httpx.Client, request_id: str, **headers: str) -> list[str]:
    """Send MIXED_ROWS (every row waits in assist mode); their review ids."""
    answer = client.post(
        "/predict", json={"records": MIXED_ROWS}, headers={"X-Request-ID": request_id, **headers}
    )
    assert answer.status_code == 202, answer.text
    return [p["review_id"] for p in answer.json()["predictions"]]


def decide(client: httpx.Client, review_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/review/api/items/{review_id}", json=body, headers=REVIEWER)


def pending_ids(client: httpx.Client) -> list[str]:
    answer = client.get("/review/api/items?state=pending&limit=1000", headers=REVIEWER)
    assert answer.status_code == 200, answer.text
    return [i["review_id"] for i in answer.json()["items"]]


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


# -- who may call what ---------------------------------------------------------------------------


def test_the_reviewer_api_needs_the_reviewer_or_the_admin_token(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        answer = client.get("/review/api/items", headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "reviewer token" in answer.json()["error"]
    for headers in (REVIEWER, ADMIN):
        assert client.get("/review/api/items", headers=headers).status_code == 200


def test_the_reviewer_token_does_not_open_the_admin_api(client: httpx.Client) -> None:
    forbidden = client.get("/admin/automation", headers=REVIEWER)
    assert forbidden.status_code == 403, forbidden.text
    assert "needs the admin token" in forbidden.json()["error"]
    assert client.post("/admin/automation", json={"mode": "full"}).status_code == 401
    status = client.get("/admin/automation", headers=ADMIN).json()
    assert (status["mode"], status["source"], status["worker"]["mode"]) == (
        "assist", "config", "assist",
    )  # fmt: skip


def test_callers_poll_without_a_token(client: httpx.Client) -> None:
    review_id = queue_rows(client, "poll-1")[0]
    poll = client.get(f"/reviews/{review_id}")
    assert poll.status_code == 200, poll.text
    assert poll.json() == {
        "review_id": review_id, "request_id": "poll-1", "row": 0, "state": "pending",
        "label": None, "decided_by": None, "decided_at": None,
    }  # fmt: skip
    unknown = client.get("/reviews/rv-00000000000000000000")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_review"


def test_the_review_page_is_html(client: httpx.Client) -> None:
    answer = client.get("/review")
    if importlib.util.find_spec("mlcycle.review.page") is None:
        assert answer.status_code == 404
    else:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")


# -- the queue and decisions ---------------------------------------------------------------------


def test_list_show_next_skip_and_label(client: httpx.Client, store: Path) -> None:
    ids = queue_rows(client, "flow-1")
    others = [i for i in pending_ids(client) if i not in ids]
    listed = client.get("/review/api/items", params={"state": "pending"}, headers=REVIEWER).json()
    assert {"pending", "escalated", "labelled", "total"} <= set(listed["counts"])
    assert set(ids) <= {i["review_id"] for i in listed["items"]}

    shown = client.get(f"/review/api/items/{ids[0]}", headers=REVIEWER).json()
    assert shown["classes"] == CLASSES and shown["mode"] == "assist"
    assert [e["action"] for e in shown["events"]] == ["queued"]
    assert shown["suggestion"] in CLASSES and 0 < shown["confidence"] <= 1

    exclude = ",".join(others)
    first = client.get("/review/api/next", params={"exclude": exclude}, headers=REVIEWER)
    assert first.status_code == 200 and first.json()["review_id"] == ids[0]
    skipped = decide(client, ids[0], action="skip", reviewer="ana", note="later")
    assert skipped.status_code == 200, skipped.text
    assert (skipped.json()["state"], skipped.json()["skips"]) == ("pending", 1)
    nxt = client.get("/review/api/next", params={"exclude": exclude}, headers=REVIEWER)
    assert nxt.json()["review_id"] == ids[1]  # the skipped one went behind

    escalated = decide(client, ids[2], action="escalate", reviewer="ana")
    assert escalated.json()["state"] == "escalated"
    labelled = decide(client, ids[1], action="label", label="low", reviewer="ana")
    assert labelled.status_code == 200, labelled.text
    assert (labelled.json()["state"], labelled.json()["label"]) == ("labelled", "low")
    poll = client.get(f"/reviews/{ids[1]}").json()
    assert (poll["state"], poll["label"], poll["decided_by"]) == ("labelled", "low", "ana")
    with sqlite3.connect(store) as conn:
        fb = conn.execute(
            "SELECT label, source FROM feedback WHERE request_id = 'flow-1' AND row = 1"
        ).fetchall()
    assert fb == [("low", "review")]

    everything = ",".join([*others, *ids])
    empty = client.get("/review/api/next", params={"exclude": everything}, headers=REVIEWER)
    assert empty.status_code == 204 and empty.content == b""


def test_a_second_label_is_409_naming_who_labelled_it(client: httpx.Client) -> None:
    review_id = queue_rows(client, "twice-1")[0]
    assert decide(client, review_id, action="label", label="mid", reviewer="ana").status_code == 200
    again = decide(client, review_id, action="label", label="high", reviewer="bo")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "conflict"
    assert "already labelled 'mid' by ana at " in again.json()["error"]
    assert client.get(f"/reviews/{review_id}").json()["label"] == "mid"


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ({"action": "label", "label": "medium", "reviewer": "ana"}, "invalid_decision",
         "'medium' is not one of the model's classes ('high', 'low', 'mid')"),
        ({"action": "label", "label": "low"}, "missing_reviewer", '"reviewer"'),
        ({"action": "label", "label": "low", "reviewer": "  "}, "missing_reviewer", '"reviewer"'),
        ({"action": "approve", "reviewer": "ana"}, "invalid_decision",
         "label, skip, escalate"),
        ({"action": "label", "label": 3, "reviewer": "ana"}, "wrong_type", "label must be"),
        ({"action": "skip", "reviewer": "ana", "by": "me"}, "unknown_field", "'by'"),
    ],
)  # fmt: skip
def test_a_bad_decision_is_422_and_changes_nothing(
    client: httpx.Client, body: dict[str, Any], code: str, text: str
) -> None:
    review_id = queue_rows(client, f"bad-{code}-{len(body)}-{body.get('reviewer')!r}")[0]
    answer = decide(client, review_id, **body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code and text in answer.json()["error"]
    assert client.get(f"/reviews/{review_id}").json()["state"] == "pending"


def test_bad_requests_to_the_reviewer_api(client: httpx.Client) -> None:
    unknown = decide(client, "rv-00000000000000000000", action="skip", reviewer="ana")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_review"
    raw = client.post(
        "/review/api/items/rv-00000000000000000000", content=b"{nope", headers=REVIEWER
    )
    assert raw.status_code == 400 and raw.json()["code"] == "invalid_json"
    for query, status in (("state=open", 422), ("limit=0", 400), ("offset=x", 400)):
        answer = client.get(f"/review/api/items?{query}", headers=REVIEWER)
        assert answer.status_code == status, (query, answer.text)


def test_labels_count_decisions_and_agreement(client: httpx.Client) -> None:
    ids = queue_rows(client, "agree-1")
    items = [client.get(f"/review/api/items/{i}", headers=REVIEWER).json() for i in ids[:2]]
    before = client.get("/review/api/stats", headers=REVIEWER).json()
    agreed = metric(client, "mlcycle_review_agreement_total", agree="true")
    disagreed = metric(client, "mlcycle_review_agreement_total", agree="false")
    labels = metric(client, "mlcycle_review_decisions_total", action="label")
    same = items[0]["suggestion"]
    other = next(c for c in CLASSES if c != items[1]["suggestion"])
    assert decide(client, ids[0], action="label", label=same, reviewer="ana").status_code == 200
    assert decide(client, ids[1], action="label", label=other, reviewer="ana").status_code == 200
    assert metric(client, "mlcycle_review_agreement_total", agree="true") == agreed + 1
    assert metric(client, "mlcycle_review_agreement_total", agree="false") == disagreed + 1
    assert metric(client, "mlcycle_review_decisions_total", action="label") == labels + 2
    after = client.get("/review/api/stats", headers=REVIEWER).json()
    assert after["agreement"]["compared"] == before["agreement"]["compared"] + 2
    assert after["agreement"]["agreed"] == before["agreement"]["agreed"] + 1
    assert after["by_mode"]["assist"]["rows"]["automatic"] == 0
    assert after["automation_rate"] == 0.0


# -- webhooks ------------------------------------------------------------------------------------


def test_a_decision_is_posted_to_the_default_webhook(
    client: httpx.Client, default_hook: Receiver
) -> None:
    review_id = queue_rows(client, "hook-1")[0]
    assert decide(client, review_id, action="skip", reviewer="ana").status_code == 200
    labelled = decide(client, review_id, action="label", label="high", reviewer="ana")
    assert labelled.status_code == 200

    def delivered() -> list[dict[str, Any]]:
        return [b for b in default_hook.bodies if b["review_id"] == review_id]

    bodies = wait_for(delivered)
    assert bodies, "the webhook never arrived"
    assert bodies[0] == {
        "review_id": review_id, "request_id": "hook-1", "row": 0, "state": "labelled",
        "label": "high", "decided_by": "ana", "decided_at": labelled.json()["decided_at"],
    }  # fmt: skip


def test_a_failed_attempt_is_retried_within_the_round(client: httpx.Client) -> None:
    hook = Receiver([500, 200])
    try:
        review_id = queue_rows(client, "retry-1", **{"X-Callback-URL": hook.url})[2]
        assert (
            decide(client, review_id, action="label", label="mid", reviewer="ana").status_code
            == 200
        )
        assert wait_for(lambda: hook.bodies), "the webhook never arrived"
        assert hook.bodies[0]["review_id"] == review_id and hook.attempts == 2

        def notified() -> list[dict[str, Any]]:
            item = client.get(f"/review/api/items/{review_id}", headers=REVIEWER).json()
            return [e for e in item["events"] if e["action"] == "notified"]

        events = wait_for(notified)
        assert events and "after 2 attempt(s) in round 1" in events[0]["note"]
    finally:
        hook.close()


def test_an_undelivered_decision_is_delivered_by_the_sweeper(client: httpx.Client) -> None:
    hook = Receiver([503, 503, 200])  # a whole round fails (webhook_retries=1): 2 attempts
    try:
        review_id = queue_rows(client, "sweep-1", **{"X-Callback-URL": hook.url})[1]
        answer = decide(client, review_id, action="label", label="low", reviewer="bo")
        assert answer.status_code == 200
        assert wait_for(lambda: hook.bodies, timeout=30), "the sweeper never delivered it"
        assert hook.bodies[0]["review_id"] == review_id and hook.attempts == 3
        item = client.get(f"/review/api/items/{review_id}", headers=REVIEWER).json()
        actions = [e["action"] for e in item["events"]]
        assert actions == ["queued", "label", "notify_failed", "notified"]
        assert "next round in 5 s" in item["events"][2]["note"]
    finally:
        hook.close()


# -- the document --------------------------------------------------------------------------------

_SETTINGS = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=12,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CHECKS = [
    schema_checks.not_a_server_error,
    schema_checks.status_code_conformance,
    schema_checks.content_type_conformance,
    schema_checks.response_schema_conformance,
]
REVIEW_OPERATIONS = [
    ("GET", "/reviews/{review_id}"),
    ("GET", "/review"),
    ("GET", "/review/api/items"),
    ("GET", "/review/api/items/{review_id}"),
    ("POST", "/review/api/items/{review_id}"),
    ("GET", "/review/api/next"),
    ("GET", "/review/api/stats"),
]

# The operations a request can break the document of (a body, or typed query parameters).
VIOLABLE = [
    ("POST", "/review/api/items/{review_id}"),
    ("GET", "/review/api/items"),
    ("GET", "/review/api/stats"),
]


@pytest.fixture(scope="module")
def api_schema(server: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_every_review_route_is_documented(api_schema: Any) -> None:
    documented = {
        (method.upper(), path)
        for path, item in api_schema.raw_schema["paths"].items()
        if path.startswith(("/review", "/reviews/"))
        for method in item
    }
    assert documented == set(REVIEW_OPERATIONS)
    pending = api_schema.raw_schema["paths"]["/predict"]["post"]["responses"]["202"]
    assert "PendingPrediction" in str(pending)


CONFORMANCE = [(m, p, GenerationMode.POSITIVE) for m, p in REVIEW_OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in VIOLABLE
]


@pytest.mark.parametrize(
    ("method", "path", "mode"), CONFORMANCE, ids=[f"{g.value} {m} {p}" for m, p, g in CONFORMANCE]
)
def test_review_answers_conform_to_the_document(
    api_schema: Any, server: RunningServer, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    strategy = operation.as_strategy(mode)
    negative = mode == GenerationMode.NEGATIVE
    checks = [*CHECKS, schema_checks.negative_data_rejection] if negative else CHECKS
    with requests.Session() as session:

        @hypothesis.given(case=strategy)
        @_SETTINGS
        def run(case: Any) -> None:
            case.call_and_validate(session=session, headers=REVIEWER, checks=checks)

        run()
    assert server.process.poll() is None
    assert "unexpected error" not in server.output()


# -- mlcycle automation ----------------------------------------------------------------------------


def test_the_cli_shows_and_sets_the_mode(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlcycle.review.commands import automation_command
    from mlcycle.rollout.client import RolloutClientError

    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN)
    where = ["--url", server.url, "--token-file", str(token)]
    automation_command(["status", *where])
    assert capsys.readouterr().out.startswith("automation mode assist (from the config")
    automation_command(["set", "--mode", "assist", "--threshold", "0.75", *where])
    out = capsys.readouterr().out
    assert out.startswith("automation mode assist (set by ") and "revision 1" in out
    automation_command(["status", "--json", *where])
    doc = json.loads(capsys.readouterr().out)
    assert (doc["mode"], doc["threshold"], doc["source"]) == ("assist", 0.75, "store")
    with pytest.raises(SystemExit) as bad:
        automation_command(["set", "--mode", "auto", *where])
    assert bad.value.code == 2
    assert "invalid choice: 'auto'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        automation_command(["set", "--mode", "partial", "--threshold", "2", *where])
    assert "not a number from 0 to 1" in capsys.readouterr().err
    token.write_text(REVIEWER_TOKEN)
    with pytest.raises(RolloutClientError, match=r"reviewers. token; .* needs the admin token"):
        automation_command(["status", *where])
