"""Benchmark: what monitoring costs in CPU time, timed side by side so the noise cancels.

On a shared 2-core machine the same server's requests/s move by 20-30 % from one
2-second run to the next, and two processes of the same configuration differ by a few
percent for their whole life: a 5 % difference cannot be read from throughput runs
taken one after the other (``bench/serve.py`` says "cannot tell at this noise" then).
This benchmark times CPU instead, in a way that cancels both kinds of noise:

* **side by side**: each measured server is loaded *at the same time* as one reference
  server (``--no-monitor``), both at the same fixed request rate (wrk with a Lua
  ``delay``: ``--connections`` connections, each waiting ``--delay-ms`` between
  requests), and its worker's CPU time per request is divided by the reference's over
  the same seconds; a slower or faster machine moves both alike;
* **several processes per configuration** (``--processes``): each configuration's
  figure is the mean over its processes of their median ratio over ``--rounds``, so the
  luck of one process's memory layout does not decide it; the spread of the
  monitoring-off processes is the noise floor (they differ from the reference only by
  being other processes);
* at a fixed rate below saturation, so that neither server starves the other.

It reports, per configuration: the worker's CPU time per request relative to the
reference (the monitoring-on figure less the monitoring-off one is what monitoring adds
to the worker, including the cost of sharing the CPU's caches with the monitor
process), and the monitor process's CPU time per request relative to the reference
worker's (the work moved out of the worker; it runs at ``SCHED_IDLE`` on whatever core
is free).

Run: ``.venv/bin/python bench/monitor_cpu.py`` (about 2.5 minutes with the defaults:
4 processes each of monitoring on and off, 4 rounds of 3 s); ``--configs off,on,on@0.1``
adds servers that hand over every 0.1 s (``serve.monitor.handover_interval``), and
``on+KEY=VALUE`` servers with any other ``serve.monitor`` setting (``on+log_features=none``).
Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._load import wrk_path  # noqa: E402
from bench.serve import (  # noqa: E402
    HOST,
    Server,
    body_of,
    build_bundle,
    free_port,
    server_command,
    start,
    stop_all,
    tree_cpu_s,
    wait_ready,
)

TARGET_SHARE = 0.05


def start_config(
    name: str, bundle: Path, work: Path, environ: dict[str, str] | None = None
) -> Server:
    """Start ``off`` (``--no-monitor``) or ``on`` (the defaults), one worker; ``on`` may
    carry ``serve.monitor`` settings: ``on@SECONDS`` is ``handover_interval=SECONDS``,
    ``on+KEY=VALUE`` (repeatable) any other. ``environ``: more environment variables."""
    port = free_port()
    cmd, env = server_command("mlcycle_nomon-1" if name == "off" else "mlcycle-1", bundle, port)
    cmd += [f"serve.monitor.{setting}" for setting in monitor_settings(name)]
    env.update(environ or {})
    log = work / f"{name}-{port}.log"
    t0 = time.perf_counter()
    proc = start(cmd, env, work, log)
    ready = wait_ready(f"http://{HOST}:{port}/v2/health/ready", proc, log) - t0
    return Server(name, proc, port, log, ready)


def is_config_name(name: str) -> bool:
    """Whether ``name`` is ``off``, ``on``, ``on@SECONDS`` or ``on[@SECONDS]+KEY=VALUE...``."""
    base, *settings = name.split("+")
    try:
        ok = base in ("off", "on") or (base.startswith("on@") and float(base[3:]) > 0)
    except ValueError:
        return False
    return ok and not (settings and base == "off") and all("=" in x for x in settings)


def monitor_settings(name: str) -> list[str]:
    """The ``KEY=VALUE`` ``serve.monitor`` settings a configuration name carries."""
    base, *settings = name.split("+")
    if base.startswith("on@"):
        settings.insert(0, f"handover_interval={float(base[3:])}")
    return settings


def lua_script(body: Path, delay_ms: float) -> str:
    """POST ``body``; each connection waits ``delay_ms`` before its next request."""
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = assert(io.open("{body}", "rb"))\n'
        "wrk.body = f:read('*a')\n"
        "f:close()\n"
        f"function delay() return {delay_ms} end\n"
    )


def side_by_side(
    a: Server, b: Server, script: Path, connections: int, seconds: int
) -> tuple[Usage, Usage]:
    """Load ``a`` and ``b`` at once; what each used meanwhile."""
    wrk = wrk_path()
    assert wrk is not None
    before = [(tree_cpu_s(s.proc), main_thread_cpu_s(s.proc)) for s in (a, b)]
    procs = [
        subprocess.Popen(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), s.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in (a, b)
    ]
    outs = [p.communicate()[0] for p in procs]
    after = [(tree_cpu_s(s.proc), main_thread_cpu_s(s.proc)) for s in (a, b)]
    out = []
    for ((t0, m0), main0), ((t1, m1), main1), text in zip(before, after, outs, strict=True):
        lines = [line for line in text.splitlines() if "requests in" in line]
        if not lines:
            raise RuntimeError(f"wrk said:\n{text}")
        n = int(lines[0].split()[0])
        out.append(Usage((t1 - m1) - (t0 - m0), main1 - main0, m1 - m0, n))
    return out[0], out[1]


@dataclass
class Usage:
    """What a server used over a run: CPU seconds of its worker (all its threads), of the
    worker's main thread (the event loop: the request path), of its monitor process; and
    the requests it answered."""

    worker: float
    main: float
    monitor: float
    requests: int

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.worker + other.worker,
            self.main + other.main,
            self.monitor + other.monitor,
            self.requests + other.requests,
        )


def main_thread_cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """User + system CPU seconds of the one-worker server's main thread (the event loop
    that answers requests; the worker's other threads are the monitor's sender, the
    automation and webhook threads)."""
    root = psutil.Process(proc.pid)
    for thread in root.threads():
        if thread.id == root.pid:
            return float(thread.user_time + thread.system_time)
    raise RuntimeError(f"no main thread in process {root.pid}")


def interval(values: list[float], level: float = 0.9, resamples: int = 2000) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values``."""
    rng = random.Random(0)
    means = sorted(statistics.mean(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1 - level) / 2
    return means[int(tail * resamples)], means[int((1 - tail) * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4, help="servers per configuration")
    parser.add_argument("--rounds", type=int, default=4, help="side-by-side runs per server")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per server")
    parser.add_argument(
        "--delay-ms", type=float, default=5.0, help="each connection's pause between requests"
    )
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument(
        "--configs",
        default="off,on",
        help="comma-separated: off (--no-monitor), on (defaults), on@SECONDS (with "
        "serve.monitor.handover_interval=SECONDS), on+KEY=VALUE (other serve.monitor "
        "settings, e.g. on+buffer_capacity=100000)",
    )
    args = parser.parse_args()
    args.configs = [c for c in args.configs.split(",") if c]
    for c in args.configs:
        if not is_config_name(c):
            parser.error(
                f"--configs: {c!r} is not off, on, on@SECONDS (e.g. on@0.1) or "
                "on+KEY=VALUE (e.g. on+buffer_capacity=100000)"
            )
    if wrk_path() is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    if min(args.processes, args.rounds, args.seconds, args.connections, args.rows) < 1:
        parser.error("--processes, --rounds, --seconds, --connections and --rows must be >= 1")
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlcycle-monitor-cpu-") as tmp:
        work = Path(tmp)
        try:
            lines = run(args, work)
        finally:
            stop_all()
    print(f"\n## Monitoring's CPU time per request, side by side ({datetime.date.today()})\n")
    print("\n".join(lines))
    print(
        f"\nmachine: {os.cpu_count()} cores; load average {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after. Run took {time.perf_counter() - started:.0f} s."
    )


def run(args: argparse.Namespace, work: Path) -> list[str]:
    bundle, raw = build_bundle(work / "bundle")
    body = work / "body.json"
    body.write_bytes(body_of(raw.sample(args.rows, replace=True, random_state=0)))
    script = work / "post.lua"
    script.write_text(lua_script(body, args.delay_ms))
    reference = start_config("off", bundle, work)
    servers = [
        (name, start_config(name, bundle, work))
        for name in args.configs
        for _ in range(args.processes)
    ]
    last_start = time.monotonic()
    # Warm-up, long enough that every monitor has made its first window evaluation
    # (window.min_seconds, 10 s, after it started, with 1,000 rows): the measured rounds
    # are the steady state, an evaluation every 10 s included.
    for _, server in servers:
        side_by_side(server, reference, script, args.connections, 2)
    time.sleep(max(0.0, last_start + 11 - time.monotonic()))
    for _, server in servers:
        side_by_side(server, reference, script, args.connections, 1)
    ratios, rate = measure(servers, reference, script, args)
    return report(ratios, rate, args)


def measure(
    servers: list[tuple[str, Server]], reference: Server, script: Path, args: argparse.Namespace
) -> tuple[dict[str, list[tuple[float, float, float]]], float]:
    """Per configuration, per process: its worker's, its worker's main thread's and its
    monitor's CPU per request over the reference worker's (main thread's for the main
    thread); and the median request rate of a server."""
    # Per server: its usage and the reference's, summed over the rounds.
    sums = [[Usage(0, 0, 0, 0), Usage(0, 0, 0, 0)] for _ in servers]
    rates: list[float] = []
    for round_ in range(args.rounds):
        order = list(range(len(servers)))
        random.Random(round_).shuffle(order)
        for i in order:
            used, ref = side_by_side(
                servers[i][1], reference, script, args.connections, args.seconds
            )
            sums[i] = [sums[i][0] + used, sums[i][1] + ref]
            rates += [used.requests / args.seconds, ref.requests / args.seconds]
            n, n_ref = used.requests, ref.requests
            print(
                f"  round {round_ + 1} {servers[i][0]:>3} #{i}: worker {used.worker / n * 1e6:6.1f}"
                f" µs/req (reference {ref.worker / n_ref * 1e6:6.1f}; main thread "
                f"{used.main / n * 1e6:6.1f} vs {ref.main / n_ref * 1e6:6.1f}), monitor "
                f"{used.monitor / n * 1e6:5.1f} µs/req, {n / args.seconds:.0f} req/s",
                flush=True,
            )
    ratios: dict[str, list[tuple[float, float, float]]] = {}
    for (name, _), (used, ref) in zip(servers, sums, strict=True):
        # Sums over the rounds, not a median: a window evaluation every 10 s falls in
        # some rounds only, and counts as often as it happens.
        per_ref, main_ref = ref.worker / ref.requests, ref.main / ref.requests
        n = used.requests
        ratios.setdefault(name, []).append(
            (used.worker / n / per_ref, used.main / n / main_ref, used.monitor / n / per_ref)
        )
    return ratios, statistics.median(rates)


def report(
    ratios: dict[str, list[tuple[float, float, float]]], rate: float, args: argparse.Namespace
) -> list[str]:
    """The markdown table and what it says against the target."""
    lines = [
        f"{args.rows}-row `POST /predict`, {rate:.0f} requests/s per "
        f"server (wrk -t1 -c{args.connections}, {args.delay_ms:g} ms between a connection's "
        f"requests), {args.processes} processes per configuration, {args.rounds} rounds of "
        f"{args.seconds} s each beside the reference (`--no-monitor`).",
        "",
        "| configuration | worker CPU per request / reference's, per process (over "
        "all rounds) | mean | of it, the main thread's / reference's | monitor process CPU "
        "per request / reference worker's |",
        "|---|---|---:|---:|---:|",
    ]
    worker = {name: [r[0] for r in rs] for name, rs in ratios.items()}
    main = {name: statistics.mean(r[1] for r in rs) for name, rs in ratios.items()}
    monitor = {name: statistics.mean(r[2] for r in rs) for name, rs in ratios.items()}
    for name in args.configs:
        xs = worker[name]
        lines.append(
            f"| {describe(name)} | {', '.join(f'{x:.3f}' for x in xs)} "
            f"| {statistics.mean(xs):.3f} | {main[name]:.3f} | {monitor[name]:.3f} |"
        )
    lines.append("")
    off = worker.get("off")
    if not off:
        return lines
    lines.append(
        "- monitoring off, spread between processes (the noise floor): "
        f"{min(off):.3f}-{max(off):.3f}"
    )
    for name in (n for n in args.configs if n != "off"):
        on = worker[name]
        added = statistics.mean(on) - statistics.mean(off)
        low, high = interval([x - statistics.mean(off) for x in on])
        lines.append(
            f"- {describe(name)}: added to the worker's CPU per request **{added:+.1%}** "
            f"(90 % interval over its processes {low:+.1%} to {high:+.1%}; target "
            f"{TARGET_SHARE:.0%}), its main thread's **{main[name] - main['off']:+.1%}**; the "
            f"monitor process's CPU per request **{monitor[name]:.1%}** of the worker's (on a "
            f"free core when there is one); together **{added + monitor[name]:+.1%}**"
        )
    return lines


def describe(name: str) -> str:
    if name == "on":
        return "monitoring on (defaults)"
    if name == "off":
        return "monitoring off"
    return "monitoring on, " + ", ".join(
        f"hand-over every {float(x.split('=')[1]):g} s"
        if x.startswith("handover_interval=")
        else f"`{x}`"
        for x in monitor_settings(name)
    )


if __name__ == "__main__":
    main()
