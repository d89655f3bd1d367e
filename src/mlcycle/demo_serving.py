"""The demo's serving steps: serve the champion, call it, and roll a challenger out on it.

:func:`serving` starts ``mlcycle serve`` on the project's champion in its own process
group on a free port of 127.0.0.1, with an admin token made by :mod:`secrets` (given to
the server and to ``mlcycle rollout`` through ``MLCYCLE_ADMIN_TOKEN``, never printed),
and stops it when the steps end, whatever happens. :func:`call_the_champion` calls it
as a client; :func:`canary_rollout` rolls the registry's ``@challenger`` out as a canary
with ``mlcycle rollout`` and sends labelled traffic until the rollout is promoted or
rolled back.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = [
    "CANARY_BAKE_REQUESTS",
    "CANARY_BAKE_SECONDS",
    "CANARY_STEPS",
    "RolloutOutcome",
    "Server",
    "call_the_champion",
    "canary_rollout",
    "serving",
]

#: The demo's canary: the challenger's percent of traffic at each step.
CANARY_STEPS = "25,50,100"
#: Challenger requests each canary step needs before it may be promoted.
CANARY_BAKE_REQUESTS = 40
#: Seconds each canary step lasts at least.
CANARY_BAKE_SECONDS = 1.0
#: One-row requests sent between two looks at the rollout.
_ROUND = 20
#: The canary's traffic stops after this many requests or seconds (the rollout is then
#: rolled back by hand; a healthy server finishes far sooner).
_MAX_REQUESTS = 5000
_MAX_SECONDS = 120.0
_TOKEN_ENV = "MLCYCLE_ADMIN_TOKEN"


@dataclass(frozen=True)
class Server:
    """A running ``mlcycle serve`` of the demo.

    Parameters
    ----------
    url
        Its base URL, ``http://127.0.0.1:PORT``.
    token
        Its admin token.
    ready_seconds
        Seconds from the command's start until it answered ``/v2/health/ready``.
    """

    url: str
    token: str
    ready_seconds: float


@dataclass(frozen=True)
class RolloutOutcome:
    """How the demo's canary rollout ended.

    Parameters
    ----------
    state
        ``promoted`` or ``rolled_back``.
    reason
        Why, as recorded with the final transition.
    who
        Who decided (``analysis`` when the server's analysis did).
    champion_version, challenger_version
        The versions of the two arms.
    requests
        Requests sent during the rollout.
    failed
        Those that did not get a 200 answer.
    arms
        Answered requests per arm (``champion``, ``challenger``).
    seconds
        From the rollout's start until it finished.
    """

    state: str
    reason: str
    who: str
    champion_version: str
    challenger_version: str
    requests: int
    failed: int
    arms: dict[str, int]
    seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(command: list[str], root: Path, port: int, token: str) -> Iterator[str]:
    env = {**os.environ, "MLCYCLE_PROJECT_ROOT": str(root), _TOKEN_ENV: token}
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read().decode() if proc.stdout else ""
                    raise SystemExit(f"mlcycle serve did not start:\n{output[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def serving(console: Console, command: list[str], root: Path) -> Iterator[Server]:
    """Serve the project's champion, with a fresh admin token, while the block runs.

    Parameters
    ----------
    console
        Where the command line is shown.
    command
        How to call ``mlcycle``.
    root
        The project (the server's working directory).
    """
    port = _free_port()
    token = secrets.token_urlsafe(32)
    console.print(
        f"$ {_TOKEN_ENV}=<generated> mlcycle serve --port {port}   (in the background)",
        style="dim",
    )
    start = time.perf_counter()
    with _server(command, root, port, token) as url:
        yield Server(url, token, time.perf_counter() - start)
    console.print("server stopped")


def _post(url: str, doc: Any) -> tuple[dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(
        url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp), dict(resp.headers)


def _rows(
    data: Path, label: str, per_class: int | None = None
) -> tuple[list[dict[str, float]], list[str]]:
    """The first ``per_class`` rows of each class (``None``: every row) and true labels."""
    picked: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    with data.open(newline="") as f:
        for row in csv.DictReader(f):
            if per_class is None or seen.get(row[label], 0) < per_class:
                seen[row[label]] = seen.get(row[label], 0) + 1
                picked.append(row)
    truth = [row.pop(label) for row in picked]
    return [{k: float(v) for k, v in row.items()} for row in picked], truth


def call_the_champion(console: Console, server: Server, data: Path, label: str) -> None:
    """Predict a few rows three ways on ``server``, send feedback, show the metrics."""
    url = server.url
    console.print(f"server was ready {server.ready_seconds:.2f}s after the command started")
    records, truth = _rows(data, label, 3)
    doc, headers = _post(f"{url}/predict", {"records": records})
    table = Table(title=f"POST {url}/predict · model version {headers['x-model-version']}")
    for col in ("row", "true label", "predicted", "probabilities"):
        table.add_column(col)
    for i, (pred, true) in enumerate(zip(doc["predictions"], truth, strict=True)):
        probs = ", ".join(f"{c} {p:.3f}" for c, p in pred["probabilities"].items())
        table.add_row(str(i), true, pred["label"], probs)
    console.print(table)
    features = list(records[0])
    split = {"columns": features, "data": [[r[f] for f in features] for r in records]}
    mlflow_doc, _ = _post(f"{url}/invocations", {"dataframe_split": split})
    same = [p["label"] for p in mlflow_doc["predictions"]] == [
        p["label"] for p in doc["predictions"]
    ]
    console.print(f"MLflow /invocations (dataframe_split) gives the same labels: {same}")
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    counted = [line for line in metrics.splitlines() if line.startswith("mlcycle_requests_total")]
    console.print("GET /metrics (Prometheus):", *counted, sep="\n  ", soft_wrap=True)
    _feedback_round(console, url, data, label)


def _feedback_round(console: Console, url: str, data: Path, label: str) -> None:
    """Predict 200 rows, send their true labels to /feedback, show what the monitor saw."""
    records, truth = _rows(data, label, 100)
    feedback = []
    for start in range(0, len(records), 50):
        rid = f"demo-{start // 50}"
        req = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"records": records[start : start + 50]}).encode(),
            headers={"Content-Type": "application/json", "X-Request-ID": rid},
        )
        urllib.request.urlopen(req, timeout=30).close()
        feedback += [
            {"request_id": rid, "row": i, "label": t}
            for i, t in enumerate(truth[start : start + 50])
        ]
    answer, _ = _post(f"{url}/feedback", {"feedback": feedback})
    console.print(
        f"POST /feedback with the true labels of {len(feedback)} predicted rows: "
        f"{answer['stored']} stored"
    )
    wanted = ("mlcycle_quality_accuracy{", "mlcycle_predicted_class_total{")
    deadline = time.monotonic() + 15
    shown: list[str] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
            lines = resp.read().decode().splitlines()
        shown = [line for line in lines if line.startswith(wanted)]
        if all(any(line.startswith(w) for line in shown) for w in wanted):
            break
        time.sleep(0.25)
    console.print("the monitor (GET /metrics):", *shown, sep="\n  ", soft_wrap=True)


# -- the canary rollout ----------------------------------------------------------------------


def _mlcycle(
    console: Console, command: list[str], args: list[str], root: Path, server: Server
) -> None:
    """Run ``mlcycle ARGS`` in ``root`` with the server's admin token; stop the demo if it fails."""
    console.print(f"$ mlcycle {' '.join(args)}", style="dim")
    env = {
        **os.environ,
        "MLCYCLE_PROJECT_ROOT": str(root),
        _TOKEN_ENV: server.token,
        # resolving @challenger fetches its bundle: no progress bar in the demo's output
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    proc = subprocess.run([*command, *args], cwd=root, env=env)
    if proc.returncode != 0:
        console.print(f"[red]step failed[/red] (exit {proc.returncode}): mlcycle {' '.join(args)}")
        raise SystemExit(proc.returncode)


class _Traffic:
    """One-row requests with their true labels sent as feedback, counted by arm."""

    def __init__(self, url: str, data: Path, label: str) -> None:
        self.url = url
        self.records, self.truth = _rows(data, label)
        self.sent = 0
        self.failed = 0
        self.arms: dict[str, int] = {}

    def round(self, n: int) -> None:
        """Send ``n`` requests (each its own request id: its own routing bucket)."""
        feedback = []
        for _ in range(n):
            i = self.sent % len(self.records)
            rid = f"canary-{self.sent}"
            self.sent += 1
            req = urllib.request.Request(
                f"{self.url}/predict",
                data=json.dumps({"records": [self.records[i]]}).encode(),
                headers={"Content-Type": "application/json", "X-Request-ID": rid},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
                    arm = resp.headers.get("X-Model-Arm", "?")
            except (urllib.error.URLError, OSError):
                self.failed += 1
                continue
            self.arms[arm] = self.arms.get(arm, 0) + 1
            feedback.append({"request_id": rid, "row": 0, "label": self.truth[i]})
        if feedback:
            _post(f"{self.url}/feedback", {"feedback": feedback})


def _where(r: dict[str, Any]) -> str:
    steps = r.get("steps") or []
    state = str(r.get("state"))
    if state != "running" or not steps:
        return state.replace("_", " ")
    return f"step {int(r.get('step') or 0) + 1}/{len(steps)}: challenger at {r['weight']:g}%"


def canary_rollout(
    console: Console, command: list[str], root: Path, server: Server, data: Path, label: str
) -> RolloutOutcome:
    """Roll ``@challenger`` out as a canary on ``server`` until it is promoted or rolled back.

    Starts it with ``mlcycle rollout start``, sends one-row requests with their true labels
    (as ``/feedback``) from the project's data file, shows each step as the server's
    analysis takes it, and ends with ``mlcycle rollout history``.

    Parameters
    ----------
    console
        Where the progress is shown.
    command
        How to call ``mlcycle``.
    root
        The project (its registry holds ``@challenger``).
    server
        The running server (from :func:`serving`).
    data, label
        The data file whose rows are sent, and its label column (the feedback).

    Returns
    -------
    RolloutOutcome
        How it ended.
    """
    from mlcycle.rollout.client import AdminClient

    traffic = _Traffic(server.url, data, label)
    _mlcycle(
        console,
        command,
        ["rollout", "start", "--url", server.url, "--mode", "canary",
         "--challenger", "@challenger", "--steps", CANARY_STEPS,
         "--bake-requests", str(CANARY_BAKE_REQUESTS),
         "--bake-seconds", f"{CANARY_BAKE_SECONDS:g}",
         "--reason", "demo: the sweep's other model as a canary"],
        root,
        server,
    )  # fmt: skip
    client = AdminClient(server.url, server.token, "mlcycle-demo")
    r: dict[str, Any] = client.get("/admin/rollout")["rollout"]
    console.print(
        f"sending one-row requests with their true labels (POST /feedback), {_ROUND} at a "
        "time, until the server's analysis promotes or rolls back the challenger:"
    )
    start = time.monotonic()
    shown = ""
    while r["state"] in ("running", "paused"):
        where = _where(r)
        if where != shown:
            console.print(
                f"  {traffic.sent:5d} requests, {time.monotonic() - start:4.1f} s: {where}"
            )
            shown = where
        if traffic.sent >= _MAX_REQUESTS or time.monotonic() - start > _MAX_SECONDS:
            console.print("[yellow]the rollout did not finish in time; rolling it back[/yellow]")
            _mlcycle(
                console,
                command,
                ["rollout", "rollback", "--url", server.url,
                 "--reason", "the demo ran out of time"],
                root,
                server,
            )  # fmt: skip
        else:
            traffic.round(_ROUND)
        r = client.get("/admin/rollout")["rollout"]
    seconds = time.monotonic() - start
    events = client.get("/admin/rollout/history", {"rollout": r["id"], "limit": 1})["events"]
    last = events[0] if events else {}
    outcome = RolloutOutcome(
        state=str(r["state"]),
        reason=str(last.get("reason", "")),
        who=str(last.get("who", "")),
        champion_version=str(r["champion_version"]),
        challenger_version=str(r["challenger_version"]),
        requests=traffic.sent,
        failed=traffic.failed,
        arms=dict(traffic.arms),
        seconds=seconds,
    )
    console.print(f"  {traffic.sent:5d} requests, {seconds:4.1f} s: {_where(r)}")
    style = "green" if outcome.state == "promoted" else "yellow"
    console.print(
        f"rollout finished: [bold {style}]{outcome.state}[/bold {style}] - challenger version "
        f"{outcome.challenger_version} vs champion version {outcome.champion_version}, "
        f"decided by {escape(outcome.who)}: {escape(outcome.reason)}"
    )
    answered = ", ".join(f"{arm} {n}" for arm, n in sorted(outcome.arms.items()))
    console.print(
        f"requests during the rollout: {outcome.requests} sent ({answered}), "
        f"{outcome.failed} failed"
    )
    _mlcycle(console, command, ["rollout", "history", "--url", server.url], root, server)
    return outcome
