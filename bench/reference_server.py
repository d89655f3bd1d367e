"""The reference for ``bench/serve.py``: a minimal FastAPI server a user would write.

``POST /predict`` takes the same body as mlcycle's (``{"records": [{feature: value}]}``),
builds the float32 ``[N, k]`` array in the model's feature order, calls onnxruntime on
``model.onnx`` and answers labels and class probabilities. No validation (a bad body is a
500), no metrics, no request ids. The onnxruntime session uses one intra-op thread, as
mlcycle's server does by default.

Run it as a user would, with uvicorn's defaults (which pick uvloop and httptools when
installed, and log every request)::

    MLCYCLE_BENCH_BUNDLE=path/to/bundle python -m uvicorn bench.reference_server:app

or ``MLCYCLE_BENCH_BUNDLE=... python bench/reference_server.py [PORT]`` (one worker).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request

BUNDLE = Path(os.environ.get("MLCYCLE_BENCH_BUNDLE", "."))

_signature = json.loads((BUNDLE / "signature.json").read_text())
(_input,) = _signature["inputs"]  # the benchmark model: one numeric input
INPUT_NAME: str = _input["name"]
FEATURES: list[str] = list(_input["features"])
CLASSES: list[str] = [str(c) for c in _signature["classes"]]

_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
session = ort.InferenceSession(
    str(BUNDLE / "model.onnx"), sess_options=_options, providers=["CPUExecutionProvider"]
)

app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> dict[str, Any]:
    body = await request.json()
    x = np.array([[r[f] for f in FEATURES] for r in body["records"]], dtype=np.float32)
    labels, proba = session.run(["label", "probabilities"], {INPUT_NAME: x})
    return {
        "predictions": [
            {"label": str(label), "probabilities": dict(zip(CLASSES, p, strict=True))}
            for label, p in zip(labels.tolist(), proba.tolist(), strict=True)
        ]
    }


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
