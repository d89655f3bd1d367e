"""Benchmark: what monitoring's hand-over costs in throughput at saturation, one process
against itself.

``bench/serve.py`` compares a monitoring-on server with a ``--no-monitor`` one; with both
loaded back to back on a shared 2-core machine its per-process-set ratios spread over 5-10
points, and the same code gave 87-96 % in nine runs of one day. Here each monitoring-on
server is compared with itself: its ``MonitorClient.record`` is switched by a signal
(``bench/_switch/sitecustomize.py``, loaded by these servers only) between doing nothing
and its real work **round by round**, and each round loads it alone, back to back (wrk,
``--connections``, no pause), as ``bench/serve.py`` does. Rounds go in pairs, one each
way, in alternating order; the figure is, per server, the median over the pairs of the
recording round's requests/s over the do-nothing round's, then the mean over the
servers. The monitor process, the automation and rollout threads run in both kinds of
round, so it measures ``record`` and the hand-over (the queue, the sender, the monitor's
work on the rows), not monitoring as a whole (with ``record`` a no-op a server kept 99 %
of a ``--no-monitor`` one's throughput, docs/benchmarks.md). A do-nothing round right
after a recording one may still carry some of its cost (the monitor's backlog, the
caches), so the figure is a lower bound of the cost. ``--control`` keeps ``record`` a
no-op in every round: the noise floor. ``--switch keep`` runs, instead of the real
``record``, one that only keeps each request's event for a while and hands nothing over:
the least any per-request log costs. ``--server on@0.1`` (or ``on+KEY=VALUE``) measures a
server with other ``serve.monitor`` settings.

Run: ``.venv/bin/python bench/monitor_cycle.py`` (about 2 minutes: one-row requests at
``-c32``, 3 servers, 8 rounds of 2 s each way); ``--rows 512 --connections 1`` for big
requests. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._load import wrk_path  # noqa: E402
from bench.monitor_cpu import is_config_name, lua_script, main_thread_cpu_s  # noqa: E402
from bench.monitor_switch import start_server  # noqa: E402
from bench.serve import Server, body_of, build_bundle, stop_all  # noqa: E402


def load(server: Server, script: Path, connections: int, seconds: int) -> tuple[float, float]:
    """Load ``server`` alone, back to back: (requests/s, main-thread CPU µs per request)."""
    wrk = wrk_path()
    assert wrk is not None
    threads = min(2, connections)
    before = main_thread_cpu_s(server.proc)
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), server.url],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    cpu = main_thread_cpu_s(server.proc) - before
    lines = [line for line in out.splitlines() if "requests in" in line]
    if not lines:
        raise RuntimeError(f"wrk said:\n{out}")
    parts = lines[0].split()
    requests, elapsed = int(parts[0]), float(parts[3].rstrip(",s"))
    if requests == 0:
        raise RuntimeError(f"no request answered in {seconds} s:\n{out}")
    return requests / elapsed, cpu / requests * 1e6


def run(args: argparse.Namespace, work: Path) -> list[tuple[list[float], list[float]]]:
    """Per server: the recording rounds' requests/s and main-thread CPU per request, each
    over the do-nothing round of its pair."""
    bundle, raw = build_bundle(work / "bundle")
    body = work / "body.json"
    body.write_bytes(body_of(raw.sample(args.rows, replace=True, random_state=0)))
    script = work / "post.lua"
    script.write_text(lua_script(body, 0))
    switch = "none" if args.control else args.switch
    out = []
    for i in range(args.servers):  # one at a time: each has the machine to itself
        server = start_server(args.server, bundle, work, switch)
        for _ in range(2):  # warm up both ways
            load(server, script, args.connections, 2)
            os.kill(server.proc.pid, signal.SIGUSR1)
        rps, cpu = [], []
        recording = False
        for round_ in range(args.rounds):
            got = {}
            # Pairs in alternating order (off, on), (on, off), ...: a round's place in its
            # pair (the second one ran ~4 % faster with record a no-op both ways) cancels.
            for mode in (False, True) if round_ % 2 == 0 else (True, False):
                if mode != recording:
                    os.kill(server.proc.pid, signal.SIGUSR1)
                    recording = mode
                got[mode] = load(server, script, args.connections, args.seconds)
            idle, busy = got[False], got[True]
            rps.append(busy[0] / idle[0])
            cpu.append(busy[1] / idle[1])
            print(
                f"  server {i} round {round_ + 1}: {idle[0]:,.0f} -> {busy[0]:,.0f} req/s "
                f"({rps[-1]:.1%}), main thread {idle[1]:.0f} -> {busy[1]:.0f} µs per request "
                f"({cpu[-1]:.3f}x)",
                flush=True,
            )
        out.append((rps, cpu))
        stop_all()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=3, help="servers, measured in turn")
    parser.add_argument("--rounds", type=int, default=8, help="pairs of rounds per server")
    parser.add_argument("--seconds", type=int, default=2, help="seconds per round")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--control", action="store_true", help="record stays a no-op")
    parser.add_argument(
        "--switch",
        choices=("record", "keep"),
        default="record",
        help="what the switched-on rounds run: the real record, or one that only keeps each "
        "request's event (the floor of any per-request log)",
    )
    parser.add_argument(
        "--server",
        default="on",
        help="the monitoring-on configuration, as bench/monitor_cpu.py --configs names them: "
        "on, on@SECONDS (hand-over interval), on+KEY=VALUE (any serve.monitor setting)",
    )
    args = parser.parse_args()
    if min(args.servers, args.rounds, args.seconds, args.connections, args.rows) < 1:
        parser.error("--servers, --rounds, --seconds, --connections and --rows must be >= 1")
    if not args.server.startswith("on") or not is_config_name(args.server):
        parser.error(
            f"--server: {args.server!r} is not on, on@SECONDS (e.g. on@0.1) or on+KEY=VALUE "
            "(e.g. on+buffer_capacity=100000)"
        )
    if wrk_path() is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlcycle-monitor-cycle-") as tmp:
        try:
            results = run(args, Path(tmp))
        finally:
            stop_all()
    what = (
        "a no-op both ways (control)"
        if args.control
        else f"switched on every other round ({args.switch}; server {args.server})"
    )
    print("\n## The hand-over's cost in throughput at saturation, one process against itself\n")
    print(
        f"{args.rows}-row `POST /predict`, wrk -c{args.connections} back to back, "
        f"{args.rounds} pairs of {args.seconds} s rounds per server; `record` {what}. "
        "A recording round over the do-nothing round of its pair (median over the pairs):\n"
    )
    print("| server | requests/s | main-thread CPU per request |")
    print("|---|---:|---:|")
    for i, (rps, cpu) in enumerate(results):
        print(f"| {i} | {statistics.median(rps):.1%} | {statistics.median(cpu):.3f} |")
    mean_rps = statistics.mean(statistics.median(rps) for rps, _ in results)
    mean_cpu = statistics.mean(statistics.median(cpu) for _, cpu in results)
    print(f"| mean | **{mean_rps:.1%}** | **{mean_cpu:.3f}** |")
    print(f"\nRun took {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
