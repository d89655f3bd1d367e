"""The ``retrain`` config section: what a retraining learns from and what it must beat."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GateConfig", "RetrainConfig"]


@dataclass
class GateConfig:
    """What a retrained model must show before it becomes the challenger."""

    # The metric compared (null: evaluate.primary_metric).
    metric: str | None = None
    # The candidate must beat the champion by at least this on recent labelled traffic
    # (or on the holdout when there are fewer than min_recent_labels recent labels).
    margin: float = 0.0
    # No slice (the holdout, each class's recall on each evaluation set) may be worse than
    # the champion's by more than this.
    slice_tolerance: float = 0.05
    # Recent labelled rows needed to judge on recent traffic.
    min_recent_labels: int = 30


@dataclass
class RetrainConfig:
    """How ``mlcycle retrain`` (by hand or on alarms) builds and judges a new model."""

    # The feedback dataset (`mlcycle data feedback` writes it), relative to the project.
    feedback_path: str = "data/feedback.csv"
    # The newest share of feedback rows kept out of training, to judge on recent traffic.
    recent_fraction: float = 0.3
    # Fewer new labelled rows than this since the champion was trained: nothing to retrain.
    min_new_rows: int = 20
    # The model the candidate is judged against and descends from.
    champion: str = "champion"
    gate: GateConfig = field(default_factory=GateConfig)
    # Start the server's configured rollout (serve.rollout) once the gate passes.
    rollout: bool = True
