"""Errors mlcycle raises for anything a user can trigger.

One base class, a shallow tree. Every message names what was wrong and how to fix it;
the CLI prints ``error: <message>`` and exits with status 2, without a traceback.

::

    MlcycleError
    ├── ConfigError          bad config value, unknown model family, bad override
    ├── ProjectError         not a project, project folder already exists, git/DVC setup failed
    ├── DataError            missing file, missing label column, non-numeric text, empty data
    │   └── SchemaError      the data does not match its schema file, or the schema file is bad
    ├── TrainingError        single-class label, fit failed
    ├── ExportError          no converter, ONNX/native parity failed
    ├── BundleError          missing, corrupted or wrong-version bundle / model.onnx
    ├── TrackingError        MLflow store unreachable
    ├── RegistryError        unknown model or version, nothing to roll back to
    ├── RemoteError          DVC remote unreachable or misconfigured
    ├── DeployError          a deployment step failed (context, Docker, AWS, web build)
    ├── NotFittedError       an estimator used before ``fit``
    └── MissingDependencyError   an optional extra is not installed
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigError",
    "DataError",
    "DeployError",
    "ExportError",
    "MissingDependencyError",
    "MlcycleError",
    "NotFittedError",
    "ProjectError",
    "RegistryError",
    "RemoteError",
    "SchemaError",
    "TrackingError",
    "TrainingError",
]


class MlcycleError(Exception):
    """Base class of every error mlcycle raises for a user's mistake or environment."""


class ConfigError(MlcycleError, ValueError):
    """A configuration value is missing, of the wrong type or not allowed."""


class ProjectError(MlcycleError):
    """The project folder is missing, not an mlcycle project, or could not be set up."""


class DataError(MlcycleError, ValueError):
    """A data file is missing, unreadable, empty or lacks a required column."""


class SchemaError(DataError):
    """Data does not match its schema, or the schema file itself is invalid."""


class TrainingError(MlcycleError):
    """A model could not be trained on the given data (e.g. only one class)."""


class ExportError(MlcycleError):
    """The model could not be converted to ONNX or failed the parity check."""


class BundleError(MlcycleError):
    """A bundle folder is missing files, corrupted, or of an unsupported version."""


class TrackingError(MlcycleError):
    """The MLflow tracking store could not be reached or written."""


class RegistryError(MlcycleError):
    """A registered model, version or alias does not exist, or a move is impossible."""


class RemoteError(MlcycleError):
    """The DVC remote is unreachable or misconfigured."""


class NotFittedError(MlcycleError, ValueError, AttributeError):
    """An estimator was used before ``fit`` was called."""


class DeployError(MlcycleError):
    """A deployment step failed (build context, Docker, AWS, the web site build).

    The message names the step that failed, what was already done, and what to do.
    """


class MissingDependencyError(MlcycleError, ImportError):
    """An optional dependency group is not installed."""
