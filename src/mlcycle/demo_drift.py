"""``mlcycle demo --scenario drift``: the closed loop, with no human step.

A fresh project trains and promotes a champion and serves it, configured to retrain on a
data-drift alarm (``serve.retrain.on_alarms``) and to roll a retrained challenger out as
a canary. Then traffic drifts: every size measurement (radius, perimeter, area: 9 of the
30 features) of the breast-cancer rows grows by half, as if a scanner had been
recalibrated, and the true labels of most requests come back through ``POST /feedback``.
With no further command:

1. the monitor's drift test flags the size features: alarm ``dataset_drift``;
2. the server exports the feedback dataset (a new DVC version) and runs
   ``mlcycle retrain``: the candidate is trained on the training data plus the older
   feedback and judged against the champion on the holdout and on the newest labels;
3. it passes the gate and is registered as ``@challenger`` with its lineage;
4. the server starts a canary, whose analysis promotes it step by step; the registry's
   ``champion`` alias follows.

Every request is answered (the scenario fails on any non-200), and each step is shown
from ``mlcycle retrain history``, ``mlcycle rollout history`` and the registry.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mlcycle.demo_serving import Server, _mlcycle, _rows, _server

__all__ = ["DRIFT_FACTOR", "SCENARIO_CONFIG", "LoopOutcome", "run_drift_loop", "show_loop"]

#: How much the size features grow.
DRIFT_FACTOR = 1.5
#: Words naming the size features.
SIZE_WORDS = ("radius", "perimeter", "area")
#: Share of answered requests whose true label comes back.
LABELLED_SHARE = 0.8
#: Undrifted requests sent first.
CALM_REQUESTS = 60
#: The loop stops after this long, finished or not (then the scenario fails).
MAX_SECONDS = 300.0

#: Appended to the project's conf/config.yaml: small windows, one drift alarm that
#: retrains, a two-step canary with a short bake.
SCENARIO_CONFIG = """
# --- mlcycle demo --scenario drift: retrain on data drift, roll out as a canary ---
serve:
  monitor:
    window: {kind: count, size: 300, every: 50, min_seconds: 1.0, every_seconds: 3.0,
             min_rows: 150}
    alarms:
      - {name: dataset_drift, metric: drift.share, threshold: 0.2, min_samples: 200,
         cooldown_seconds: 3600}
  retrain:
    on_alarms: [dataset_drift]
    interval: 1.0
    rollout: canary
  rollout:
    steps: [50, 100]
    bake: {min_requests: 60, min_seconds: 3.0}
retrain:
  gate: {min_recent_labels: 20}
"""


@dataclass
class LoopOutcome:
    """What the loop did, with the request count and time of each milestone.

    ``marks`` maps a milestone (``drift``, ``alarm``, ``retrain started``, ``challenger``,
    ``canary``, ``promoted``) to (requests sent so far, seconds since the drift began).
    """

    requests: int = 0
    failed: int = 0
    labelled: int = 0
    lost_labels: int = 0
    marks: dict[str, tuple[int, float]] = field(default_factory=dict)
    retrain: dict[str, Any] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        """Whether the retrained model ended as the champion."""
        return "promoted" in self.marks


def _drifted(record: dict[str, float]) -> dict[str, float]:
    return {
        k: v * DRIFT_FACTOR if any(w in k for w in SIZE_WORDS) else v for k, v in record.items()
    }


def _get(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


class _Loop:
    """Drifting one-row traffic with labels, watching the server's retraining and rollout."""

    def __init__(self, url: str, token: str, data: Path, label: str, store: Path) -> None:
        self.url, self.token, self.store = url, token, store
        self.records, self.truth = _rows(data, label)
        self.random = random.Random(0)
        self.out = LoopOutcome()
        self.drift_start = 0.0
        self.unlabelled: list[tuple[float, dict[str, Any]]] = []

    def mark(self, name: str, say: Callable[[str], None], text: str) -> None:
        if name not in self.out.marks:
            seconds = time.monotonic() - self.drift_start if self.drift_start else 0.0
            self.out.marks[name] = (self.out.requests, seconds)
            say(f"[bold]{name}[/bold] after {self.out.requests} requests, {seconds:.1f} s: {text}")

    def send(self, n: int, drifted: bool) -> None:
        """``n`` one-row requests; then the labels of earlier ones (see :meth:`label`)."""
        for _ in range(n):
            i = self.random.randrange(len(self.records))
            record = _drifted(self.records[i]) if drifted else self.records[i]
            rid = f"loop-{self.out.requests}"
            self.out.requests += 1
            req = urllib.request.Request(
                f"{self.url}/predict",
                data=json.dumps({"records": [record]}).encode(),
                headers={"Content-Type": "application/json", "X-Request-ID": rid},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
            except (urllib.error.URLError, OSError):
                self.out.failed += 1
                continue
            if self.random.random() < LABELLED_SHARE:
                item = {"request_id": rid, "row": 0, "label": self.truth[i]}
                self.unlabelled.append((time.monotonic(), item))
        self.label()

    def label(self) -> None:
        """Send the true labels of requests answered at least half a second ago.

        The monitor logs a prediction a moment after answering it, and feedback for a
        prediction not logged yet is refused (404, nothing stored): those labels are
        sent again with the next round (and given up after 30 s).
        """
        now = time.monotonic()
        ready = [item for t, item in self.unlabelled if now - t >= 0.5]
        if not ready:
            return
        req = urllib.request.Request(
            f"{self.url}/feedback",
            data=json.dumps({"feedback": ready}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                self.out.labelled += int(json.load(resp).get("stored", 0))
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            exc.close()
            kept = [(t, item) for t, item in self.unlabelled if now - t < 30.0]
            self.out.lost_labels += len(self.unlabelled) - len(kept)
            self.unlabelled = kept
            return
        self.unlabelled = [(t, item) for t, item in self.unlabelled if now - t < 0.5]

    def watch(self, say: Callable[[str], None]) -> bool:
        """Look at alarms, retrainings and the rollout; True once it is all over."""
        import sqlalchemy as sa

        from mlcycle.monitor.store import ALARMS, connect
        from mlcycle.retrain.store import RetrainStore

        engine = connect(self.store)
        try:
            with engine.connect() as conn:
                alarm = conn.execute(
                    sa.select(ALARMS).where(ALARMS.c.name == "dataset_drift").limit(1)
                ).first()
            if alarm is not None:
                self.mark("alarm", say, f"{alarm.name}: {alarm.message}")
            retrains = RetrainStore(engine).history(limit=1)
        finally:
            engine.dispose()
        if retrains:
            r = retrains[0]
            self.out.retrain = r.to_dict()
            self.mark("retrain started", say, f"retrain {r.id} ({r.trigger}, alarms {r.alarm_ids})")
            if r.state == "passed":
                self.mark(
                    "challenger",
                    say,
                    f"version {r.version} passed the gate and is @challenger ({r.reason})",
                )
            elif not r.running:
                say(f"[red]retrain {r.id} ended {r.state}[/red]: {r.reason}")
                return True
        status = _get(f"{self.url}/admin/rollout", self.token).get("rollout")
        if status:
            self.out.rollout = status
            self.mark("canary", say, f"rollout {status['id']} of version "
                      f"{status['challenger_version']} started")  # fmt: skip
            if status["state"] == "promoted":
                self.mark("promoted", say, "the retrained model is the champion")
                return True
            if status["state"] in ("rolled_back", "completed"):
                say(f"[red]rollout {status['state']}[/red]")
                return True
        return False


def run_drift_loop(
    console: Console, command: list[str], root: Path, data: Path, label: str
) -> LoopOutcome:
    """Serve the project's champion and drive the loop until promotion (or a failure).

    Parameters
    ----------
    console
        Where progress is shown.
    command
        How to call ``mlcycle``.
    root
        A project with a promoted champion and :data:`SCENARIO_CONFIG` in its config.
    data
        The project's data file (the traffic's rows and their true labels).
    label
        Its label column.
    """
    say = console.print
    import secrets

    from mlcycle.demo_serving import _free_port

    port, token = _free_port(), secrets.token_urlsafe(32)
    say(f"$ mlcycle serve --port {port}   (in the background)", style="dim")
    with _server(command, root, port, token) as url:
        loop = _Loop(url, token, data, label, root / "monitor.db")
        loop.send(CALM_REQUESTS, drifted=False)
        say(f"{CALM_REQUESTS} requests like the training data; now the size features grow "
            f"x{DRIFT_FACTOR} (a recalibrated scanner), {LABELLED_SHARE:.0%} labelled")  # fmt: skip
        loop.drift_start = time.monotonic()
        loop.mark("drift", say, "drifted traffic begins")
        last_look = 0.0
        while time.monotonic() - loop.drift_start < MAX_SECONDS:
            loop.send(10, drifted=True)
            if time.monotonic() - last_look > 1.0:
                last_look = time.monotonic()
                if loop.watch(say):
                    break
            time.sleep(0.05)
        else:
            say(f"[red]the loop did not finish in {MAX_SECONDS:.0f} s[/red]")
        if loop.out.rollout:
            _mlcycle(console, command, ["rollout", "history", "--url", url], root,
                     Server(url, token, 0.0))  # fmt: skip
    return loop.out


def show_loop(console: Console, out: LoopOutcome) -> None:
    """A table of the loop's milestones."""
    table = Table(title="The loop: drift -> alarm -> retrain -> gate -> canary -> promotion")
    table.add_column("milestone")
    table.add_column("requests", justify="right")
    table.add_column("seconds after drift", justify="right")
    for name, (requests, seconds) in out.marks.items():
        table.add_row(name, str(requests), f"{seconds:.1f}")
    console.print(table)
    console.print(f"{out.requests} requests, {out.failed} failed, {out.labelled} labels sent back")
