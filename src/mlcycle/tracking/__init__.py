"""MLflow runs: where they are stored, and what a run logs.

By default runs and the registry live in SQLite inside the project (``<root>/mlflow.db``)
and artifacts under ``<root>/mlartifacts``; ``mlflow ui --backend-store-uri
sqlite:///<root>/mlflow.db`` shows them. Artifacts may go to S3 (or any S3-compatible
store): the experiment is created with ``artifact_location`` (an existing experiment keeps
its own location, with a warning when it differs) and ``MLFLOW_S3_ENDPOINT_URL`` is
exported for the endpoint.

Clients are built with explicit URIs (:attr:`TrackingContext.client`); the only
process-global MLflow state set here is the tracking and registry URI, by
:func:`start_run`, because ``mlflow.start_run`` and the fluent logging functions read it.

A run logs the flattened config as params (secrets redacted, values cut to MLflow's
limit), the full redacted config as ``config.yaml``, metrics flattened to dotted keys
(``test.f1_macro``), and folders of artifacts (the bundle under ``bundle/``).
"""

from __future__ import annotations

from mlcycle.tracking.context import TrackingContext, configure_tracking
from mlcycle.tracking.params import (
    MAX_PARAM_VALUE_LENGTH,
    REDACT_WORDS,
    flatten_config,
    flatten_metrics,
    redact_config,
)
from mlcycle.tracking.runs import (
    TAG_DATA_MD5,
    TAG_GIT_COMMIT,
    TAG_GIT_DIRTY,
    lineage_tags,
    log_artifacts,
    log_config,
    log_metrics,
    start_run,
)

__all__ = [
    "MAX_PARAM_VALUE_LENGTH",
    "REDACT_WORDS",
    "TAG_DATA_MD5",
    "TAG_GIT_COMMIT",
    "TAG_GIT_DIRTY",
    "TrackingContext",
    "configure_tracking",
    "flatten_config",
    "flatten_metrics",
    "lineage_tags",
    "log_artifacts",
    "log_config",
    "log_metrics",
    "redact_config",
    "start_run",
]
