"""The demo's serving step: start ``mlcycle serve`` on the champion and call it as a client.

The server runs in its own process group on a free port of 127.0.0.1 and is stopped when
the step ends, whatever happens.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["call_the_champion"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(command: list[str], root: Path, port: int) -> Iterator[str]:
    env = {**os.environ, "MLCYCLE_PROJECT_ROOT": str(root)}
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


def _post(url: str, doc: Any) -> tuple[dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(
        url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp), dict(resp.headers)


def _rows(data: Path, label: str, per_class: int) -> tuple[list[dict[str, float]], list[str]]:
    """The first ``per_class`` rows of each class: features and true labels."""
    picked: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    with data.open(newline="") as f:
        for row in csv.DictReader(f):
            if seen.get(row[label], 0) < per_class:
                seen[row[label]] = seen.get(row[label], 0) + 1
                picked.append(row)
    truth = [row.pop(label) for row in picked]
    return [{k: float(v) for k, v in row.items()} for row in picked], truth


def call_the_champion(
    console: Console, command: list[str], root: Path, data: Path, label: str
) -> None:
    """Serve the project's champion, predict a few rows three ways, show the metrics."""
    port = _free_port()
    console.print(f"$ mlcycle serve --port {port}   (in the background)", style="dim")
    start = time.perf_counter()
    with _server(command, root, port) as url:
        ready = time.perf_counter() - start
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
        counted = [
            line for line in metrics.splitlines() if line.startswith("mlcycle_requests_total")
        ]
        console.print("GET /metrics (Prometheus):", *counted, sep="\n  ", soft_wrap=True)
        _feedback_round(console, url, data, label)
    console.print(f"server was ready {ready:.2f}s after the command started; stopped")


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
