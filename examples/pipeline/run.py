"""A two-stage pipeline, monitored per stage and end to end: user profile -> recommender.

Stage ``segment`` predicts a shopper's segment (bargain, casual, premium) from their
profile; stage ``recommend`` predicts the product category to show from that segment and
the visit. Each stage is its own ``mlcycle serve`` with a stage label; both log to one
monitoring store. Halfway through, incomes shift up (a new market): the segment stage's
inputs drift, its segment mix changes, and so do the recommender's inputs.

Run: ``.venv/bin/python examples/pipeline/run.py`` (about 30 s). It trains the two small
models with mlcycle's Python API (synthetic data, no downloads), starts both servers on
127.0.0.1, sends ``--requests`` runs through them with :class:`PipelineClient`, stops
the servers and writes ``pipeline-report.html`` (and ``.json``) with
``mlcycle monitor report``. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.config.structured import GBDTConfig, TrainConfig
from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import check_parity
from mlcycle.export.profile import build_profile
from mlcycle.monitor.pipeline import PipelineClient, Stage
from mlcycle.train.fit import fit_model

SEGMENTS = ["bargain", "casual", "premium"]
DEVICES = ["mobile", "desktop", "tablet"]


# -- data and models ---------------------------------------------------------------------


def profiles(n: int, rng: np.random.Generator, income_scale: float = 1.0) -> pd.DataFrame:
    """Shopper profiles: age, yearly income (k), visits per month, device."""
    return pd.DataFrame(
        {
            "age": rng.normal(38, 12, n).clip(18, 90).astype(np.float32),
            "income": (rng.lognormal(3.8, 0.45, n) * income_scale).astype(np.float32),
            "visits": rng.poisson(4, n).astype(np.float32),
            "device": pd.Series(rng.choice(DEVICES, n, p=[0.6, 0.3, 0.1]), dtype=object),
        }
    )


def segment_of(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    score = frame["income"] / 45 + 0.1 * frame["visits"] + rng.normal(0, 0.25, len(frame))
    return np.where(score > 1.9, "premium", np.where(score > 1.2, "casual", "bargain"))


def visits(segments: Sequence[str], rng: np.random.Generator) -> pd.DataFrame:
    """The recommender's input: segment (from stage 1), basket value, hour of the day."""
    n = len(segments)
    base = {"bargain": 20.0, "casual": 45.0, "premium": 120.0}
    return pd.DataFrame(
        {
            "segment": pd.Series(list(segments), dtype=object),
            "basket": np.array([base[s] for s in segments], np.float32)
            * rng.lognormal(0, 0.3, n).astype(np.float32),
            "hour": rng.integers(0, 24, n).astype(np.float32),
        }
    )


def category_of(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    late = frame["hour"] >= 20
    rich = frame["basket"] > 80
    noise = rng.random(len(frame)) < 0.1
    pick = np.where(rich, "electronics", np.where(late, "books", "home"))
    return np.where(noise, rng.choice(["books", "electronics", "home"], len(frame)), pick)


def train_bundle(
    frame: pd.DataFrame, y: np.ndarray[Any, Any], schema: Schema, name: str, dest: Path
) -> Path:
    """Fit a small gradient-boosting model and write its bundle (the mlcycle export path)."""
    cut = int(len(frame) * 0.8)

    def part(rows: slice) -> Dataset:
        return Dataset(
            frame=frame.iloc[rows].reset_index(drop=True),
            y=np.asarray(y[rows]).astype(str),
            schema=schema,
            version=DataVersion(md5="example", path=name, tracked=False, size=0),
            path=Path(name),
        )

    train, val = part(slice(0, cut)), part(slice(cut, None))
    model = fit_model(train, GBDTConfig(max_iter=30), TrainConfig())
    onx = to_onnx(model.pipeline, schema)
    parity = check_parity(model, onx, val, 1e-4)
    return write_bundle(
        dest,
        model=onx,
        signature=make_signature(schema, model.classes, onx, name),
        profile=build_profile(train, model.predict_proba(val), val.y, model.classes),
        evaluation={"parity": parity.to_dict()},
        lineage={"example": "examples/pipeline/run.py"},
    )


def build_bundles(work: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    people = profiles(3000, rng)
    seg = segment_of(people, rng)
    seg_schema = Schema(
        "segment",
        SEGMENTS,
        [
            FeatureSpec("age", "numeric"),
            FeatureSpec("income", "numeric"),
            FeatureSpec("visits", "numeric"),
            FeatureSpec("device", "categorical", "string", categories=sorted(DEVICES)),
        ],
    )
    seen = visits(list(seg), rng)
    rec_schema = Schema(
        "category",
        ["books", "electronics", "home"],
        [
            FeatureSpec("segment", "categorical", "string", categories=SEGMENTS),
            FeatureSpec("basket", "numeric"),
            FeatureSpec("hour", "numeric"),
        ],
    )
    return (
        train_bundle(people, seg, seg_schema, "segment", work / "segment"),
        train_bundle(seen, category_of(seen, rng), rec_schema, "recommend", work / "recommend"),
    )


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(bundle: Path, stage: str, store: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle), "--port", str(port),
        "--monitor-store", str(store), f"serve.monitor.stage={stage}",
        "serve.monitor.window.size=200", "serve.monitor.window.every=50",
        "serve.monitor.window.min_seconds=0", "serve.monitor.window.min_rows=50",
    ]  # fmt: skip
    log = (work / f"{stage}.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=work,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"stage {stage} did not start; see {work / f'{stage}.log'}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"stage {stage} was not ready within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def gauge(url: str, family: str) -> dict[str, float]:
    """Samples of one metric family from a stage's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(family + "{")
    }


# -- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="pipeline runs to send")
    parser.add_argument("--workdir", type=Path, help="where bundles, store and report go")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlcycle-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    print(f"training the two stages' models in {work} ...", flush=True)
    seg_bundle, rec_bundle = build_bundles(work, rng)
    store = work / "monitor.db"
    servers = [
        start(seg_bundle, "segment", store, work),
        start(rec_bundle, "recommend", store, work),
    ]
    (_, seg_url), (_, rec_url) = servers

    def recommend_request(
        record: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        segment = earlier[0]["label"]
        return [visits([segment], rng).iloc[0].to_dict() | {"segment": segment}]

    client = PipelineClient(
        [
            Stage("segment", seg_url, lambda record, earlier: [dict(record)]),
            Stage("recommend", rec_url, recommend_request),
        ]
    )
    half = args.requests // 2
    calm = profiles(half, rng)
    shifted = profiles(args.requests - half, rng, income_scale=1.8)  # a richer market
    seconds: list[float] = []
    try:
        for frame in (calm, shifted):
            for record in frame.to_dict("records"):
                seconds.append(client.run(record).seconds)
        live = gauge(rec_url, "mlcycle_predicted_class_total")
        print(f"the recommend stage's /metrics, predicted classes so far: {live}")
    finally:
        for proc, _ in servers:
            stop(proc)  # each stage's monitor writes what it has, and its last window
    report = work / "pipeline-report.html"
    subprocess.run(
        [sys.executable, "-m", "mlcycle", "monitor", "report", "--store", str(store),
         "--since", "1h", "--output", str(report)],
        check=True, cwd=work,
    )  # fmt: skip
    doc = json.loads(report.with_suffix(".json").read_text())
    client_ms = np.array(seconds) * 1000
    last = {  # the last window of every series the stages' monitors stored
        (s["stage"], s["name"], s["labels"].get("feature", "")): s["points"][-1][1]
        for s in doc["metric_points"]
    }
    drifted = {
        stage: sorted(f for (st, name, f), v in last.items() if st == stage and
                      name == "drift.detected" and v == 1.0)
        for stage in ("segment", "recommend")
    }  # fmt: skip
    e2e = last.get(("recommend", "pipeline.latency_p99_ms", ""))
    print(f"end to end, measured by the client: p50 {np.quantile(client_ms, 0.5):.1f} ms, "
          f"p99 {np.quantile(client_ms, 0.99):.1f} ms")  # fmt: skip
    print(f"end to end, from the store: p50 {doc['pipeline']['latency_p50_ms']:.1f} ms over "
          f"{doc['pipeline']['complete_runs']} complete runs")  # fmt: skip
    print(f"drifted features in the last window: {drifted}")
    print(f"report: {report}")
    print(json.dumps({
        "workdir": str(work),
        "runs": len(seconds),
        "client_p50_ms": float(np.quantile(client_ms, 0.5)),
        "store_pipeline": doc["pipeline"],
        "drifted": drifted,
        "last_stage_pipeline_p99_ms": e2e,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
