"""Bounded HTTP load for ``bench/serve.py``: wrk with a Lua script, or an asyncio fallback.

Both send one fixed ``POST`` body over ``connections`` keep-alive connections for
``duration`` seconds and return a :class:`LoadResult` with requests/s and *raw*
latency percentiles (every request's own time from send to full response).

wrk and coordinated omission: wrk 4.x calls ``stats_correct`` on its latency histogram
before it prints *and* before it calls the Lua ``done(summary, latency, requests)``
hook, so ``latency:percentile(99)`` in Lua is the corrected value too (it adds synthetic
samples for every response slower than twice the mean interval per connection). The Lua
script here therefore dumps the whole histogram (``latency(i)`` → value, count) and
:func:`uncorrect` subtracts the synthetic samples, which is exact: the correction is a
deterministic function of the recorded histogram, the run time, the request count and
the connection count. wrk's corrected p99 is kept alongside (``p99_wrk``).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LoadResult", "run_load", "uncorrect", "wrk_path"]

# The Lua script: POST the body file given as its first argument; in done(), print one
# JSON line with the summary, the error counts, wrk's own (corrected) percentiles and the
# whole latency histogram as "value:count" pairs (microseconds).
_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local f = assert(io.open(%(body)s, "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local pairs_ = {}
  for i = 1, #latency do
    local v, c = latency(i)
    pairs_[#pairs_ + 1] = string.format("%%d:%%d", v, c)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%%d,"requests":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_wrk":%%d,"p99_wrk":%%d,"hist":"%%s"}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    table.concat(pairs_, ",")))
end
"""


@dataclass
class LoadResult:
    """One bounded load run against one URL."""

    client: str
    connections: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    # wrk's coordinated-omission-corrected percentiles (None for the asyncio client).
    p50_wrk_ms: float | None = None
    p99_wrk_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str | None:
    """The wrk executable, or ``None``."""
    return shutil.which("wrk")


def uncorrect(
    hist: dict[int, int], duration_us: int, requests: int, connections: int
) -> dict[int, int]:
    """Undo wrk's ``stats_correct`` on a histogram (value in µs → count).

    wrk adds, for every recorded latency ``n >= 2e`` (``e`` = run time / requests per
    connection, integer division as in C), ``count(n)`` synthetic samples at
    ``n - e, n - 2e, ...`` while above ``e``. So a value ``m > e`` received the original
    counts of every ``m + k e`` (``k >= 1``); walking values from the top down with one
    running sum per residue class modulo ``e`` recovers the originals.
    """
    per_conn = requests // connections
    if per_conn <= 0:
        return dict(hist)
    e = duration_us // per_conn
    if e <= 0:
        return dict(hist)
    acc: dict[int, int] = defaultdict(int)
    out: dict[int, int] = {}
    for v in sorted(hist, reverse=True):
        count = hist[v]
        if v > e:
            count -= acc[v % e]
        acc[v % e] += count
        if count > 0:
            out[v] = count
    return out


def percentile(hist: dict[int, int], p: float) -> float:
    """The ``p``-th percentile of a histogram (nearest rank), in the histogram's unit."""
    total = sum(hist.values())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * total))
    seen = 0
    for v in sorted(hist):
        seen += hist[v]
        if seen >= rank:
            return float(v)
    return float(max(hist))


def run_load(
    url: str,
    body: bytes,
    *,
    connections: int,
    threads: int,
    duration: int,
    workdir: Path,
    client: str = "auto",
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST ``body`` to ``url`` over ``connections`` connections for ``duration`` seconds.

    ``client``: ``wrk`` (``threads`` wrk threads), ``python`` (the asyncio client, in this
    process) or ``auto`` (wrk when installed). ``headers`` (wrk only) are added to every
    request, e.g. another ``Content-Type``.
    """
    if client == "auto":
        client = "wrk" if wrk_path() else "python"
    if client == "wrk":
        return _run_wrk(url, body, connections, threads, duration, workdir, headers or {})
    if headers:
        raise RuntimeError("extra headers need wrk; install it (apt-get install wrk)")
    return asyncio.run(_run_python(url, body, connections, duration))


def _run_wrk(
    url: str,
    body: bytes,
    connections: int,
    threads: int,
    duration: int,
    workdir: Path,
    headers: dict[str, str],
) -> LoadResult:
    exe = wrk_path()
    if exe is None:
        raise RuntimeError("wrk is not installed; use --client python")
    key = f"{len(body)}-{abs(hash((body, tuple(sorted(headers.items()))))):x}"
    body_file = workdir / f"body-{key}.bin"
    if not body_file.exists():
        body_file.write_bytes(body)
    script = workdir / f"post-{key}.lua"
    if not script.exists():
        lines = "\n".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
        )
        script.write_text(_LUA % {"body": json.dumps(str(body_file)), "headers": lines})
    cmd = [
        exe,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    doc = json.loads(line[len("WRKJSON ") :])
    hist: dict[int, int] = {}
    for pair in filter(None, doc["hist"].split(",")):
        v, c = pair.split(":")
        hist[int(v)] = int(c)
    raw = uncorrect(hist, doc["duration_us"], doc["requests"], connections)
    recorded = sum(raw.values())
    if recorded + doc["timeout"] != doc["requests"]:
        # The inversion should be exact; if a wrk build differs, say so rather than guess.
        raise RuntimeError(
            f"wrk histogram does not add up: {recorded} recorded + {doc['timeout']} "
            f"timeouts != {doc['requests']} requests"
        )
    errors = doc["connect"] + doc["read"] + doc["write"] + doc["status"] + doc["timeout"]
    seconds = doc["duration_us"] / 1e6
    return LoadResult(
        client="wrk",
        connections=connections,
        seconds=seconds,
        requests=doc["requests"],
        errors=errors,
        rps=doc["requests"] / seconds,
        p50_ms=percentile(raw, 50) / 1000,
        p99_ms=percentile(raw, 99) / 1000,
        p50_wrk_ms=doc["p50_wrk"] / 1000,
        p99_wrk_ms=doc["p99_wrk"] / 1000,
    )


# -- asyncio fallback ----------------------------------------------------------------------


async def _run_python(url: str, body: bytes, connections: int, duration: int) -> LoadResult:
    """A minimal keep-alive HTTP/1.1 client: fixed request bytes, Content-Length replies."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[int] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def one_connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop_at:
                start = time.perf_counter_ns()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - start)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    results = await asyncio.gather(
        *(one_connection() for _ in range(connections)), return_exceptions=True
    )
    seconds = time.perf_counter() - started
    errors += sum(isinstance(r, BaseException) for r in results)
    hist: dict[int, int] = defaultdict(int)
    for ns in latencies:
        hist[ns // 1000] += 1
    return LoadResult(
        client="python",
        connections=connections,
        seconds=seconds,
        requests=len(latencies),
        errors=errors,
        rps=len(latencies) / seconds,
        p50_ms=percentile(hist, 50) / 1000,
        p99_ms=percentile(hist, 99) / 1000,
    )
