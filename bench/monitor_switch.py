"""Benchmark: what monitoring's hand-over costs the request path, one process against itself.

Two server processes of the same configuration differ by 2-5 % in CPU per request for
their whole lives, so comparing process sets (``bench/monitor_cpu.py``) needs several
processes per configuration and still moves by a few points between runs. Here each
monitoring-on server is compared with itself: ``MonitorClient.record`` is switched by a
signal (``bench/_switch/sitecustomize.py``, loaded by these servers only) between doing
nothing and its real work, in three phases of ``--rounds`` rounds each:

1. **before**: ``record`` does nothing (the monitor process, automation and webhook
   threads run as usual, nothing is handed over);
2. **recording**: the real ``record``: requests are queued and handed to the monitor;
3. **after**: nothing again (what the hand-over left behind in the process).

In every round each server is loaded at the same time as one ``--no-monitor`` reference
(wrk, ``--connections`` connections, each waiting ``--delay-ms`` between requests; ``0``
loads back to back), and the figure is the CPU time per request of its main thread (the
event loop: the request path) over the reference main thread's, over the same seconds.
``--control`` runs the same with ``record`` a no-op in all three phases: the drift of
the figure with the processes' age alone.

Run: ``.venv/bin/python bench/monitor_switch.py --rows 512 --connections 1 --delay-ms 10``
(about 2.5 minutes with 3 servers and 4 rounds of 3 s per phase). Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._load import wrk_path  # noqa: E402
from bench.monitor_cpu import lua_script, side_by_side, start_config  # noqa: E402
from bench.serve import Server, body_of, build_bundle, stop_all  # noqa: E402

PHASES = ("before", "recording", "after")


def start_server(name: str, bundle: Path, work: Path, switch: str) -> Server:
    """A one-worker server, ``off`` or ``on`` (``bench/monitor_cpu.py``), with the switch
    loaded when ``switch`` is ``record`` or ``none``."""
    if not switch:
        return start_config(name, bundle, work)
    path = [str(ROOT / "bench" / "_switch"), *filter(None, [os.environ.get("PYTHONPATH")])]
    environ = {"PYTHONPATH": os.pathsep.join(path), "MLCYCLE_BENCH_SWITCH": switch}
    return start_config(name, bundle, work, environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=3, help="monitoring-on servers")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per phase")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per round")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per server")
    parser.add_argument(
        "--delay-ms", type=float, default=5.0, help="each connection's pause (0: none)"
    )
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument(
        "--control", action="store_true", help="record stays a no-op in every phase"
    )
    args = parser.parse_args()
    if min(args.servers, args.rounds, args.seconds, args.connections, args.rows) < 1:
        parser.error("--servers, --rounds, --seconds, --connections and --rows must be >= 1")
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    if wrk_path() is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlcycle-monitor-switch-") as tmp:
        try:
            ratios = run(args, Path(tmp))
        finally:
            stop_all()
    print("\n## The hand-over's cost to the request path, one process against itself\n")
    what = "a no-op in every phase (control)" if args.control else "switched on in phase 2"
    print(
        f"{args.rows}-row `POST /predict`, wrk -c{args.connections}, {args.delay_ms:g} ms "
        f"between a connection's requests; {args.servers} servers, {args.rounds} rounds "
        f"of {args.seconds} s per phase; `record` {what}. Main-thread CPU per request over "
        "the reference's (median over the rounds):\n"
    )
    print("| server | " + " | ".join(PHASES) + " |")
    print("|---|" + "---:|" * len(PHASES))
    medians = [[statistics.median(r[p]) for p in PHASES] for r in ratios]
    for i, row in enumerate(medians):
        print(f"| {i} | " + " | ".join(f"{x:.3f}" for x in row) + " |")
    means = [statistics.mean(col) for col in zip(*medians, strict=True)]
    print("| mean | " + " | ".join(f"**{x:.3f}**" for x in means) + " |")
    print(
        f"\nrecording against before: {means[1] / means[0] - 1:+.1%}; after against "
        f"before: {means[2] / means[0] - 1:+.1%}. Run took "
        f"{time.perf_counter() - started:.0f} s."
    )


def run(args: argparse.Namespace, work: Path) -> list[dict[str, list[float]]]:
    """Per server, per phase: its main thread's CPU per request over the reference's."""
    bundle, raw = build_bundle(work / "bundle")
    body = work / "body.json"
    body.write_bytes(body_of(raw.sample(args.rows, replace=True, random_state=0)))
    script = work / "post.lua"
    script.write_text(lua_script(body, args.delay_ms))
    reference = start_server("off", bundle, work, "")
    switch = "none" if args.control else "record"
    servers = [start_server("on", bundle, work, switch) for _ in range(args.servers)]
    for server in servers:  # warm-up
        side_by_side(server, reference, script, args.connections, 2)
    ratios: list[dict[str, list[float]]] = [{p: [] for p in PHASES} for _ in servers]
    for k, phase in enumerate(PHASES):
        if k:  # switch record on for phase 2, off again for phase 3
            for server in servers:
                os.kill(server.proc.pid, signal.SIGUSR1)
            time.sleep(1.5)  # past a hand-over
        for round_ in range(args.rounds):
            for i, server in enumerate(servers):
                used, ref = side_by_side(server, reference, script, args.connections, args.seconds)
                ratio = (used.main / used.requests) / (ref.main / ref.requests)
                ratios[i][phase].append(ratio)
                print(f"  {phase:>9} round {round_ + 1} server {i}: {ratio:.3f}", flush=True)
    return ratios


if __name__ == "__main__":
    main()
