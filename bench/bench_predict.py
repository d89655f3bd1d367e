"""Benchmark: the exported bundle (ONNX Runtime) against the native scikit-learn pipeline.

Measures, in one run so the ratios are fair on a shared machine:

* predict latency for one row and for a batch of 1000 rows (median of repeats),
* cold start: a fresh interpreter that imports the reader and loads the model
  (``mlcycle.bundle`` + ``model.onnx`` vs ``joblib`` + the pickled pipeline),
* bundle size on disk.

Run: ``.venv/bin/python bench/bench_predict.py`` (about a minute).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.bundle import Bundle
from mlcycle.config import DataConfig, GBDTConfig, LogRegConfig, Project, TrainConfig
from mlcycle.config.structured import ModelConfig, RandomForestConfig
from mlcycle.data.load import load_dataset
from mlcycle.data.split import split_dataset
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.train.fit import fit_model
from mlcycle.train.pipeline import model_frame


def median_seconds(fn: Callable[[], Any], repeats: int, budget_s: float = 5.0) -> float:
    """Median wall time of ``fn`` over at most ``repeats`` calls or ``budget_s`` seconds."""
    times: list[float] = []
    stop = time.perf_counter() + budget_s
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if time.perf_counter() > stop:
            break
    return statistics.median(times)


def cold_start(code: str, repeats: int = 5) -> float:
    """Median wall time of a fresh interpreter running ``code``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mlcycle-bench-"))
    project = Project(work)
    cfg = DataConfig(
        name="breast_cancer", path="data/bc.csv", label="diagnosis", example="breast_cancer"
    )
    splits = split_dataset(load_dataset(cfg, project), cfg.split)
    test = splits.test
    batch = test.subset(np.resize(np.arange(len(test)), 1000))
    one = test.subset(np.arange(1))
    models: list[ModelConfig] = [LogRegConfig(), GBDTConfig(), RandomForestConfig()]
    print(f"{'model':<14}{'rows':>6}{'sklearn':>12}{'onnx bundle':>14}{'speed-up':>10}")
    rows = []
    for mcfg in models:
        trained = fit_model(splits.train, mcfg, TrainConfig())
        onnx_model = to_onnx(trained.pipeline, splits.train.schema)
        path = write_bundle(
            work / "bundles" / mcfg.name,
            model=onnx_model,
            signature=make_signature(splits.train.schema, trained.classes, onnx_model, "bc"),
            profile={},
            evaluation={},
            lineage={},
        )
        bundle = Bundle.load(path, intra_op_threads=1)
        for label, ds in (("1", one), ("1000", batch)):
            frame = model_frame(ds, ds.schema)
            inputs = bundle.inputs_from_columns(ds.columns())
            native = median_seconds(partial(trained.pipeline.predict_proba, frame), 200)
            onnx = median_seconds(partial(bundle.predict, inputs), 200)
            print(
                f"{mcfg.name:<14}{label:>6}{native * 1e6:>10.0f}µs{onnx * 1e6:>12.0f}µs"
                f"{native / onnx:>9.1f}x"
            )
            rows.append((mcfg.name, label, native, onnx))
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        print(
            f"{'':<14}bundle {size / 1024:.0f} KiB (model.onnx "
            f"{(path / 'model.onnx').stat().st_size / 1024:.0f} KiB)"
        )
    import joblib

    gbdt = fit_model(splits.train, GBDTConfig(), TrainConfig())
    joblib.dump(gbdt.pipeline, work / "gbdt.joblib")
    bundle_code = f"from mlcycle.bundle import Bundle; Bundle.load({str(work / 'bundles/gbdt')!r})"
    native_code = f"import joblib; joblib.load({str(work / 'gbdt.joblib')!r})"
    cold_bundle = cold_start(bundle_code)
    cold_native = cold_start(native_code)
    print(
        f"\ncold start (fresh interpreter: import + load gbdt), median of 5:\n"
        f"  mlcycle.bundle + model.onnx  {cold_bundle * 1000:.0f} ms\n"
        f"  joblib + sklearn pipeline    {cold_native * 1000:.0f} ms\n"
        f"  ratio native/bundle          {cold_native / cold_bundle:.2f}x"
    )


if __name__ == "__main__":
    main()
