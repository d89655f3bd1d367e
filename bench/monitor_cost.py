"""Benchmark: what monitoring costs per request, all of it, counted in CPU instructions.

Requests per second on a shared 2-core machine move by 10-30 % between identical runs,
more than the 5 % that monitoring may cost, so this benchmark counts instructions with
valgrind's callgrind, which do not depend on the machine's load. It adds up, per
request, every instruction that monitoring makes the machine execute, at the batching
the server reaches at full speed:

1. **the worker**: ``mlcycle serve --no-monitor`` under callgrind, one-row
   ``POST /predict`` requests one at a time (the request path, as in
   ``bench/monitor_overhead.py``): what monitoring is set against. The same with
   monitoring on gives an upper bound of the request path's share (printed apart:
   under valgrind a request takes milliseconds, so every wake-up of the worker's other
   threads falls on a few requests);
2. **the request path, the hand-over and the monitor process**, stage by stage: a child
   process under callgrind builds the monitor exactly as a worker's monitor process does
   (same settings, model facts, store, alarm rules and detectors) and feeds it messages
   of ``--batch`` requests each (500 by default; a worker hands over once a second, or
   once 5,000 rows wait, so at 5,000 one-row requests/s its messages carry up to 10
   times that: 500 charges per-message costs to fewer requests than the server does).
   Each stage runs twice, with 2 and with 2 + ``--chunks`` messages, so that one-time
   costs (imports, first calls, caches) cancel out: what is left is the marginal cost of
   a request. Each stage does one more step than the one before (the first only builds
   what the worker has of each request anyway), and the difference is the step's cost:
   ``MonitorClient.record``, which the request path calls; the sender's packing and
   pickling and the monitor's unpickling; taking requests in (windows, counters,
   streaming detectors); packing the message's requests into one prediction-log batch;
   inserting it into SQLite; and, reported apart, expanding the batch into
   ``predictions`` rows (features and probabilities as JSON, one insert per row), which
   the server does only when ``serve.monitor.expand_after`` is set (off by default:
   mlcycle reads the batches as they are; ``mlcycle monitor expand`` expands on demand,
   for SQL of your own). A window evaluation (input and output metrics, 30 drift tests,
   alarm rules) is counted the same way (1 and 4 of them) and charged at one per
   ``window.min_seconds`` (10 s) at ``--rate`` requests/s.

The sum is set against the worker's instructions per request with monitoring off. On a
machine whose CPU is the bottleneck (as here: wrk, the worker and the monitor share two
cores) throughput falls by about that share when monitoring is on; with
``expand_after`` set, under a load that lasts longer than it, by the share with the
expansion.

Run: ``.venv/bin/python bench/monitor_cost.py`` (about 8 minutes: each valgrind run
starts a Python interpreter at a fiftieth of its speed); ``--rows 512`` for 512-row
requests (and ``--batch 10``: the 5,000 rows after which a worker hands over early);
``--skip-worker`` to count only the monitor side. Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import itertools
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlcycle.monitor.settings import FEATURE_LOGGING  # noqa: E402

#: Each run does the steps of the one before it and one more.
STAGES = ("build", "record", "handover", "take_in", "pack", "insert", "expand", "evaluate")
STAGE_NAMES = {
    "record": "request path: MonitorClient.record (queue the request)",
    "handover": "hand-over: sender packs + pickles, monitor unpickles",
    "take_in": "monitor: windows, counters, streaming detectors",
    "pack": "monitor: the prediction log's batch (ids, arrays)",
    "insert": "monitor: SQLite insert of the batch (WAL)",
    "evaluate": "monitor: window evaluation (drift, metrics, alarms), amortised",
    "expand": "only with expand_after set: the batch expanded into the predictions table",
}
#: Work the server does only with ``serve.monitor.expand_after`` set: reported apart.
DEFERRED = ("expand",)
#: Messages every run starts with (their cost cancels out).
BASE_CHUNKS = 2


# -- the child: one stage under callgrind ---------------------------------------------------


def quiet_monitor(args: argparse.Namespace, stage: str) -> tuple[Any, Any, Any, Any]:
    """A monitor built as its process builds one, with its threads stopped (this process
    calls each step itself); also its settings, model facts and request rows."""
    import dataclasses

    from prometheus_client import CollectorRegistry

    from mlcycle.monitor.live import LiveMonitor
    from mlcycle.monitor.live_metrics import MonitorMetrics
    from mlcycle.monitor.store import connect
    from mlcycle.monitor.watch import build_watchers

    settings, facts, x = pickle.loads((args.work / "facts.pickle").read_bytes())
    db = args.work / f"{stage}-{args.chunks}-{args.evaluations}.db"
    settings = dataclasses.replace(settings, log_features=args.log_features, store=str(db))
    engine = connect(settings.store)
    metrics = MonitorMetrics(CollectorRegistry(), facts.version, settings.stage, server_pid=0)
    watchers = build_watchers(settings, facts, engine, metrics)
    monitor = LiveMonitor(settings, facts, metrics, engine=engine, watchers=watchers)
    monitor._stop.set()
    monitor._thread.join()
    log = monitor.log
    assert log is not None
    log._stop = True
    with log._lock:
        log._lock.notify()
    log._thread.join()
    return monitor, settings, facts, x


def child(args: argparse.Namespace, stage: str) -> None:
    """Set up a monitor as its process does, then run the steps up to ``stage``."""
    from multiprocessing.reduction import ForkingPickler

    import numpy as np

    from mlcycle.monitor.handover import message_of
    from mlcycle.monitor.process import _unpack

    chunks, batch, rows = args.chunks, args.batch, args.rows
    monitor, settings, facts, x = quiet_monitor(args, stage)
    log = monitor.log
    if stage == "take_in":
        monitor.log = None  # no prediction-log rows
    block = facts.blocks[0][0]
    x = np.resize(x, (max(rows, len(x)), x.shape[1]))
    proba = np.tile(np.array([[0.25, 0.75]], np.float32), (rows, 1))

    # What a worker has of each answered request anyway: its id, inputs, probabilities.
    answered = [
        [(f"{c:08x}{i:024x}", {block: x[:rows].copy()}, proba.copy()) for i in range(batch)]
        for c in range(chunks)
    ]
    if stage == "build":  # the worker's own work: not monitoring
        return
    import dataclasses

    from mlcycle.monitor.service import MonitorClient

    # Its monitor process (not traced) is given nothing and keeps no store.
    client = MonitorClient(dataclasses.replace(settings, store=""), facts)
    client._stop.set()  # no sender thread: this process hands over itself
    client._thread.join()
    queued = []
    for requests in answered:
        for rid, inputs, p in requests:
            client.record(rid, inputs, p, 0.0003, arm="champion", pipeline_id=None)
        queued.append(list(client._queue))
        client._queue.clear()  # (what the sender does once a second)
        client._queued = 0
    client.process.kill()
    if stage == "record":
        return
    # The detectors' rate limits run on the time of the messages as the server sends
    # them (one every --batch / --rate seconds), not on this process's (slowed) clock.
    sent = [0.0]
    monitor.watchers.clock = lambda: sent[0]
    for items in queued:
        sent[0] += batch / args.rate
        message = pickle.loads(ForkingPickler.dumps(message_of(items, [block])))
        if stage != "handover":
            _unpack(message, monitor)
            monitor._process([monitor._queue.popleft()])
            monitor._queued = 0  # (what the monitor thread does when it takes the queue)
    if stage in ("insert", "expand", "evaluate"):
        while log._buffer:  # what the writer thread does
            log._insert(log._take())
    if stage == "expand":
        from mlcycle.monitor.log_batches import expand_batches

        expand_batches(monitor.engine)
    if stage == "evaluate":
        for _ in range(args.evaluations):
            monitor._evaluate(time.time())


def callgrind_total(out: Path) -> int:
    """Instructions over every thread's dump file."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:") or line.startswith("summary:"):
                total += int(line.split()[1])
                break
    if not total:
        raise RuntimeError(f"callgrind wrote nothing at {out}")
    return total


def run_stage(
    stage: str, work: Path, chunks: int, evaluations: int, args: argparse.Namespace
) -> int:
    """Instructions of a child process that runs ``stage`` on ``chunks`` messages."""
    out = work / f"cg.{stage}.{chunks}.{evaluations}"
    cmd = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes",
        f"--callgrind-out-file={out}", sys.executable, __file__, "--child", stage,
        "--work", str(work), "--chunks", str(chunks), "--batch", str(args.batch),
        "--rows", str(args.rows), "--evaluations", str(evaluations), "--rate", str(args.rate),
        "--log-features", args.log_features,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
    return callgrind_total(out)


def runs(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(stage, messages, evaluations) of every child run."""
    out = []
    for stage in STAGES[:-1]:
        out += [(stage, BASE_CHUNKS, 0), (stage, BASE_CHUNKS + args.chunks, 0)]
    return [*out, ("evaluate", BASE_CHUNKS, 1), ("evaluate", BASE_CHUNKS, 4)]


# -- the parent ---------------------------------------------------------------------------


def prepare(work: Path) -> tuple[Path, Any]:
    """The benchmark bundle and what a worker's monitor process is given about it."""
    import dataclasses

    import numpy as np
    from bench.serve import build_bundle

    from mlcycle.serve.app import monitor_facts
    from mlcycle.serve.model import ServedModel
    from mlcycle.serve.settings import ServeSettings

    bundle, frame = build_bundle(work / "bundle")
    served = ServedModel.load(ServeSettings(bundle=str(bundle)))
    facts = monitor_facts(served)
    settings = dataclasses.replace(ServeSettings().monitor, store="")
    x = frame.to_numpy(np.float32)
    (work / "facts.pickle").write_bytes(pickle.dumps((settings, facts, x)))
    return bundle, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, default=8, help="messages counted per stage")
    parser.add_argument("--evaluations", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=500, help="requests per message")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--rate", type=float, default=5000.0, help="requests/s (evaluation)")
    parser.add_argument("--requests", type=int, default=300, help="requests per worker run")
    parser.add_argument("--skip-worker", action="store_true", help="monitor side only")
    parser.add_argument(
        "--log-features",
        choices=FEATURE_LOGGING,
        default="all",
        help="serve.monitor.log_features of the monitor",
    )
    args = parser.parse_args()
    if args.child:
        child(args, args.child)
        return
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed: apt-get install valgrind")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlcycle-monitor-cost-") as tmp:
        work = Path(tmp)
        import numpy as np
        from bench.serve import body_of

        bundle, frame = prepare(work)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            todo = runs(args)
            counts = pool.map(lambda r: run_stage(r[0], work, r[1], r[2], args), todo)
            totals = dict(zip(todo, counts, strict=True))
        worker = None
        if not args.skip_worker:
            body = body_of(frame.iloc[np.arange(args.rows) % len(frame)])
            from bench.monitor_overhead import worker_instructions

            worker = worker_instructions(work, bundle, body, args.requests)
    report(args, totals, worker, time.perf_counter() - started)


def report(
    args: argparse.Namespace,
    totals: dict[tuple[str, int, int], int],
    worker: dict[str, Any] | None,
    seconds: float,
) -> None:
    n = args.chunks * args.batch
    big = BASE_CHUNKS + args.chunks
    # Marginal instructions per request of everything up to each stage.
    upto = {
        stage: (totals[(stage, big, 0)] - totals[(stage, BASE_CHUNKS, 0)]) / n
        for stage in STAGES[:-1]
    }
    per: dict[str, float] = {}
    for before, stage in itertools.pairwise(STAGES[:-1]):
        per[stage] = upto[stage] - upto[before]
    # Three more evaluations; one every window.min_seconds (10 s) at --rate requests/s.
    one = (totals[("evaluate", BASE_CHUNKS, 4)] - totals[("evaluate", BASE_CHUNKS, 1)]) / 3
    per["evaluate"] = one / (10.0 * args.rate)
    print(f"\n## Monitoring cost per request, callgrind ({datetime.date.today()})\n")
    print(
        f"{args.rows}-row requests; log_features={args.log_features}; messages of "
        f"{args.batch} requests; one window "
        f"evaluation: {one:,.0f} instructions, charged at one per 10 s at "
        f"{args.rate:,.0f} requests/s.\n"
    )
    print("| where | instructions per request |")
    print("|---|---:|")
    off = on_main = None
    if worker is not None:
        off, on = worker["off"], worker["on"]
        on_main = on["main"] - off["main"]
        print(f"| worker, monitoring off: the request path | {off['main']:,.0f} |")
    for stage, value in per.items():
        if stage not in DEFERRED:
            print(f"| {STAGE_NAMES[stage]} | {value:,.0f} |")
    added = sum(v for s, v in per.items() if s not in DEFERRED)
    later = sum(per[s] for s in DEFERRED)
    print(f"| **monitoring while serving** | **{added:,.0f}** |")
    for stage in DEFERRED:
        print(f"| {STAGE_NAMES[stage]} | {per[stage]:,.0f} |")
    print(f"| monitoring with `expand_after` set | {added + later:,.0f} |")
    if on_main is not None:
        print(
            f"\nThe whole server's main thread, on minus off: {on_main:,.0f} instructions per "
            "request: an upper bound of the request path's share, as under valgrind a request "
            "takes milliseconds and every wake-up of the worker's other threads (sender, "
            "rollout and automation pollers) falls on a few requests."
        )
    if off is not None:
        share = added / off["main"]
        verdict = "met" if share <= 0.05 else "NOT met"
        print(
            f"\nmonitoring adds **{share:.1%}** to the instructions of a request "
            f"(target <= 5 %: {verdict}); CPU-bound, throughput with monitoring on would be "
            f"{1 / (1 + share):.1%} of off. With `serve.monitor.expand_after` set (off by "
            f"default), under a load that lasts longer than it, it adds "
            f"{(added + later) / off['main']:.1%}."
        )
    print(f"\nRun took {seconds:.0f} s.")


if __name__ == "__main__":
    main()
