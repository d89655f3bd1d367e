"""Multi-stage pipelines: one prediction made of several served models.

Each stage is a ``mlcycle serve`` of its own bundle, started with a stage label
(``serve.monitor.stage=segment``); its metrics, drift, alarms and logged predictions
carry that label. A pipeline run sends the same two headers to every stage:

``X-Pipeline-ID``
    Joins the stages' logged predictions of one run (``predictions.pipeline_id``).
``X-Pipeline-Start``
    When the run started (unix seconds). Each stage's monitor reports the time from it
    to the stage's answer (``pipeline.latency_p99_ms``): at the last stage, the
    end-to-end latency.

:class:`PipelineClient` runs records through the stages over HTTP with those headers;
:func:`pipeline_summary` measures stages and end-to-end latency from the store (what
``mlcycle monitor report`` shows in its pipeline section).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlcycle.exceptions import MlcycleError
from mlcycle.monitor.log_read import snapshot, window_rows

__all__ = [
    "PIPELINE_ID_HEADER",
    "PIPELINE_START_HEADER",
    "PipelineClient",
    "PipelineError",
    "PipelineRun",
    "Stage",
    "pipeline_summary",
]

PIPELINE_ID_HEADER = "X-Pipeline-ID"
PIPELINE_START_HEADER = "X-Pipeline-Start"


class PipelineError(MlcycleError):
    """A stage of a pipeline run failed (its status and answer are in the message)."""


@dataclass(frozen=True)
class Stage:
    """One stage: its name, its server, and how its request is made.

    Parameters
    ----------
    name
        The stage label (the server's ``serve.monitor.stage``).
    url
        The server's base URL, e.g. ``http://127.0.0.1:8081``.
    request
        Makes the stage's ``/predict`` records from the run's input record and the
        earlier stages' predictions (one dict per stage, in order).
    """

    name: str
    url: str
    request: Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]], list[dict[str, Any]]]


@dataclass
class PipelineRun:
    """What one run through the stages answered and how long it took."""

    pipeline_id: str
    predictions: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


class PipelineClient:
    """Runs records through the stages in order, with the pipeline headers.

    Parameters
    ----------
    stages
        The stages, first to last.
    timeout
        Seconds to wait for each stage.
    """

    def __init__(self, stages: Sequence[Stage], timeout: float = 30.0) -> None:
        if not stages:
            raise PipelineError("a pipeline needs at least one stage")
        self.stages = list(stages)
        self.timeout = timeout

    def run(self, record: Mapping[str, Any]) -> PipelineRun:
        """Send ``record`` through every stage; the first prediction of each is kept.

        Raises
        ------
        PipelineError
            A stage answered with an error or could not be reached.
        """
        run = PipelineRun(uuid.uuid4().hex)
        start = time.time()
        headers = {
            "Content-Type": "application/json",
            PIPELINE_ID_HEADER: run.pipeline_id,
            PIPELINE_START_HEADER: f"{start:.6f}",
        }
        for stage in self.stages:
            t0 = time.perf_counter()
            body = json.dumps({"records": stage.request(record, run.predictions)}).encode()
            req = urllib.request.Request(f"{stage.url}/predict", body, headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    answer = json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                raise PipelineError(f"stage {stage.name!r} answered {exc.code}: {detail}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise PipelineError(
                    f"stage {stage.name!r} at {stage.url} cannot be reached: {exc}"
                ) from None
            run.predictions.append(answer["predictions"][0])
            run.stage_seconds.append(time.perf_counter() - t0)
        run.seconds = time.time() - start
        return run


def pipeline_summary(
    engine: sa.Engine, since: float, until: float, *, stages: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """Per-stage numbers and end-to-end latency of the pipeline runs in a window.

    A run's end-to-end latency goes from the start of its first stage's request (its
    answer time minus its latency) to the answer of its last; a run is complete when
    every stage seen in the window logged it.

    Parameters
    ----------
    engine
        The monitoring store.
    since, until
        The window, in unix seconds.
    stages
        Stage order for the table (default: by first appearance in runs).

    Returns
    -------
    dict or None
        ``stages`` (per stage: rows, requests, error rate, latency p50/p99 in ms),
        ``runs``, ``complete_runs`` and the end-to-end ``latency_p50_ms`` /
        ``latency_p99_ms`` / ``latency_max_ms`` of complete runs; ``None`` when no
        prediction in the window belongs to a pipeline.
    """
    with snapshot(engine) as conn:
        logged = window_rows(conn, since=since, until=until, pipeline_only=True, features=False)
    rows = [r for r in logged if r.row == 0]
    if not rows:
        return None
    order = list(stages or dict.fromkeys(r.stage for r in rows))
    per_stage: dict[str, list[Any]] = {s: [] for s in order}
    runs: dict[str | None, list[Any]] = {}
    for r in rows:
        per_stage.setdefault(r.stage, []).append(r)
        runs.setdefault(r.pipeline_id, []).append(r)
    table = []
    for name, got in per_stage.items():
        latency = np.array([r.latency_ms for r in got if r.latency_ms is not None], dtype=float)
        table.append(
            {
                "stage": name,
                "requests": len(got),
                "errors": sum(r.error is not None for r in got),
                "error_rate": sum(r.error is not None for r in got) / len(got) if got else None,
                "latency_p50_ms": float(np.quantile(latency, 0.5)) if latency.size else None,
                "latency_p99_ms": float(np.quantile(latency, 0.99)) if latency.size else None,
            }
        )
    wanted = set(per_stage)
    e2e = []
    for got in runs.values():
        if {r.stage for r in got} != wanted:
            continue
        begin = min(r.time - (r.latency_ms or 0.0) / 1000.0 for r in got)
        e2e.append((max(r.time for r in got) - begin) * 1000.0)
    done = np.array(e2e, dtype=float)
    return {
        "stages": table,
        "runs": len(runs),
        "complete_runs": int(done.size),
        "latency_p50_ms": float(np.quantile(done, 0.5)) if done.size else None,
        "latency_p99_ms": float(np.quantile(done, 0.99)) if done.size else None,
        "latency_max_ms": float(done.max()) if done.size else None,
    }
