"""``GET /metrics`` with one worker during a rollout: each arm's monitor process has its
own registry, and the scrape merges them with the server's into one valid exposition."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlcycle.serve.app import _merged_exposition
from tests import _rollout_bundles as rb
from tests.serve.conftest import RunningServer

TOKEN = "metrics-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = rb.cancer_rows(200, seed=3)


@pytest.fixture(scope="module")
def challenger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rb.better_bundle(tmp_path_factory.mktemp("challenger") / "better")


def _families(text: str) -> dict[str, Any]:
    """The exposition's families by name; fails on a family given twice."""
    declared = [line for line in text.splitlines() if line.startswith("# ")]
    repeated = [line for line, n in Counter(declared).items() if n > 1]
    assert not repeated, repeated
    families = list(text_string_to_metric_families(text))
    names = Counter(f.name for f in families)
    assert all(n == 1 for n in names.values()), [k for k, n in names.items() if n > 1]
    samples = Counter(
        (s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples
    )
    assert all(n == 1 for n in samples.values()), [k for k, n in samples.items() if n > 1]
    return {f.name: f for f in families}


def _written(family: Any) -> set[str]:
    """The versions whose monitor has written rows already."""
    return {
        s.labels["model_version"]
        for s in family.samples
        if s.name == "mlcycle_monitor_events_written_total" and s.value > 0
    }


def _versions(family: Any) -> set[str]:
    return {s.labels["model_version"] for s in family.samples if "model_version" in s.labels}


def test_metrics_merge_both_arms_monitors_into_one_exposition(
    start_server: Callable[..., RunningServer],
    cancer_bundle: Path,
    challenger: Path,
    tmp_path: Path,
) -> None:
    server = start_server(
        cancer_bundle,
        "--monitor-store", str(tmp_path / "monitor.db"),
        "serve.rollout.auto=false",
        "serve.monitor.flush_interval=0.1",
        "serve.monitor.window.every=20",
        "serve.monitor.window.min_seconds=0",
        env={"MLCYCLE_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip
    started = httpx.post(
        f"{server.url}/admin/rollout",
        json={"mode": "canary", "challenger": str(challenger), "settings": {"steps": [50, 100]}},
        headers=AUTH,
        timeout=60,
    )
    assert started.status_code == 201, started.text
    rollout = started.json()["rollout"]
    assert rollout["weight"] == 50.0
    versions = {rollout["champion_version"], rollout["challenger_version"]}
    assert len(versions) == 2
    arms: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i, row in enumerate(ROWS):
            answer = client.post(
                "/predict", json={"records": [row]}, headers={"X-Request-ID": f"m-{i}"}
            )
            assert answer.status_code == 200
            arms[answer.headers["x-model-arm"]] += 1
        assert min(arms["champion"], arms["challenger"]) >= 40, arms  # about 50 / 50
        deadline = time.monotonic() + 30
        while True:
            scrape = client.get("/metrics")
            assert scrape.status_code == 200
            assert scrape.headers["content-type"].startswith("text/plain")
            families = _families(scrape.text)
            monitor = families.get("mlcycle_monitor_events_written")
            window = [f for name, f in families.items() if name.startswith("mlcycle_window_")]
            if (
                monitor is not None
                and _versions(monitor) == versions
                and window
                and all(_versions(f) == versions for f in window)
                and _written(monitor) == versions  # each monitor exports once a second
            ):
                break
            assert time.monotonic() < deadline, sorted(families)
            time.sleep(0.3)
    # The server's own families are still there, with every request, by answering version.
    served: dict[str, float] = {}
    for s in families["mlcycle_requests"].samples:
        if s.name == "mlcycle_requests_total" and s.labels.get("route") == "/predict":
            version = s.labels["model_version"]
            served[version] = served.get(version, 0.0) + s.value
    assert sum(served.values()) == len(ROWS)
    assert set(served) == versions and all(v > 0 for v in served.values())
    written = {
        s.labels["model_version"]: s.value
        for s in families["mlcycle_monitor_events_written"].samples
        if s.name == "mlcycle_monitor_events_written_total"
    }
    assert set(written) == versions and all(v > 0 for v in written.values())
    # Both monitors report the server process; it is shown once.
    processes = [
        s for s in families["mlcycle_process_resident_memory_bytes"].samples
        if s.labels.get("role") == "server"
    ]  # fmt: skip
    assert len(processes) == 1


def test_metrics_without_a_rollout_still_show_the_monitor(
    start_server: Callable[..., RunningServer], cancer_bundle: Path, tmp_path: Path
) -> None:
    server = start_server(cancer_bundle, "--monitor-store", str(tmp_path / "monitor.db"))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for row in ROWS[:5]:
            assert client.post("/predict", json={"records": [row]}).status_code == 200
        families = _families(client.get("/metrics").text)
    assert "mlcycle_requests" in families and "mlcycle_monitor_events_written" in families


def test_merging_keeps_each_family_once_and_each_sample_once() -> None:
    server = b"""# HELP a_total A.
# TYPE a_total counter
a_total{model_version="1"} 3.0
"""
    champion = b"""# HELP m Monitor.
# TYPE m gauge
m{model_version="1"} 0.5
m{role="server"} 7.0
# HELP h Histogram.
# TYPE h histogram
h_bucket{model_version="1",le="1.0"} 1.0
h_bucket{model_version="1",le="+Inf"} 2.0
h_count{model_version="1"} 2.0
h_sum{model_version="1"} 1.5
"""
    challenger = champion.replace(b'"1"', b'"2"').replace(b"0.5", b"0.25")
    merged = _merged_exposition([server, champion, challenger]).decode()
    families = _families(merged)
    assert set(families) == {"a", "m", "h"}
    assert [(s.labels, s.value) for s in families["m"].samples] == [
        ({"model_version": "1"}, 0.5),
        ({"role": "server"}, 7.0),
        ({"model_version": "2"}, 0.25),
    ]
    assert _versions(families["h"]) == {"1", "2"} and len(families["h"].samples) == 8
    assert merged.count("# TYPE h histogram") == 1
