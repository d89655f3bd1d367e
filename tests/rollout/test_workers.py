"""Every worker of a server follows the rollout: weights, promotion, reload."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.rollout.test_simulations import ENV, TOKEN, Traffic, admin, call
from tests.serve.conftest import RunningServer


@pytest.fixture()
def two_workers(
    start_server: Callable[..., RunningServer], cancer_bundle: Path, tmp_path: Path
) -> RunningServer:
    return start_server(
        cancer_bundle,
        "--workers",
        "2",
        "--monitor-store",
        str(tmp_path / "m.db"),
        "serve.rollout.interval=0.2",
        "serve.rollout.auto=false",
        env=ENV,
    )


def _views(server: RunningServer, n: int = 16) -> list[dict[str, Any]]:
    """What ``n`` fresh connections (spread over the workers by the kernel) report."""
    views = []
    for _ in range(n):
        status, _, body = call(
            f"{server.url}/admin/rollout", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200, body
        views.append(body)
    return views


def _until_all(server: RunningServer, ok: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(ok(v) for v in _views(server)):
            return
        time.sleep(0.2)
    pytest.fail(f"the workers did not agree: {[v['routing'] for v in _views(server)]}")


def test_both_workers_follow_the_canary_and_its_promotion(
    two_workers: RunningServer, cancer_bundle: Path, tmp_path: Path
) -> None:
    challenger = tmp_path / "challenger"
    shutil.copytree(cancer_bundle, challenger)
    r = admin(
        two_workers,
        "rollout",
        {"mode": "canary", "challenger": str(challenger), "settings": {"steps": [50, 100]}},
    )["rollout"]
    _until_all(two_workers, lambda v: v["routing"]["revision"] == r["revision"])
    assert all(v["routing"]["weight"] == 50 for v in _views(two_workers))
    traffic = Traffic(two_workers, "workers")
    traffic.send(200)
    assert traffic.failed == 0
    assert 60 <= traffic.arms.get("challenger", 0) <= 140
    promoted = admin(two_workers, "rollout/promote", {"reason": "by hand"})["rollout"]
    assert promoted["state"] == "promoted"
    _until_all(
        two_workers,
        lambda v: (
            list(v["arms"]) == ["champion"] and v["arms"]["champion"]["bundle"] == str(challenger)
        ),
    )
    traffic.send(40)
    assert traffic.failed == 0
    assert all(arm == "champion" for _, _, arm in traffic.answers[-40:])


def test_reload_loads_the_bundle_again_but_not_during_a_rollout(
    start_server: Callable[..., RunningServer], cancer_bundle: Path, tmp_path: Path
) -> None:
    server = start_server(
        cancer_bundle, "--monitor-store", str(tmp_path / "m.db"), "serve.rollout.auto=false",
        env=ENV,
    )  # fmt: skip
    doc = admin(server, "reload", {})
    assert doc["bundle"] == str(cancer_bundle) and doc["version"]
    challenger = tmp_path / "challenger"
    shutil.copytree(cancer_bundle, challenger)
    admin(server, "rollout", {"mode": "canary", "challenger": str(challenger)})
    status, _, body = call(
        f"{server.url}/admin/reload", "POST", {}, {"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 409 and body["code"] == "rollout_running"
    traffic = Traffic(server, "reload")
    traffic.send(30)
    assert traffic.failed == 0
