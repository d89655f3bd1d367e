"""Pipeline monitoring: stage labels, shared pipeline ids, end-to-end latency; the example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.monitor.pipeline import PipelineClient, PipelineError, Stage, pipeline_summary
from mlcycle.monitor.store import PREDICTIONS, connect

ROOT = Path(__file__).resolve().parents[2]


def test_end_to_end_latency_spans_the_first_request_to_the_last_answer(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    keys = ("request_id", "time", "latency_ms", "stage", "pipeline_id", "error")
    rows = [
        # run a: stage one answers at 10.010 after 10 ms, stage two at 10.050 after 20 ms
        ("a1", 10.010, 10.0, "one", "a", None),
        ("a2", 10.050, 20.0, "two", "a", None),
        ("b1", 20.030, 30.0, "one", "b", None),
        ("b2", 20.100, 5.0, "two", "b", "500: internal"),
        # run c never reached stage two; a prediction outside any pipeline is left out
        ("c1", 30.0, 1.0, "one", "c", None),
        ("z", 30.0, 1.0, "", None, None),
    ]
    base = {"row": 0, "model_name": "m", "model_version": "1", "arm": "champion"}
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [base | dict(zip(keys, r, strict=True)) for r in rows])
    summary = pipeline_summary(engine, 0, 100)
    assert summary is not None
    assert [s["stage"] for s in summary["stages"]] == ["one", "two"]
    assert summary["stages"][1]["error_rate"] == 0.5
    assert (summary["runs"], summary["complete_runs"]) == (3, 2)
    assert summary["latency_max_ms"] == pytest.approx(100.0)  # run b: 20.000 -> 20.100
    assert pipeline_summary(engine, 50, 100) is None


def test_a_stage_that_cannot_be_reached_names_the_stage() -> None:
    client = PipelineClient([Stage("segment", "http://127.0.0.1:9", lambda r, e: [dict(r)])])
    with pytest.raises(PipelineError, match=r"stage 'segment' at http://127\.0\.0\.1:9"):
        client.run({"x": 1})


def test_the_two_stage_example_monitors_each_stage_and_the_whole(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pipeline" / "run.py"), "--requests", "120",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    pipe = summary["store_pipeline"]
    assert [s["stage"] for s in pipe["stages"]] == ["segment", "recommend"]
    assert pipe["complete_runs"] == 120 and pipe["latency_p50_ms"] > 0
    assert "income" in summary["drifted"]["segment"]  # incomes shifted in the second half
    assert summary["last_stage_pipeline_p99_ms"] > 0
    html = (tmp_path / "pipeline-report.html").read_text()
    assert "<h2>Pipeline</h2>" in html and "end to end" in html
