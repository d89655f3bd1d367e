"""Typed configuration: one dataclass per component, composed by Hydra from ``conf/`` groups.

Objects are built at the edge (the CLI) from a :class:`Config` and passed down; no module
reads global configuration. Paths in the config are relative to the project root unless
absolute; :mod:`mlcycle.config.project` resolves them before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from mlcycle.retrain.config import RetrainConfig
from mlcycle.serve.settings import ServeSettings

__all__ = [
    "AnalyzeConfig",
    "AugmentConfig",
    "BaselineConfig",
    "CNNConfig",
    "Config",
    "DataCheckConfig",
    "DataConfig",
    "EvaluateConfig",
    "GBDTConfig",
    "LogRegConfig",
    "MLPConfig",
    "ModelConfig",
    "PreprocessConfig",
    "RandomForestConfig",
    "RemoteConfig",
    "SplitConfig",
    "TrackingConfig",
    "TrainConfig",
]


@dataclass
class SplitConfig:
    """Deterministic, stratified train / validation / test split."""

    # Share of all rows held out as the fixed test set (final evaluation, baselines).
    test_fraction: float = 0.2
    # Share of all rows used for validation (parity check, calibration, early choices).
    val_fraction: float = 0.2
    # Seed of the split; the same seed and data give the same rows in each split.
    seed: int = 42
    # Keep the class mix equal in every split.
    stratify: bool = True


@dataclass
class DataCheckConfig:
    """What ``mlcycle data check`` looks for, and its thresholds (docs/data-check.md)."""

    # Folds of the stratified cross-validation (out-of-sample probabilities for the label
    # issues, and the learning curve); >= 2, and no class may have fewer rows.
    folds: int = 5
    # Seed of the folds and of the model; null: train.seed.
    seed: int | None = None
    # Label issues listed in the report, worst first (all of them are counted); >= 0.
    max_issues: int = 50
    # A categorical value in fewer rows than this is a rare category; >= 1.
    rare_count: int = 10
    # A slice (a categorical value, a numeric feature's quantile bin) with fewer rows than
    # this is too small to evaluate a model on; >= 1.
    min_slice_rows: int = 30
    # Quantile bins per numeric feature for the slices; >= 2.
    slice_bins: int = 4
    # A class with a smaller share of the rows than this is rare; in [0, 1).
    rare_class_share: float = 0.05
    # A feature missing in a larger share of the rows than this is reported; in [0, 1].
    max_missing_rate: float = 0.2
    # Training sizes of the learning curve, as fractions of a training fold; in (0, 1].
    curve_sizes: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.35, 0.5, 0.75, 1.0])
    # Score of the learning curve (f1_macro, accuracy, roc_auc, log_loss, ...); null:
    # evaluate.primary_metric.
    metric: str | None = None
    # Smallest gain from doubling the data that counts as "more data would help", whatever
    # the spread between folds; >= 0.
    min_gain: float = 0.005
    # Newest labelled data older than this many days is reported as stale; > 0.
    max_age_days: float = 90.0


@dataclass
class DataConfig:
    """A dataset: a CSV or Parquet file tracked by DVC, and its schema file."""

    # Dataset name; also the default registered model and experiment name.
    name: str = MISSING
    # The data file, relative to the project root (CSV or Parquet).
    path: str = MISSING
    # Name of the label column.
    label: str = MISSING
    # Bundled example that writes the file when it is missing (e.g. "breast_cancer"); null: none.
    example: str | None = None
    # Schema file (YAML); null: next to the data file as <stem>.schema.yaml. Inferred on first use.
    schema_path: str | None = None
    # File format: auto (from the suffix), csv or parquet.
    format: str = "auto"
    split: SplitConfig = field(default_factory=SplitConfig)
    # Derived features (ratio, bins, date_part, flag) computed from the raw features, in
    # training and inside the exported graph: [{name, kind, ...}]; see docs/features.md.
    derived: list[Any] = field(default_factory=list)
    # Column of the raw data file holding when each row was labelled or observed (ISO 8601
    # or Unix seconds); read by `mlcycle data check` only. null: none. When the schema also
    # lists it, it is a feature too: remove it from the schema file to keep it out.
    time_column: str | None = None
    # Thresholds of `mlcycle data check` (docs/data-check.md).
    check: DataCheckConfig = field(default_factory=DataCheckConfig)


@dataclass
class ModelConfig:
    """Common fields of every model family."""

    # Model family: logreg, gbdt, random_forest, mlp, or cnn (image data).
    name: str = MISSING
    # Inverse regularisation strength shared by all families so one sweep can span them:
    # logreg's C; gbdt's l2_regularization = 1/C; mlp's alpha = 1/C; cnn's weight_decay =
    # 1/C; random_forest has no penalty term and ignores it (with a warning). null: the
    # family's own default.
    C: float | None = None


@dataclass
class LogRegConfig(ModelConfig):
    """Logistic regression (scikit-learn ``LogisticRegression``)."""

    name: str = "logreg"
    C: float | None = 1.0
    # Iterations of the solver.
    max_iter: int = 1000
    # null or "balanced".
    class_weight: str | None = None


@dataclass
class GBDTConfig(ModelConfig):
    """Histogram gradient boosting (scikit-learn ``HistGradientBoostingClassifier``)."""

    name: str = "gbdt"
    # Depth limit of each tree; null: unlimited (bounded by max_leaf_nodes).
    max_depth: int | None = None
    learning_rate: float = 0.1
    # Boosting iterations (trees per class).
    max_iter: int = 100
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    # null or "balanced".
    class_weight: str | None = None


@dataclass
class RandomForestConfig(ModelConfig):
    """Random forest (scikit-learn ``RandomForestClassifier``)."""

    name: str = "random_forest"
    n_estimators: int = 200
    max_depth: int | None = None
    min_samples_leaf: int = 1
    # "sqrt", "log2" or "all".
    max_features: str = "sqrt"
    # Parallel jobs for fitting; 1 keeps sweeps with the joblib launcher from oversubscribing.
    n_jobs: int = 1
    class_weight: str | None = None


@dataclass
class MLPConfig(ModelConfig):
    """Multi-layer perceptron (scikit-learn ``MLPClassifier``)."""

    name: str = "mlp"
    hidden_layer_sizes: list[int] = field(default_factory=lambda: [64, 32])
    # L2 penalty; overridden by 1/C when C is set.
    alpha: float = 1e-4
    learning_rate_init: float = 1e-3
    max_iter: int = 500
    early_stopping: bool = False


@dataclass
class CNNConfig(ModelConfig):
    """Small convolutional network for one image feature (PyTorch, CPU; mlcycle.train.cnn)."""

    name: str = "cnn"
    # Output channels of each block (3x3 convolution, ReLU, 2x2 max-pool).
    channels: list[int] = field(default_factory=lambda: [16, 32])
    # Units of the dense layer before the output.
    hidden: int = 64
    # Passes over the training images, and images per Adam step.
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 3e-3
    # Adam's L2 penalty; overridden by 1/C when C is set.
    weight_decay: float = 1e-4


@dataclass
class PreprocessConfig:
    """Preprocessing that becomes part of the exported ONNX graph."""

    # Imputation of missing numeric values: mean, median or most_frequent.
    numeric_impute: str = "median"
    # Standardise numeric features (zero mean, unit variance).
    scale: bool = True
    # One-hot encode categoricals; categories unseen in training encode as all zeros.
    one_hot: bool = True
    # Text features: TF-IDF of word n-grams (1 to text_ngram_max words), keeping the
    # text_max_features most frequent ones seen in at least text_min_df training rows.
    text_max_features: int = 20000
    text_ngram_max: int = 2
    text_min_df: int = 1
    text_lowercase: bool = True
    # The derived features the pipeline computes first (mlcycle.features); data.derived.
    derived: Any = "${data.derived}"


@dataclass
class RebalanceConfig:
    """Class rebalancing of tabular training rows (``train.augment.rebalance``)."""

    # none; random (draw rows of the smaller classes again); smote (new rows between a row
    # and one of its k nearest neighbours of the same class, numeric features only).
    method: str = "none"
    # Each smaller class grows to at least ratio x the largest class's rows; in (0, 1].
    ratio: float = 1.0
    # Neighbours SMOTE interpolates towards; >= 1.
    k_neighbors: int = 5


@dataclass
class NoiseConfig:
    """Additive Gaussian noise on numeric features (``train.augment.noise``)."""

    # Signal-to-noise ratio in dB (> 0); a feature's signal power is its variance over the
    # training split. null: no noise.
    snr_db: float | None = None
    # Noisy copies of each targeted row (>= 1).
    copies: int = 1
    # Keep noisy values inside each feature's range in the training split.
    clip: bool = True


@dataclass
class ImageAugmentConfig:
    """Random transforms of image arrays [N, H, W] or [N, C, H, W] (``train.augment.image``)."""

    # Std of Gaussian pixel noise, as a fraction of the value range; [0, 0.5].
    noise_std: float = 0.0
    # Largest rotation either way, in degrees; [0, 45].
    rotation_deg: float = 0.0
    # Largest shift along each axis, in pixels; >= 0 and less than half the image.
    shift_px: float = 0.0
    # Largest brightness change, as a fraction of the value range; [0, 1).
    brightness: float = 0.0
    # Largest contrast change: values scaled around the image mean by 1 +- contrast; [0, 1).
    contrast: float = 0.0
    # Transformed copies of each image (>= 1).
    copies: int = 1


@dataclass
class AugmentConfig:
    """Data augmentation of the training split only (``train.augment``; docs/augment.md)."""

    # Augment the training split (validation and test are never augmented).
    enabled: bool = False
    # Slices whose training rows are augmented: names of `slices` entries, or inline
    # {name, where} entries; empty: the whole training split.
    target_slices: list[Any] = field(default_factory=list)
    # The slices target_slices names are looked up in (default: analyze.slices).
    slices: Any = "${analyze.slices}"
    # Targeted oversampling: the targeted rows are drawn again at random until they are
    # factor x as many; >= 1 (1: off).
    factor: float = 1.0
    rebalance: RebalanceConfig = field(default_factory=RebalanceConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    image: ImageAugmentConfig = field(default_factory=ImageAugmentConfig)
    # Seed of every random draw; null: train.seed.
    seed: int | None = None


@dataclass
class TrainConfig:
    """How a model is trained, checked and registered."""

    # Seed of the estimator; the same seed, data and config give the same model.
    seed: int = 42
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    # Register the bundle as a new model version with the alias "challenger".
    register: bool = True
    # Largest |p_onnx - p_native| allowed on the validation set before export fails.
    parity_tolerance: float = 1e-4
    # Rows used by `mlcycle sanity` (overfit check).
    sanity_rows: int = 32
    # Training accuracy `mlcycle sanity` expects on those rows.
    sanity_min_accuracy: float = 0.99
    # Data augmentation of the training split (off by default); see docs/augment.md.
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class BaselineConfig:
    """A reference to compare against: a fixed figure or another model version."""

    # Name shown in the report, e.g. "human" or "previous champion".
    name: str = MISSING
    # Metric compared (a key of the test metrics, e.g. f1_macro, accuracy, roc_auc).
    metric: str = "f1_macro"
    # A fixed figure (e.g. human-level performance); exclusive with `model`.
    value: float | None = None
    # A model to evaluate on the same test set: "models:/NAME@ALIAS", "models:/NAME/VERSION",
    # "@champion" (this project's registered model) or a bundle folder. Missing models are
    # reported as skipped, not as errors (the first run has no champion yet).
    model: str | None = None


@dataclass
class EvaluateConfig:
    """What evaluation reports."""

    # Metric used to pick the best model and to compute gaps.
    primary_metric: str = "f1_macro"
    # Bins of the reliability diagram and of the expected calibration error.
    calibration_bins: int = 10
    baselines: list[BaselineConfig] = field(default_factory=list)


@dataclass
class AnalyzeConfig:
    """Error analysis (``mlcycle analyze``): which slices to score and what to compare with."""

    # Declared slices: [{name, where: {feature: condition}, baseline}], see
    # mlcycle.evaluate.slices (a range {min, max}, a list of values, or {contains: word}).
    slices: list[Any] = field(default_factory=list)
    # Also find slices automatically (the worst values of each categorical feature and the
    # worst quantile bins of each numeric feature).
    auto: bool = True
    # Quantile bins per numeric feature for automatic slices.
    auto_bins: int = 4
    # Automatic slices kept per feature (the worst ones).
    auto_per_feature: int = 2
    # Slices with fewer rows than this are reported but not ranked (too noisy to act on).
    min_rows: int = 10


@dataclass
class TrackingConfig:
    """MLflow experiment tracking and model registry."""

    # Tracking URI; null: SQLite in the project (<root>/mlflow.db), no server to start.
    uri: str | None = None
    # Experiment name.
    experiment: str = "${data.name}"
    # Registered model name.
    registered_model: str = "${data.name}"
    # Where run artifacts go when the experiment is created; null: <root>/mlartifacts.
    # Use s3://bucket/prefix for S3 (set s3_endpoint_url for S3-compatible stores).
    artifact_location: str | None = None
    # Endpoint of an S3-compatible store (exported as MLFLOW_S3_ENDPOINT_URL).
    s3_endpoint_url: str | None = None
    # Extra tags on every MLflow run (e.g. +tracking.tags.team=fraud, ~tracking.tags.owner).
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RemoteConfig:
    """The DVC remote that stores data versions."""

    # Kind: local (a folder) or s3 (any S3-compatible endpoint).
    kind: str = "local"
    # DVC remote name.
    name: str = "storage"
    # A folder (relative to the project root, or absolute) or s3://bucket/prefix.
    url: str = ".mlcycle/dvc-remote"
    # S3-compatible endpoint URL (e.g. http://127.0.0.1:5000); null: AWS.
    endpoint_url: str | None = None
    region: str | None = None
    # Credentials; null: the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, ...). Values
    # given here are written only to .dvc/config.local, which git ignores, and are redacted
    # from logged configs.
    access_key_id: str | None = None
    secret_access_key: str | None = None


@dataclass
class Config:
    """The composed configuration of one mlcycle command."""

    data: DataConfig = MISSING
    # One of LogRegConfig, GBDTConfig, RandomForestConfig, MLPConfig.
    model: Any = MISSING
    train: TrainConfig = MISSING
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    # Error analysis and priorities (mlcycle analyze); augmentation targets its slices.
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    tracking: TrackingConfig = MISSING
    remote: RemoteConfig = MISSING
    # The prediction server (mlcycle serve); see mlcycle.serve.settings.
    serve: ServeSettings = field(default_factory=ServeSettings)
    # Retraining on feedback and its gate (mlcycle retrain); see mlcycle.retrain.config.
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
