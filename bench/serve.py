"""Benchmark: ``mlcycle serve`` against a minimal FastAPI server and in-process onnxruntime.

In one run, on this machine, so the ratios are fair on a shared machine:

1. trains a histogram gradient boosting model (breast cancer, 30 numeric features,
   ``max_iter=100``) and exports its bundle into a temporary folder;
2. starts, one at a time, **mlcycle** (``python -m mlcycle serve``) and the **reference**
   (``bench/reference_server.py``: FastAPI + onnxruntime, run with ``python -m uvicorn``
   and its defaults), each with 1 and 2 worker processes, timing each from process start
   to its first ready answer (``GET /v2/health/ready``) and checking that its predictions
   match in-process ones;
3. loads ``POST /predict`` on 127.0.0.1, one server at a time, interleaving the servers
   for each kind of load so both sides of a ratio are measured close together: one-row
   bodies at concurrency 1 (``wrk -t1 -c1``) and 32 (``-t2 -c32``), 512-row bodies at
   concurrency 1 and 4; it records requests/s, raw p50/p99 latency and the server's CPU
   time per request (user + system over its process tree, from psutil: the least noisy
   figure on a shared machine); then reads each server's resident memory (VmRSS);
4. **in-process**: ``Bundle.load(..., intra_op_threads=1).predict`` on 512-row and
   one-row arrays (the ceiling); mlcycle's request work outside HTTP (decode and validate,
   predict, encode) on a one-row body; and both ASGI apps called directly, without
   sockets or an HTTP parser.

Latency percentiles are raw (each request's own time), not wrk's coordinated-omission
corrected ones (see ``bench/_load.py``); without wrk an asyncio client is used.

Prints a markdown table and the ratios against the serving targets: one-row throughput
at c=32 >= 1.5x the reference with as many workers, p99 at c=32 < 20 ms, and 512-row
rows/s >= 50 % of in-process rows/s.

Run: ``.venv/bin/python bench/serve.py`` (about 2.5 minutes: 3 s per measurement, two
interleaved rounds, medians), ``--quick`` for a smoke run (1 s, one round), ``--json PATH``
to save the results, ``--configs mlcycle-1,...`` for a subset (``reference_quiet-N``: the
reference without uvicorn's access log), ``--loads c32,...`` for some of the loads (many
rounds of one: ``--loads c32 --rounds 30 --duration 2``). Each round measures the servers
in the other order than the round before.

Two processes of one configuration stay a few percent apart for their whole life (their
memory layout), so one process per configuration lets that luck decide a 5 % ratio.
``--processes K`` measures K sets of fresh server processes in turn, each for
``--rounds``: a ratio is then the mean over the sets of each set's median per-round ratio,
and its interval resamples sets, then rounds within them. ``mlcycle_twin-N`` is a second
``--no-monitor`` server: its ratio to ``mlcycle_nomon-N`` is the noise floor of the run.
For monitoring on vs off: ``--configs mlcycle-1,mlcycle_nomon-1,mlcycle_twin-1 --loads
c32,b512_c1 --processes 6 --rounds 4 --duration 2 --warmup 2``; for monitoring's CPU time
per request at a fixed rate, less noisy still, see ``bench/monitor_cpu.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psutil
from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._load import LoadResult, run_load, wrk_path  # noqa: E402

from mlcycle.bundle import Bundle  # noqa: E402
from mlcycle.config.structured import GBDTConfig, TrainConfig  # noqa: E402
from mlcycle.data.dataset import Dataset, DataVersion  # noqa: E402
from mlcycle.data.schema import FeatureSpec, Schema  # noqa: E402
from mlcycle.export.bundle import make_signature, write_bundle  # noqa: E402
from mlcycle.export.onnx import to_onnx  # noqa: E402
from mlcycle.export.parity import check_parity  # noqa: E402
from mlcycle.export.profile import build_profile  # noqa: E402
from mlcycle.monitor.process import PROCESS_NAME as MONITOR_PROCESS  # noqa: E402
from mlcycle.monitor.settings import MonitorSettings  # noqa: E402
from mlcycle.serve.app import create_app  # noqa: E402
from mlcycle.serve.model import ServedModel  # noqa: E402
from mlcycle.serve.protocols import decode_predict, prediction_rows  # noqa: E402
from mlcycle.serve.settings import ServeSettings  # noqa: E402
from mlcycle.train.fit import fit_model  # noqa: E402

HOST = "127.0.0.1"
BATCH_ROWS = 512
# (label, wrk threads, connections, body) for every load measurement on a server.
LOADS = (
    ("c1", 1, 1, "one"),
    ("c32", 2, 32, "one"),
    ("b512_c1", 1, 1, "batch"),
    ("b512_c4", 1, 4, "batch"),
)
LOAD_LABELS = tuple(label for label, *_ in LOADS)
CONFIGS = ("mlcycle-1", "mlcycle-2", "reference-1", "reference-2")
# Optional: the reference without uvicorn's access log (``--no-access-log``), mlcycle with
# its monitor turned off (``--no-monitor``), to measure what monitoring costs, and a second
# such server (``mlcycle_twin``): how far two identical configurations differ in a run.
EXTRA_CONFIGS = (
    "reference_quiet-1",
    "reference_quiet-2",
    "mlcycle_nomon-1",
    "mlcycle_nomon-2",
    "mlcycle_twin-1",
    "mlcycle_twin-2",
    "mlcycle_canary-1",
    "mlcycle_canary-2",
)
#: The canary configurations run a rollout at 50/50 (a copy of the bundle as challenger).
CANARY_TOKEN = "bench-admin-token"
TARGET_CANARY_SHARE = 0.9
TARGET_MONITOR_SHARE = 0.95
TARGET_SPEEDUP = 1.5
TARGET_P99_MS = 20.0
TARGET_BATCH_SHARE = 0.5


# -- the model -----------------------------------------------------------------------------


def build_bundle(dest: Path) -> tuple[Path, pd.DataFrame]:
    """Breast cancer GBDT bundle, as ``tests/_bundles.py`` builds it; also the raw rows."""
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.astype(np.float32)
    y = np.array([str(bunch.target_names[i]) for i in bunch.target])
    schema = Schema("target", sorted(set(y)), [FeatureSpec(c, "numeric") for c in frame.columns])
    ds = Dataset(
        frame=frame.reset_index(drop=True),
        y=y,
        schema=schema,
        version=DataVersion(md5="x", path="p", tracked=False, size=0),
        path=Path("p"),
    )
    idx = np.random.default_rng(0).permutation(len(ds))
    cut = int(len(ds) * 0.7)
    train, val = ds.subset(idx[:cut]), ds.subset(idx[cut:])
    model = fit_model(train, GBDTConfig(max_iter=100), TrainConfig())
    onx = to_onnx(model.pipeline, train.schema)
    parity = check_parity(model, onx, val, 1e-4)
    path = write_bundle(
        dest,
        model=onx,
        signature=make_signature(train.schema, model.classes, onx, "breast_cancer"),
        profile=build_profile(train, model.predict_proba(val), val.y, model.classes),
        evaluation={"parity": parity.to_dict()},
        lineage={"git": {"commit": "bench"}},
    )
    # Request values as a client would send them: the original float64 data, held-out rows.
    return path, bunch.data.iloc[idx[cut:]].reset_index(drop=True)


def body_of(rows: pd.DataFrame) -> bytes:
    return orjson.dumps({"records": rows.to_dict(orient="records")})


# -- processes -----------------------------------------------------------------------------

_STARTED: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a process group of its own (so the whole tree can be stopped)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    # Workers may outlive a supervisor that was killed: always sweep the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc in _STARTED:
        _STARTED.remove(proc)


def stop_all() -> None:
    for proc in list(_STARTED):
        stop(proc)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> float:
    """Seconds from ``proc``'s start until ``url`` first answers 200."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as resp,
        ):
            if resp.status == 200:
                return time.perf_counter()
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout} s:\n{log.read_text()}")


def post(url: str, body: bytes) -> Any:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return orjson.loads(resp.read())


def vm_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def workers_of(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The processes that answer requests: uvicorn's spawned workers, else the server."""
    root = psutil.Process(proc.pid)
    spawned = [
        p
        for p in root.children(recursive=True)
        if any("spawn_main" in part for part in p.cmdline()) and p.name() != MONITOR_PROCESS
    ]
    return spawned or [root]


def tree_cpu_s(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """(User + system CPU seconds used so far by the server's live process tree, of which
    by its monitor processes)."""
    root = psutil.Process(proc.pid)
    total = monitor = 0.0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
            if p.name() == MONITOR_PROCESS:
                monitor += t.user + t.system
    return total, monitor


def tree_rss(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """(RSS summed over the process tree, largest worker RSS), MB."""
    root = psutil.Process(proc.pid)
    tree = [root, *root.children(recursive=True)]
    total = sum(vm_rss_mb(p.pid) for p in tree)
    return total, max(vm_rss_mb(p.pid) for p in workers_of(proc))


def connection_split(proc: subprocess.Popen[bytes], port: int) -> list[int]:
    """Established client connections held by each worker (the kernel's accept spread)."""
    out = []
    for p in workers_of(proc):
        conns = p.net_connections(kind="tcp")
        out.append(sum(c.status == "ESTABLISHED" and c.laddr.port == port for c in conns))
    return out


# -- measurements --------------------------------------------------------------------------


def server_command(config: str, bundle: Path, port: int) -> tuple[list[str], dict[str, str]]:
    kind, workers = config.split("-")
    extra_flags = ["--no-access-log"] if kind == "reference_quiet" else []
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PROMETHEUS_MULTIPROC_DIR", "MLCYCLE_SERVE_SETTINGS")
    }
    extra = ["--workers", workers] if workers != "1" else []
    if kind in ("mlcycle", "mlcycle_nomon", "mlcycle_twin", "mlcycle_canary"):
        cmd = [sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle)]
        # The defaults: the prediction log is not expanded (serve.monitor.expand_after
        # unset), so no work is deferred that could land in another configuration's
        # measurement (all servers stay up).
        overrides: list[str] = []
        if kind in ("mlcycle_nomon", "mlcycle_twin"):
            cmd.append("--no-monitor")
        if kind == "mlcycle_canary":
            env["MLCYCLE_ADMIN_TOKEN"] = CANARY_TOKEN
            cmd += ["--monitor-store", str(bundle.parent / f"canary-{port}.db")]
        return [*cmd, "--port", str(port), *extra, *overrides], env
    env["MLCYCLE_BENCH_BUNDLE"] = str(bundle)
    cmd = [sys.executable, "-m", "uvicorn", "bench.reference_server:app", "--app-dir", str(ROOT)]
    return [*cmd, "--host", HOST, "--port", str(port), *extra, *extra_flags], env


@dataclass
class Server:
    """A started server: its configuration, process (group), port and log."""

    config: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float

    @property
    def workers(self) -> int:
        return int(self.config.split("-")[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/predict"


def start_server(config: str, bundle: Path, work: Path) -> Server:
    """Start ``config`` and wait for its first ready answer."""
    port = free_port()
    cmd, env = server_command(config, bundle, port)
    log = work / f"{config}.log"
    t0 = time.perf_counter()
    proc = start(cmd, env, work, log)
    ready_s = wait_ready(f"http://{HOST}:{port}/v2/health/ready", proc, log) - t0
    print(f"  {config:<12} ready in {ready_s:.2f} s: {' '.join(cmd)}", flush=True)
    if config.startswith("mlcycle_canary"):
        start_canary(port, bundle, work)
    return Server(config, proc, port, log, ready_s)


def start_canary(port: int, bundle: Path, work: Path) -> None:
    """Start a canary held at 50 % (no analysis) with a copy of ``bundle`` as challenger."""
    import shutil

    challenger = work / f"challenger-{port}"
    shutil.copytree(bundle, challenger)
    doc = {
        "mode": "canary",
        "challenger": str(challenger),
        "settings": {"steps": [50, 100], "auto": False},
    }
    req = urllib.request.Request(
        f"http://{HOST}:{port}/admin/rollout",
        orjson.dumps(doc),
        {"Content-Type": "application/json", "Authorization": f"Bearer {CANARY_TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        rollout = orjson.loads(resp.read())["rollout"]
    print(f"    canary at {rollout['weight']:.0f}% to {challenger}", flush=True)


def measure_servers(
    servers: list[Server],
    bodies: dict[str, bytes],
    expected: dict[str, list[str]],
    args: argparse.Namespace,
    work: Path,
    ceiling: Callable[[float], float],
    ceilings: list[float],
) -> dict[str, dict[str, Any]]:
    """Check, warm up, then load every server; measurements interleave across servers,
    so the two sides of each ratio are taken close together in time. The in-process
    512-row ceiling (``ceiling``, appended to ``ceilings``) is measured right after the
    servers' 512-row c=1 loads, for the same reason."""

    def load(server: Server, threads: int, conns: int, body: str, seconds: int) -> LoadResult:
        return run_load(
            server.url,
            bodies[body],
            connections=conns,
            threads=threads,
            duration=seconds,
            workdir=work,
            client=args.client,
        )

    results: dict[str, dict[str, Any]] = {}
    for server in servers:
        for name, payload in bodies.items():
            got = [p["label"] for p in post(server.url, payload)["predictions"]]
            if got != expected[name]:
                raise RuntimeError(f"{server.config}: predictions differ from in-process ({name})")
        results[server.config] = {
            "config": server.config,
            "ready_s": server.ready_s,
            "cmd": server.proc.args,
        }
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    loads = [load for load in LOADS if load[0] in args.loads]
    warm: set[tuple[str, str]] = set()
    for round_ in range(args.rounds):
        for label, threads, conns, body in loads:
            # Every other round the other way round (A B, B A, ...): a drift of the
            # machine's speed within a round does not always favour the same server.
            for server in servers if round_ % 2 == 0 else servers[::-1]:
                if (server.config, body) not in warm:  # before a server's first load of a body
                    warm.add((server.config, body))
                    if body == "one":
                        load(server, 2, 32, "one", args.warmup)
                    elif not args.quick:
                        load(server, 1, 4, "batch", args.warmup)
                entry = measure_one(server, load, threads, conns, body, args.duration)
                rounds.setdefault((server.config, label), []).append(entry)
                print(
                    f"  {server.config:<12} {label:<8} {entry['rps']:8.0f} req/s  "
                    f"p50 {entry['p50_ms']:6.2f} ms  p99 {entry['p99_ms']:6.2f} ms  "
                    f"server CPU {entry['server_cpu_us_per_request']:5.0f} µs/req "
                    f"(monitor {entry['monitor_cpu_us_per_request']:4.0f})  "
                    f"(wrk-corrected p99 {entry['p99_wrk_ms'] or float('nan'):.2f})"
                    f"{'  errors ' + str(entry['errors']) if entry['errors'] else ''}"
                    + (
                        f"  conns/worker {entry['connections_per_worker']}"
                        if "connections_per_worker" in entry
                        else ""
                    ),
                    flush=True,
                )
            if label == "b512_c1":
                ceilings.append(ceiling(float(args.duration)))
                print(f"  {'in-process':<12} {label:<8} {ceilings[-1]:8.0f} rows/s", flush=True)
    for (config, label), entries in rounds.items():
        results[config][label] = summarize(entries)
    for server in servers:
        rss = tree_rss(server.proc)
        results[server.config]["rss_tree_mb"], results[server.config]["rss_worker_mb"] = rss
    return results


def measure_one(
    server: Server,
    load: Callable[[Server, int, int, str, int], LoadResult],
    threads: int,
    conns: int,
    body: str,
    seconds: int,
) -> dict[str, Any]:
    """One load run on ``server``, with its CPU time and, for several workers, how the
    connections spread over them (sampled half-way)."""
    split: list[int] = []
    sampler = None
    if conns > 1 and server.workers > 1:
        sampler = threading.Timer(
            seconds / 2,
            lambda out: out.extend(connection_split(server.proc, server.port)),
            args=[split],
        )
        sampler.start()
    cpu, monitor = tree_cpu_s(server.proc)
    res = load(server, threads, conns, body, seconds)
    cpu_after, monitor_after = tree_cpu_s(server.proc)
    cpu, monitor = cpu_after - cpu, monitor_after - monitor
    if sampler is not None:
        sampler.join()
    entry = res.to_dict()
    entry["server_cpu_us_per_request"] = cpu / max(res.requests, 1) * 1e6
    # Of which in the monitor processes (the rest: the workers that answer requests).
    entry["monitor_cpu_us_per_request"] = monitor / max(res.requests, 1) * 1e6
    entry["worker_cpu_us_per_request"] = (cpu - monitor) / max(res.requests, 1) * 1e6
    if body == "batch":
        entry["rows_per_s"] = res.rps * BATCH_ROWS
    if split:
        entry["connections_per_worker"] = split
    return entry


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over rounds (the only entry for one round)."""
    if len(entries) == 1:
        return entries[0]
    out: dict[str, Any] = {"rounds": entries}
    for key, value in entries[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(e[key] for e in entries)
        elif key == "client":
            out[key] = value
        elif key == "connections_per_worker":
            out[key] = [e.get(key) for e in entries]
    out["errors"] = sum(e["errors"] for e in entries)
    return out


def merge_sets(per_set: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One result per configuration from the sets of server processes measured in turn.

    Each load's numbers are the medians over all rounds of all sets; ``sets`` keeps each
    set's rounds, so that a ratio can be taken per process and its spread over processes
    shown (two processes of one configuration differ by a few percent for their life).
    """
    if len(per_set) == 1:
        return per_set[0]
    merged: dict[str, dict[str, Any]] = {}
    for config, first in per_set[0].items():
        out = merged[config] = {"config": config, "cmd": first["cmd"]}
        for key in ("ready_s", "rss_tree_mb", "rss_worker_mb"):
            out[key] = statistics.median(s[config][key] for s in per_set)
        for label in (x for x in first if x in LOAD_LABELS):
            sets = [s[config][label].get("rounds", [s[config][label]]) for s in per_set]
            out[label] = summarize([entry for rounds in sets for entry in rounds])
            out[label]["sets"] = sets
    return merged


def timed_loop(fn: Callable[[], Any], seconds: float) -> list[float]:
    """Wall time of each call of ``fn``, called repeatedly for ``seconds``."""
    times: list[float] = []
    stop_at = time.perf_counter() + seconds
    while True:
        t = time.perf_counter()
        fn()
        end = time.perf_counter()
        times.append(end - t)
        if end > stop_at:
            return times


def inprocess_ceiling(bundle_path: Path, bodies: dict[str, bytes]) -> Callable[[float], float]:
    """A function timing ``Bundle.predict`` on the 512-row inputs for some seconds: rows/s."""
    bundle = Bundle.load(bundle_path, intra_op_threads=1)
    validator = ServedModel.load(ServeSettings(bundle=str(bundle_path))).validator
    batch = decode_predict(bodies["batch"], "application/json", validator).inputs
    timed_loop(lambda: bundle.predict(batch), 0.2)

    def rows_per_s(seconds: float) -> float:
        times = timed_loop(lambda: bundle.predict(batch), seconds)
        return BATCH_ROWS * len(times) / sum(times)

    return rows_per_s


def measure_inprocess(
    bundle_path: Path, bodies: dict[str, bytes], seconds: float, batch_rows_per_s: list[float]
) -> dict[str, Any]:
    """onnxruntime in this process (1 intra-op thread), and mlcycle's non-HTTP request work.

    ``batch_rows_per_s``: the 512-row ceiling, measured between the servers' 512-row loads.
    """
    bundle = Bundle.load(bundle_path, intra_op_threads=1)
    model = ServedModel.load(ServeSettings(bundle=str(bundle_path)))
    validator = model.validator
    one = decode_predict(bodies["one"], "application/json", validator).inputs
    one_times = timed_loop(lambda: bundle.predict(one), min(seconds, 2.0))
    out: dict[str, Any] = {
        "config": "in-process",
        # Without 512-row loads (``--loads``), no ceiling was measured between them.
        "batch_rows_per_s": statistics.median(batch_rows_per_s) if batch_rows_per_s else None,
        "batch_rows_per_s_rounds": batch_rows_per_s,
        "one_p50_ms": float(np.percentile(one_times, 50)) * 1000,
        "one_p99_ms": float(np.percentile(one_times, 99)) * 1000,
        "one_per_s": len(one_times) / sum(one_times),
    }
    # The per-request work mlcycle's /predict does besides HTTP, one row, stage by stage.
    body = bodies["one"]
    stages: dict[str, Callable[[], Any]] = {
        "decode+validate": lambda: decode_predict(body, "application/json", validator),
        "predict": lambda: model.predict(one),
    }
    labels, proba = model.predict(one)
    stages["encode"] = lambda: orjson.dumps(
        {
            "request_id": "0" * 32,
            "model": {"name": model.name, "version": model.version},
            "predictions": prediction_rows(labels, proba, model.classes),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    out["one_row_stages_us"] = {
        name: statistics.median(timed_loop(fn, min(seconds, 1.0))) * 1e6
        for name, fn in stages.items()
    }
    # Both ASGI apps called directly (no socket, no HTTP parser, no event-loop I/O): the
    # framework + handler cost of one one-row /predict, which is what differs between them.
    os.environ["MLCYCLE_BENCH_BUNDLE"] = str(bundle_path)
    reference = importlib.import_module("bench.reference_server")
    apps = {
        # The monitor runs in its own process; this measures the app's own request work.
        "mlcycle": create_app(
            ServeSettings(bundle=str(bundle_path), monitor=MonitorSettings(enabled=False)), model
        ),
        "reference": reference.app,
    }
    out["asgi_us_per_request"] = {
        name: asyncio.run(asgi_cost_us(app, body, min(seconds, 2.0))) for name, app in apps.items()
    }
    return out


async def asgi_cost_us(app: Any, body: bytes, seconds: float) -> float:
    """Median µs per ``POST /predict`` of ``body`` through ``app``'s ASGI interface."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": (HOST, 80),
        "client": (HOST, 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "headers": [
            (b"host", HOST.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def call() -> None:
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"ASGI call failed: {sent}")

    times: list[float] = []
    for _ in range(200):
        await call()
    stop_at = time.perf_counter() + seconds
    while not times or time.perf_counter() < stop_at:
        t = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t)
    # The median of single calls: robust to the preemptions of a shared machine.
    return statistics.median(times) * 1e6


# -- report --------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def table(results: dict[str, dict[str, Any]], inproc: dict[str, Any]) -> str:
    head = (
        "| configuration | c=1 req/s | c=1 p50 ms | c=1 p99 ms | c=32 req/s | c=32 p50 ms "
        "| c=32 p99 ms | c=32 server CPU µs/req | 512-row rows/s c=1 | 512-row rows/s c=4 "
        "| ready s | RSS tree MB | RSS worker MB |"
    )
    lines = [head, "|---" + "|---:" * 12 + "|"]
    for config, r in results.items():
        errs = sum(r[k]["errors"] for k, *_ in LOADS if k in r)
        name = config + (f" ({errs} errors)" if errs else "")

        def cell(load: str, key: str, digits: int = 0, r: dict[str, Any] = r) -> str:
            return fmt(r[load][key] if load in r else None, digits)

        lines.append(
            f"| {name} | {cell('c1', 'rps')} | {cell('c1', 'p50_ms', 2)} "
            f"| {cell('c1', 'p99_ms', 2)} | {cell('c32', 'rps')} "
            f"| {cell('c32', 'p50_ms', 2)} | {cell('c32', 'p99_ms', 2)} "
            f"| {cell('c32', 'server_cpu_us_per_request')} "
            f"| {cell('b512_c1', 'rows_per_s')} | {cell('b512_c4', 'rows_per_s')} "
            f"| {fmt(r['ready_s'], 2)} | {fmt(r['rss_tree_mb'])} | {fmt(r['rss_worker_mb'])} |"
        )
    lines.append(
        f"| in-process (predict only) | {fmt(inproc['one_per_s'])} "
        f"| {fmt(inproc['one_p50_ms'], 3)} | {fmt(inproc['one_p99_ms'], 3)} | — | — | — | — "
        f"| {fmt(inproc['batch_rows_per_s'])} | — | — | — | — |"
    )
    return "\n".join(lines)


def ratios(results: dict[str, dict[str, Any]], inproc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(what: str, value: float, target: str, ok: bool | None, note: str = "") -> None:
        out.append({"what": what, "value": value, "target": target, "met": ok, "note": note})

    pairs = [(w, kind) for kind in ("reference", "reference_quiet") for w in ("1", "2")]
    for w, kind in pairs:
        ours, ref = results.get(f"mlcycle-{w}"), results.get(f"{kind}-{w}")
        if ours and ref and "c32" in ours:
            x = ours["c32"]["rps"] / ref["c32"]["rps"]
            add(
                f"one-row req/s c=32, mlcycle/{kind}, {w} worker(s)",
                x,
                f">= {TARGET_SPEEDUP}x",
                x >= TARGET_SPEEDUP,
            )
    for w in ("1", "2"):
        ours = results.get(f"mlcycle-{w}")
        if ours and "c32" in ours:
            p99 = ours["c32"]["p99_ms"]
            add(
                f"p99 c=32 one-row, mlcycle {w} worker(s) (ms)",
                p99,
                f"< {TARGET_P99_MS:.0f} ms",
                p99 < TARGET_P99_MS,
            )
    monitoring_ratios(results, add)
    for w in ("1", "2"):
        ours, canary = results.get(f"mlcycle-{w}"), results.get(f"mlcycle_canary-{w}")
        if ours and canary:
            for load in (x for x in ("c1", "c32", "b512_c1") if x in ours):
                share = canary[load]["rps"] / ours[load]["rps"]
                add(
                    f"req/s {load} canary 50/50 / one arm, mlcycle {w} worker(s)",
                    share,
                    f">= {TARGET_CANARY_SHARE:.0%}",
                    share >= TARGET_CANARY_SHARE,
                )
    for w in ("1", "2"):
        ours = results.get(f"mlcycle-{w}")
        if ours:
            for c in (
                x for x in ("c1", "c4") if f"b512_{x}" in ours and inproc["batch_rows_per_s"]
            ):
                share = ours[f"b512_{c}"]["rows_per_s"] / inproc["batch_rows_per_s"]
                add(
                    f"512-row rows/s {c.replace('c', 'c=')} / in-process, mlcycle {w} worker(s)",
                    share,
                    f">= {TARGET_BATCH_SHARE:.0%}",
                    share >= TARGET_BATCH_SHARE,
                )
    return out


def monitoring_ratios(results: dict[str, dict[str, Any]], add: Callable[..., None]) -> None:
    """Monitoring on / off, given to ``add`` (what, value, target, met, note): requests/s
    (a verdict only when the rounds and the twins allow one) and the worker's CPU per
    request."""
    for w in ("1", "2"):
        ours, off = results.get(f"mlcycle-{w}"), results.get(f"mlcycle_nomon-{w}")
        if not (ours and off):
            continue
        for load in (x for x in ("c1", "c32", "b512_c1") if x in ours):
            share, low, high, per_set = paired_ratio(ours[load], off[load], "rps")
            twin = results.get(f"mlcycle_twin-{w}", {}).get(load)
            # Two identical servers whose interval excludes 100 %: this run's intervals
            # are narrower than its noise, so they cannot give a verdict.
            floor_ok = twin is None or within(paired_ratio(twin, off[load], "rps"), 1.0)
            sets = (
                f"; per process set {', '.join(f'{x:.0%}' for x in per_set)}"
                if len(per_set) > 1
                else ""
            )
            # A verdict only when the rounds tell: the whole interval on one side.
            verdict = (
                None if not floor_ok
                else True if low >= TARGET_MONITOR_SHARE
                else False if high < TARGET_MONITOR_SHARE
                else None
            )  # fmt: skip
            add(
                f"req/s {load} monitoring on / off, mlcycle {w} worker(s)",
                share,
                f">= {TARGET_MONITOR_SHARE:.0%}",
                verdict,
                f"; per round on/off, 90 % interval {low:.0%}-{high:.0%}{sets}"
                + ("" if floor_ok else "; the twin servers' interval excludes 100 %"),
            )
        for load in (x for x in ("c1", "c32", "b512_c1") if x in ours):
            # The request path's own cost: worker CPU per request, monitor processes
            # left out (they run beside the workers, on another core when one is free).
            x, low, high, _ = paired_ratio(ours[load], off[load], "worker_cpu_us_per_request")
            add(
                f"worker CPU/request {load} monitoring on / off (monitor process excluded), "
                f"mlcycle {w} worker(s)",
                x,
                f"<= {2 - TARGET_MONITOR_SHARE:.2f}",
                x <= 2 - TARGET_MONITOR_SHARE,
                f"; 90 % interval {low:.2f}-{high:.2f}",
            )


def within(ratio: tuple[float, float, float, list[float]], value: float) -> bool:
    """Whether ``value`` lies in the interval of a :func:`paired_ratio`."""
    return ratio[1] <= value <= ratio[2]


def paired_ratio(
    a: dict[str, Any], b: dict[str, Any], key: str, *, level: float = 0.9, resamples: int = 2000
) -> tuple[float, float, float, list[float]]:
    """The ratio ``a[key] / b[key]`` taken per round the two were measured side by side
    in, with a bootstrap interval: ``(ratio, low, high, per-set ratios)``.

    The machine's speed drifts between rounds more than between the two measurements of
    one round, so the ratio is taken per round and summarized by its median. With
    several sets of processes (``--processes``) the ratio is the mean over the sets of
    their median, and the bootstrap resamples sets, then rounds within each: a process
    stays a few percent faster or slower than another of its configuration for its
    whole life, so the rounds of one set are not independent evidence.
    """

    def per_round(xs: list[dict[str, Any]], ys: list[dict[str, Any]]) -> list[float]:
        return [x[key] / y[key] for x, y in zip(xs, ys, strict=True)]

    if "sets" in a:
        sets = [per_round(x, y) for x, y in zip(a["sets"], b["sets"], strict=True)]
    else:
        sets = [per_round(a.get("rounds", [a]), b.get("rounds", [b]))]
    medians = [statistics.median(ratios) for ratios in sets]
    rng = random.Random(0)
    boot = []
    for _ in range(resamples):
        chosen = rng.choices(sets, k=len(sets)) if len(sets) > 1 else sets
        boot.append(statistics.fmean(statistics.median(rng.choices(r, k=len(r))) for r in chosen))
    boot.sort()
    tail = (1 - level) / 2
    low, high = boot[int(tail * resamples)], boot[int((1 - tail) * resamples) - 1]
    return statistics.fmean(medians), low, high, medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per server")
    parser.add_argument("--quick", action="store_true", help="1 s per measurement (smoke run)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="repeat every load this many times, interleaved; report medians",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="measure this many sets of fresh server processes in turn, each for --rounds",
    )
    parser.add_argument(
        "--loads",
        default=",".join(label for label, *_ in LOADS),
        help="comma-separated subset of the loads (many rounds of one load: --loads c32)",
    )
    parser.add_argument("--json", type=Path, help="save the results to this JSON file")
    parser.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated, from {CONFIGS + EXTRA_CONFIGS}",
    )
    args = parser.parse_args()
    args.loads = [x for x in args.loads.split(",") if x]
    labels = [label for label, *_ in LOADS]
    if not args.loads or set(args.loads) - set(labels):
        parser.error(f"--loads: choose from {labels} (comma-separated), got {args.loads}")
    if args.processes < 1 or args.rounds < 1:
        parser.error("--processes and --rounds must be at least 1")
    if args.quick:
        args.duration = args.warmup = args.rounds = 1
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS + EXTRA_CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {CONFIGS + EXTRA_CONFIGS}")
    client = args.client if args.client != "auto" else ("wrk" if wrk_path() else "python")
    args.client = client

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlcycle-serve-bench-") as tmp:
        work = Path(tmp)
        try:
            results, inproc, report = run(args, configs, work)
        finally:
            stop_all()
    load_after = os.getloadavg()

    print(f"\n## mlcycle serve benchmark ({datetime.date.today()})\n")
    print(report)
    print(
        f"\nmachine: {os.cpu_count()} cores, {platform.platform()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (shared machine: other "
        f"jobs may run; compare ratios within this run). Run took "
        f"{time.perf_counter() - started:.0f} s."
    )
    if args.json:
        doc = {
            "date": str(datetime.date.today()),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "processes": args.processes,
            "client": client,
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "servers": results,
            "in_process": inproc,
            "ratios": ratios(results, inproc),
            "versions": versions(),
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str))
        print(f"results saved to {args.json}")


def versions() -> dict[str, str]:
    names = ("onnxruntime", "uvicorn", "uvloop", "httptools", "fastapi", "starlette", "orjson")
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(Exception):
            out[name] = version(name)
    return out


def run(
    args: argparse.Namespace, configs: list[str], work: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], str]:
    t = time.perf_counter()
    bundle, raw = build_bundle(work / "bundle")
    one = raw.iloc[:1]
    batch = raw.iloc[np.resize(np.arange(len(raw)), BATCH_ROWS)]
    bodies = {"one": body_of(one), "batch": body_of(batch)}
    print(
        f"bundle built in {time.perf_counter() - t:.1f} s: {bundle} "
        f"(GBDT max_iter=100, 30 features); bodies {len(bodies['one'])} B and "
        f"{len(bodies['batch']) / 1024:.0f} KiB; client {args.client}, "
        f"{args.duration} s per measurement",
        flush=True,
    )
    local = ServedModel.load(ServeSettings(bundle=str(bundle)))
    expected: dict[str, list[str]] = {}
    for name, b in bodies.items():
        labels, _ = local.predict(decode_predict(b, "application/json", local.validator).inputs)
        expected[name] = labels.tolist()
    del local
    ceilings: list[float] = []
    ceiling = inprocess_ceiling(bundle, bodies)
    per_set = []
    for k in range(args.processes):
        if args.processes > 1:
            print(f"process set {k + 1} of {args.processes}", flush=True)
        # Servers start one at a time (so each start-up is timed alone), then all stay up
        # and idle while the others are measured.
        servers = [start_server(config, bundle, work) for config in configs]
        if any(s.workers > 1 for s in servers):
            time.sleep(1.0)  # the other workers start alongside the first; warm-up covers more
        per_set.append(measure_servers(servers, bodies, expected, args, work, ceiling, ceilings))
        for server in servers:
            stop(server.proc)
    results = merge_sets(per_set)
    print("  in-process ...", flush=True)
    inproc = measure_inprocess(bundle, bodies, float(args.duration), ceilings)
    return results, inproc, report(results, inproc, args)


def report(results: dict[str, dict[str, Any]], inproc: dict[str, Any], args: Any) -> str:
    v = versions()
    lines = [
        table(results, inproc),
        "",
        "Ratios against the targets (measured in this run):",
        "",
    ]
    for r in ratios(results, inproc):
        value = (
            f"{r['value']:.2f} ms"
            if "ms" in r["what"]
            else (f"{r['value']:.0%}" if "%" in r["target"] else f"{r['value']:.2f}x")
        )
        verdict = {True: "met", False: "NOT met", None: "cannot tell at this noise"}[r["met"]]
        lines.append(f"- {r['what']}: **{value}** (target {r['target']}: {verdict}{r['note']})")
    for w in ("1", "2"):
        twin, off = results.get(f"mlcycle_twin-{w}"), results.get(f"mlcycle_nomon-{w}")
        if not (twin and off):
            continue
        for load in (x for x in LOAD_LABELS if x in twin):
            x, low, high, per_set = paired_ratio(twin[load], off[load], "rps")
            lines.append(
                f"- (noise floor) req/s {load}, two identical monitoring-off servers, "
                f"{w} worker(s): {x:.0%} (90 % interval {low:.0%}-{high:.0%}"
                + (
                    f"; per process set {', '.join(f'{v:.0%}' for v in per_set)}"
                    if len(per_set) > 1
                    else ""
                )
                + ")"
            )
    for w in ("1", "2"):
        for kind in ("reference", "reference_quiet"):
            ours, ref = results.get(f"mlcycle-{w}"), results.get(f"{kind}-{w}")
            if ours and ref and "c32" in ours:
                a = ours["c32"]["server_cpu_us_per_request"]
                b = ref["c32"]["server_cpu_us_per_request"]
                lines.append(
                    f"- (context) server CPU per one-row request at c=32, {w} worker(s): "
                    f"mlcycle {a:.0f} µs, {kind} {b:.0f} µs: {kind}/mlcycle {b / a:.2f}x"
                )
    stages = inproc["one_row_stages_us"]
    lines += [
        "",
        "mlcycle's per-request work outside HTTP, one row, in-process (median µs): "
        + ", ".join(f"{k} {val:.0f}" for k, val in stages.items())
        + f"; sum {sum(stages.values()):.0f} µs.",
        "The whole ASGI app per one-row /predict, called in-process without sockets or HTTP "
        "parsing (median µs): "
        + ", ".join(f"{k} {val:.0f}" for k, val in inproc["asgi_us_per_request"].items())
        + ".",
    ]
    splits = {
        c: r["c32"]["connections_per_worker"]
        for c, r in results.items()
        if "connections_per_worker" in r.get("c32", {})
    }
    if splits:
        lines.append(
            "Connections per worker during c=32 (kernel accept spread): "
            + "; ".join(f"{c} {s}" for c, s in splits.items())
            + "."
        )
    lines += [
        "",
        "Setup: one 127.0.0.1 machine for servers and load; load generator "
        + (
            "wrk 4.1 (`-t1 -c1` and `-t2 -c32` one-row, `-t1 -c1`/`-t1 -c4` 512-row)"
            if args.client == "wrk"
            else "asyncio keep-alive client in the benchmark process"
        )
        + f", {args.duration} s per measurement after a {args.warmup} s warm-up"
        + (
            f", {args.rounds} interleaved rounds, servers in alternating order (medians). "
            if args.rounds > 1
            else ". "
        )
        + (
            f"{args.processes} sets of fresh server processes, measured in turn. "
            if args.processes > 1
            else ""
        )
        + (
            "p50/p99 are raw per-request latencies (wrk's coordinated-omission correction "
            "undone: its Lua `latency` object is already corrected). "
            if args.client == "wrk"
            else "p50/p99 are raw per-request latencies. "
        )
        + "mlcycle: `python -m mlcycle serve --model BUNDLE [--workers 2]` (defaults: uvloop + "
        "httptools, micro-batching on, ORT 1 intra-op thread). Reference: "
        "`python -m uvicorn bench.reference_server:app [--workers 2]` with uvicorn's defaults "
        "(loop/http auto → uvloop + httptools, access log on, log level info), FastAPI "
        "`async def` endpoint, stdlib-JSON response, ORT intra_op_num_threads=1. In-process: "
        "`Bundle.load(b, intra_op_threads=1).predict` in the benchmark process. "
        "Ready: process start to first 200 from GET /v2/health/ready (for 2 workers, the "
        "first worker). RSS: VmRSS after the load, summed over the process tree (2 workers: "
        "supervisor + workers) and of the largest worker. "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
