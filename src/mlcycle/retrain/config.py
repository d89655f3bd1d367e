"""The ``retrain`` config section: what a retraining learns from and what it must beat."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlcycle.rollout.settings import MODES

__all__ = ["GateConfig", "RetrainConfig", "check_retrain_config"]


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
    # A class's recall is judged on a set only with at least this many rows of the class
    # there (on 20 rows one miss moves it by 0.05); smaller slices are reported only.
    min_slice_rows: int = 30
    # ... and fails only when a one-sided z-test says the drop is more than chance.
    alpha: float = 0.05
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
    # How that rollout runs: shadow, bluegreen or canary (its steps, bake and analysis
    # are the server's serve.rollout settings).
    rollout_mode: str = "canary"


def check_retrain_config(cfg: RetrainConfig, where: str = "retrain") -> list[str]:
    """Problems with ``cfg`` (empty when it is fine), each naming the setting.

    Examples
    --------
    >>> check_retrain_config(RetrainConfig())
    []
    >>> check_retrain_config(RetrainConfig(recent_fraction=1.0))
    ['retrain.recent_fraction must be in [0, 1), not 1.0']
    """
    problems: list[str] = []
    if not cfg.feedback_path:
        problems.append(
            f"{where}.feedback_path must name the feedback dataset, e.g. data/feedback.csv"
        )
    if not 0 <= cfg.recent_fraction < 1:
        problems.append(f"{where}.recent_fraction must be in [0, 1), not {cfg.recent_fraction}")
    if cfg.min_new_rows < 1:
        problems.append(f"{where}.min_new_rows must be at least 1, not {cfg.min_new_rows}")
    if not str(cfg.champion).strip():
        problems.append(f"{where}.champion must name the model to beat, e.g. champion")
    if cfg.rollout_mode not in MODES:
        problems.append(f"{where}.rollout_mode must be one of {MODES}, not {cfg.rollout_mode!r}")
    gate = cfg.gate
    if gate.slice_tolerance < 0:
        problems.append(f"{where}.gate.slice_tolerance must be >= 0, not {gate.slice_tolerance}")
    if gate.min_recent_labels < 1:
        problems.append(
            f"{where}.gate.min_recent_labels must be at least 1, not {gate.min_recent_labels}"
        )
    if not 0.0 < gate.alpha < 1.0:
        problems.append(f"{where}.gate.alpha must be in (0, 1), not {gate.alpha}")
    if gate.min_slice_rows < 1:
        problems.append(
            f"{where}.gate.min_slice_rows must be at least 1, not {gate.min_slice_rows}"
        )
    return problems
