"""Serving: the prediction server, its protocols, validation, batching and metrics.

Importing anything under :mod:`mlcycle.serve` loads only numpy, onnxruntime, orjson,
Starlette and prometheus-client: never MLflow, pandas, scikit-learn or torch, so a
server (or a Lambda function) starts in well under a second.
"""
