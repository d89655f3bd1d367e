"""Configuration: typed dataclasses composed by Hydra, and the project's paths."""

from __future__ import annotations

from mlcycle.config.project import Project, find_project_root
from mlcycle.config.structured import (
    BaselineConfig,
    Config,
    DataConfig,
    EvaluateConfig,
    GBDTConfig,
    LogRegConfig,
    MLPConfig,
    ModelConfig,
    PreprocessConfig,
    RandomForestConfig,
    RemoteConfig,
    SplitConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "BaselineConfig",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "GBDTConfig",
    "LogRegConfig",
    "MLPConfig",
    "ModelConfig",
    "PreprocessConfig",
    "Project",
    "RandomForestConfig",
    "RemoteConfig",
    "SplitConfig",
    "TrackingConfig",
    "TrainConfig",
    "find_project_root",
]
