"""Benchmark: what monitoring costs a server worker, counted in CPU instructions.

Requests per second on a shared 2-core machine move by +/-10 points between runs, more
than the 5 % that monitoring may cost, so this benchmark counts instead of timing: it runs
``mlcycle serve`` with and without ``--no-monitor`` under valgrind's callgrind (both at
once, same bundle as ``bench/serve.py``), sends each the same ``POST /predict`` requests
(one row, or ``--rows``) one at a time, and reads the instructions each worker process
executed for them, per thread. Instruction counts do not depend on the machine's load.

What it reports, per request:

* **main thread**: the event loop, which answers the request (HTTP, decode, predict,
  encode) and, with monitoring on, appends the request to the monitor's queue;
* **other threads**: with monitoring on, the sender thread that hands the queue to the
  monitor process once a second (plus, in both, onnxruntime's and the server's helpers).

Under valgrind a request takes about 20 ms, so a message to the monitor process
carries about 50 requests; at full speed it carries thousands, so the "other threads"
figure here is an upper bound. The monitor process itself is not
counted: it runs at the ``SCHED_IDLE`` priority beside the workers (``bench/serve.py``
measures its CPU).

Run: ``.venv/bin/python bench/monitor_overhead.py`` (about 3 minutes: two servers start
under valgrind in about 90 s, then ``--requests`` requests each; ``--rows 512
--requests 100`` for big requests, about 4 minutes); ``--cache-sim`` also simulates the
caches and counts the main thread's misses (about twice as slow); needs ``valgrind``
(``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import (  # noqa: E402
    HOST,
    body_of,
    build_bundle,
    free_port,
    start,
    stop,
    stop_all,
    wait_ready,
)

TARGET_SHARE = 0.05


def send(port: int, body: bytes, n: int) -> float:
    """``n`` requests, one at a time; seconds taken."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    started = time.perf_counter()
    for _ in range(n):
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST /predict answered {resp.status}")
    conn.close()
    return time.perf_counter() - started


def control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


#: callgrind's events with ``--cache-sim=yes``: instructions, data reads and writes, and
#: misses (I1/D1: level 1; IL/DL: the last level, simulated here as a core's 2 MiB L2).
CACHE_EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")


def thread_totals(out: Path, pid: int, dump_no: int) -> dict[int, list[int]]:
    """Event totals per thread in dump ``dump_no`` (``--separate-threads=yes`` files):
    ``[Ir]``, or :data:`CACHE_EVENTS` with the cache simulation."""
    totals: dict[int, list[int]] = {}
    for path in out.glob(f"cg.{pid}.{dump_no}-*"):
        thread = int(path.name.rsplit("-", 1)[1])
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                totals[thread] = [int(x) for x in line.split()[1:]]
    if not totals:
        raise RuntimeError(f"callgrind wrote no dump {dump_no} for pid {pid} in {out}")
    return totals


def measure(pid: int, port: int, body: bytes, n: int, out: Path) -> dict[str, float]:
    send(port, body, 50)  # warm up
    control(pid, "--zero")
    seconds = send(port, body, n)
    time.sleep(0.5)  # let the sender thread hand over the last requests
    control(pid, "--dump")
    deadline = time.monotonic() + 30
    while not list(out.glob(f"cg.{pid}.1-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    totals = thread_totals(out, pid, 1)
    main = totals.pop(1, [0])
    result = {
        "main": main[0] / n,
        "other": sum(t[0] for t in totals.values()) / n,
        "ms_per_request": seconds / n * 1000,
    }
    if len(main) == len(CACHE_EVENTS):  # the main thread's misses, per request
        result.update({f"main_{e}": v / n for e, v in zip(CACHE_EVENTS, main, strict=True)})
    return result


def worker_instructions(
    work: Path, bundle: Path, body: bytes, requests: int, cache_sim: bool = False
) -> dict[str, Any]:
    """Run ``mlcycle serve`` with and without monitoring under callgrind; :func:`measure` each.

    ``cache_sim``: simulate the caches too (a 64 KiB L1 and a 2 MiB last level, this
    machine's per-core L1 and L2), to count the misses of the main thread."""
    servers = {}
    try:
        for mode in ("on", "off"):
            out = work / mode
            out.mkdir()
            port = free_port()
            cmd = [
                "valgrind", "--tool=callgrind", "--separate-threads=yes",
                f"--callgrind-out-file={out}/cg.%p", "--trace-children=no",
                *(["--cache-sim=yes", "--D1=65536,8,64", "--LL=2097152,16,64"]
                  if cache_sim else []),
                sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle),
                "--port", str(port), "--monitor-store", str(work / "monitor.db"),
            ]  # fmt: skip
            if mode == "off":  # (valgrind's wrapper execs valgrind.bin: same pid)
                cmd.append("--no-monitor")
            proc = start(cmd, dict(os.environ), work, work / f"{mode}.log")
            servers[mode] = (proc, port, out)
        for mode, (proc, port, _) in servers.items():
            wait_ready(f"http://{HOST}:{port}/v2/health/ready", proc, work / f"{mode}.log", 600)
        return {
            mode: measure(proc.pid, port, body, requests, out)
            for mode, (proc, port, out) in servers.items()
        }
    finally:
        for proc, _, _ in servers.values():
            stop(proc)
        stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per server")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also count the main thread's cache misses (simulated; about 2x slower)",
    )
    args = parser.parse_args()
    if min(args.requests, args.rows) < 1:
        parser.error("--requests and --rows must be >= 1")
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is not installed: apt-get install valgrind")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="mlcycle-monitor-overhead-") as tmp:
        work = Path(tmp)
        bundle, rows = build_bundle(work / "bundle")
        body = body_of(
            rows.iloc[:1]
            if args.rows == 1
            else rows.sample(args.rows, replace=True, random_state=0)
        )
        results = worker_instructions(work, bundle, body, args.requests, args.cache_sim)
    on, off = results["on"], results["off"]
    total_on, total_off = on["main"] + on["other"], off["main"] + off["other"]
    print(f"\n## Monitoring cost in a worker, callgrind ({datetime.date.today()})\n")
    rows = "one-row" if args.rows == 1 else f"{args.rows}-row"
    print(f"{args.requests} {rows} POST /predict, one at a time, breast cancer GBDT.\n")
    print("| instructions per request | monitoring on | off | on / off |")
    print("|---|---:|---:|---:|")
    for name, a, b in (
        ("main thread (request path)", on["main"], off["main"]),
        ("other threads (sender, helpers)", on["other"], off["other"]),
        ("worker process", total_on, total_off),
    ):
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {f'{a / b:.3f}' if b else '—'} |")
    if "main_Ir" in on:
        print("\n| main thread, per request | monitoring on | off | on / off |")
        print("|---|---:|---:|---:|")
        for event in CACHE_EVENTS:
            a, b = on[f"main_{event}"], off[f"main_{event}"]
            print(f"| {event} | {a:,.0f} | {b:,.0f} | {f'{a / b:.3f}' if b else '—'} |")
    share = on["main"] / off["main"] - 1
    verdict = "met" if share <= TARGET_SHARE else "NOT met"
    print(
        f"\nrequest path: {share:+.1%} instructions with monitoring on (target <= "
        f"{TARGET_SHARE:.0%}: {verdict}); under valgrind a request took "
        f"{on['ms_per_request']:.1f} / {off['ms_per_request']:.1f} ms (on / off), so each "
        "reached the sender thread alone: its share is an upper bound."
    )


if __name__ == "__main__":
    main()
