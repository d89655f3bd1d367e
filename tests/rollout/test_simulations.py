"""Rollouts simulated through a real server: bad challengers roll back, good ones promote.

Each test starts ``mlcycle serve`` on the breast-cancer champion with a small bake window,
starts a rollout through the admin API, and sends one-row requests (each with its own
request id, so its own routing bucket) until the rollout finishes. The numbers each
simulation needs until its rollback are printed (``pytest -s``) for the docs.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import _rollout_bundles as rb
from tests.serve.conftest import RunningServer

TOKEN = "test-admin-token"
ENV = {"MLCYCLE_ADMIN_TOKEN": TOKEN}
FAST = (
    "serve.rollout.bake.min_requests=60",
    "serve.rollout.bake.min_seconds=0.5",
    "serve.rollout.interval=0.2",
    "serve.rollout.steps=[10,50,100]",
    "serve.monitor.flush_interval=0.1",
)
ROWS = rb.cancer_rows(600, seed=1)
LABELS = rb.cancer_labels(600, seed=1)


def call(
    url: str, method: str = "GET", doc: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one request."""
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(url, data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def admin(server: RunningServer, path: str, doc: Any = None, method: str = "POST") -> Any:
    status, _, body = call(
        f"{server.url}/admin/{path}", method, doc, {"Authorization": f"Bearer {TOKEN}"}
    )
    assert status < 300, (status, body)
    return body


def rollout(server: RunningServer) -> dict[str, Any]:
    doc: dict[str, Any] = admin(server, "rollout", method="GET")["rollout"]
    return doc


class Traffic:
    """One-row requests to a server, counted by arm and outcome."""

    def __init__(self, server: RunningServer, tag: str) -> None:
        self.server = server
        self.tag = tag
        self.sent = 0
        self.failed = 0
        self.arms: dict[str, int] = {}
        self.answers: list[tuple[str, dict[str, Any], str]] = []

    def send(self, n: int, *, feedback: bool = False) -> None:
        items = []
        for _ in range(n):
            i = self.sent % len(ROWS)
            rid = f"{self.tag}-{self.sent}"
            status, headers, body = call(
                f"{self.server.url}/predict",
                "POST",
                {"records": [ROWS[i]]},
                {"X-Request-ID": rid},
            )
            self.sent += 1
            if status != 200:
                self.failed += 1
                continue
            arm = headers.get("x-model-arm", headers.get("X-Model-Arm", "?"))
            self.arms[arm] = self.arms.get(arm, 0) + 1
            self.answers.append((rid, body["predictions"][0], arm))
            items.append({"request_id": rid, "label": LABELS[i]})
        if feedback and items:
            status, _, body = call(f"{self.server.url}/feedback", "POST", items)
            assert status == 200, body

    def until(
        self, done: Callable[[dict[str, Any]], bool], *, limit: int = 4000, feedback: bool = False
    ) -> tuple[dict[str, Any], int, float]:
        """Send in rounds of 20 until ``done(rollout)``: (rollout, requests, seconds)."""
        start, sent = time.monotonic(), self.sent
        while self.sent - sent < limit:
            self.send(20, feedback=feedback)
            r = rollout(self.server)
            if done(r):
                return r, self.sent - sent, time.monotonic() - start
        pytest.fail(f"the rollout did not finish within {limit} requests: {rollout(self.server)}")


def start(server: RunningServer, mode: str, bundle: Path, **settings: Any) -> dict[str, Any]:
    body = admin(server, "rollout", {"mode": mode, "challenger": str(bundle), "settings": settings})
    doc: dict[str, Any] = body["rollout"]
    return doc


def finished(r: dict[str, Any]) -> bool:
    return r["state"] in ("promoted", "rolled_back", "completed")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("challengers")
    from tests._bundles import build_bundle

    return {
        "champion": build_bundle("cancer", root / "champion"),
        "faulty": rb.faulty_bundle(root / "faulty", share=0.3),
        "slow": rb.slow_bundle(root / "slow", extra_ms=4.0),
        "inaccurate": rb.inaccurate_bundle(root / "inaccurate"),
        "better": rb.better_bundle(root / "better"),
        "mixed": build_bundle("mixed", root / "mixed"),
    }


@pytest.fixture()
def serve(
    start_server: Callable[..., RunningServer], bundles: dict[str, Path], tmp_path: Path
) -> Callable[..., RunningServer]:
    def run(*extra: str, store: str | None = None) -> RunningServer:
        return start_server(
            bundles["champion"],
            "--monitor-store",
            store or str(tmp_path / "monitor.db"),
            *FAST,
            *extra,
            env=ENV,
        )

    return run


def _report(name: str, r: dict[str, Any], requests: int, seconds: float) -> None:
    print(f"\n{name}: {r['state']} after {requests} requests, {seconds:.1f} s")


def test_a_challenger_with_more_errors_is_rolled_back(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    traffic = Traffic(server, "errors")
    traffic.send(100)  # the champion's baseline
    start(server, "canary", bundles["faulty"], steps=[50, 100])
    r, requests, seconds = traffic.until(finished)
    _report("error rate", r, requests, seconds)
    assert r["state"] == "rolled_back"
    history = admin(server, "rollout/history", method="GET")["events"]
    assert history[0]["action"] == "rollback" and "error_rate failed" in history[0]["reason"]
    assert history[0]["who"] == "analysis" and history[0]["metrics"]["action"] == "rollback"
    assert traffic.failed == 0
    traffic.send(40)  # after the rollback only the champion answers
    assert rollout(server)["weight"] == 0
    assert all(arm == "champion" for _, _, arm in traffic.answers[-40:])


def test_a_slower_challenger_is_rolled_back(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    traffic = Traffic(server, "slow")
    traffic.send(100)
    start(server, "canary", bundles["slow"], steps=[50, 100])
    r, requests, seconds = traffic.until(finished)
    _report("latency", r, requests, seconds)
    assert r["state"] == "rolled_back"
    reason = admin(server, "rollout/history", method="GET")["events"][0]["reason"]
    assert "latency failed" in reason, reason
    assert traffic.failed == 0


def test_a_less_accurate_challenger_is_rolled_back_on_feedback_labels(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    traffic = Traffic(server, "accuracy")
    traffic.send(100, feedback=True)
    start(server, "canary", bundles["inaccurate"], steps=[50, 100])
    r, requests, seconds = traffic.until(finished, feedback=True)
    _report("accuracy", r, requests, seconds)
    assert r["state"] == "rolled_back"
    reason = admin(server, "rollout/history", method="GET")["events"][0]["reason"]
    assert "accuracy failed" in reason
    assert traffic.failed == 0


def test_an_equivalent_challenger_is_promoted_through_every_canary_step(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    traffic = Traffic(server, "better")
    traffic.send(100, feedback=True)
    start(server, "canary", bundles["better"])
    r, requests, seconds = traffic.until(finished, feedback=True)
    _report("promotion", r, requests, seconds)
    events = admin(server, "rollout/history", method="GET")["events"]
    assert r["state"] == "promoted", [(e["action"], e["reason"]) for e in events]
    events = admin(server, "rollout/history", method="GET")["events"]
    walk = [(e["action"], e["to_weight"]) for e in reversed(events)]
    assert walk == [("start", 10), ("step", 50), ("step", 100), ("promote", 100)]
    assert traffic.failed == 0
    # The challenger is the champion now: it answers everything, as the champion arm.
    traffic.send(20)
    status = admin(server, "rollout", method="GET")
    assert list(status["arms"]) == ["champion"]
    assert status["arms"]["champion"]["version"] == r["challenger_version"]
    assert all(arm == "champion" for _, _, arm in traffic.answers[-20:])


def test_shadow_never_changes_what_the_caller_receives(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    before = Traffic(server, "before")
    before.send(150)
    start(server, "shadow", bundles["inaccurate"], after_shadow="stop")
    during = Traffic(server, "during")
    r, _, _ = during.until(finished)
    assert r["state"] == "rolled_back"  # the shadow disagrees with the champion
    reason = admin(server, "rollout/history", method="GET")["events"][0]["reason"]
    assert "disagreement failed" in reason, reason
    assert set(during.arms) == {"champion"} and during.failed == 0
    # Both sent ROWS in order from the first: the same rows got the same answers.
    compared = min(len(before.answers), len(during.answers))
    assert compared >= 100
    for (_, then, _), (_, now, _) in zip(before.answers, during.answers[:compared], strict=False):
        assert now == then


def test_a_signature_mismatch_refuses_the_rollout_before_any_traffic_moves(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    status, _, body = call(
        f"{server.url}/admin/rollout",
        "POST",
        {"mode": "canary", "challenger": str(bundles["mixed"])},
        {"Authorization": f"Bearer {TOKEN}"},
    )
    assert status == 422 and "features differ" in body["error"], body
    assert rollout(server) is None
    traffic = Traffic(server, "mismatch")
    traffic.send(30)
    assert traffic.arms == {"champion": 30}


def test_admin_endpoints_need_the_token_and_are_off_without_one(
    start_server: Callable[..., RunningServer],
    serve: Callable[..., RunningServer],
    bundles: dict[str, Path],
    tmp_path: Path,
) -> None:
    server = serve()
    status, headers, body = call(f"{server.url}/admin/rollout")
    assert status == 401 and "Bearer" in headers.get("www-authenticate", "")
    status, _, _ = call(f"{server.url}/admin/rollout", headers={"Authorization": "Bearer no"})
    assert status == 401
    assert "refused GET /admin/rollout" in server.output()
    env = {k: v for k, v in os.environ.items() if k != "MLCYCLE_ADMIN_TOKEN"}
    os.environ.pop("MLCYCLE_ADMIN_TOKEN", None)
    try:
        closed = start_server(bundles["champion"], "--monitor-store", str(tmp_path / "o.db"))
    finally:
        os.environ.clear()
        os.environ.update(env)
    status, _, body = call(
        f"{closed.url}/admin/rollout", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 403 and body["code"] == "admin_disabled"


def test_a_killed_server_resumes_the_same_canary_step(
    serve: Callable[..., RunningServer], bundles: dict[str, Path], tmp_path: Path
) -> None:
    store = str(tmp_path / "resume.db")
    server = serve("serve.rollout.auto=false", store=store)
    start(server, "canary", bundles["better"])
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    again = serve("serve.rollout.auto=false", store=store)
    r = rollout(again)
    assert (r["state"], r["weight"], r["step"]) == ("running", 10.0, 0)
    traffic = Traffic(again, "after")
    traffic.send(200)
    assert traffic.failed == 0
    assert 5 <= traffic.arms.get("challenger", 0) <= 40  # about 10 % of 200
    status = admin(again, "rollout", method="GET")
    assert status["arms"]["challenger"]["bundle"] == str(bundles["better"])


def test_two_servers_on_postgresql_agree_on_weights_and_steps(
    serve: Callable[..., RunningServer], bundles: dict[str, Path], postgres_url: str
) -> None:
    a = serve("serve.rollout.auto=false", store=postgres_url)
    b = serve("serve.rollout.auto=false", store=postgres_url)
    start(a, "canary", bundles["better"])
    admin(b, "rollout/pause", {"reason": "look"})
    admin(a, "rollout/resume", {"reason": "go on"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sa, sb = admin(a, "rollout", method="GET"), admin(b, "rollout", method="GET")
        if sa["routing"] == sb["routing"] and sa["routing"]["revision"] == 3:
            break
        time.sleep(0.2)
    assert sa["routing"] == sb["routing"] and sa["routing"]["weight"] == 10.0
    ta, tb = Traffic(a, "pg-a"), Traffic(b, "pg-b")
    ta.send(100)
    tb.send(100)
    # The same request ids on both servers go to the same arm (the routing is shared).
    same = Traffic(a, "pg-b")
    same.send(100)
    assert [arm for _, _, arm in same.answers] == [arm for _, _, arm in tb.answers]
    assert ta.failed == tb.failed == 0


def test_bluegreen_switches_at_once_and_rolls_back_a_bad_challenger_instantly(
    serve: Callable[..., RunningServer], bundles: dict[str, Path]
) -> None:
    server = serve()
    traffic = Traffic(server, "bluegreen")
    traffic.send(100)  # the champion's baseline, from before the switch
    r = start(server, "bluegreen", bundles["faulty"])
    assert (r["phase"], r["weight"]) == ("bluegreen", 100.0)
    status = admin(server, "rollout", method="GET")
    assert set(status["arms"]) == {"champion", "challenger"}  # the champion stays loaded
    r, requests, seconds = traffic.until(finished)
    _report("bluegreen error rate", r, requests, seconds)
    assert r["state"] == "rolled_back" and traffic.failed == 0
    assert all(arm == "challenger" for _, _, arm in traffic.answers[100 : 100 + requests // 2])
    traffic.send(20)
    assert all(arm == "champion" for _, _, arm in traffic.answers[-20:])
