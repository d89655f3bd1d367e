"""The learning curve's score: an mlcycle metric name as a scikit-learn scorer.

The names are those of ``evaluation.json`` (``evaluate.primary_metric``). scikit-learn
scorers are higher-is-better, so a loss (``log_loss``, ``brier``) is scored negated and
turned back into the metric's own sign for the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcycle.exceptions import ConfigError

__all__ = ["CurveMetric", "curve_metric", "metric_names"]

# name -> (scorer, sign): metric value = sign * scorer value.
_ANY: dict[str, tuple[str, float]] = {
    "accuracy": ("accuracy", 1.0),
    "balanced_accuracy": ("balanced_accuracy", 1.0),
    "f1_macro": ("f1_macro", 1.0),
    "f1_weighted": ("f1_weighted", 1.0),
    "precision_macro": ("precision_macro", 1.0),
    "precision_weighted": ("precision_weighted", 1.0),
    "recall_macro": ("recall_macro", 1.0),
    "recall_weighted": ("recall_weighted", 1.0),
    "log_loss": ("neg_log_loss", -1.0),
}
_BINARY: dict[str, tuple[str, float]] = {
    "roc_auc": ("roc_auc", 1.0),
    "pr_auc": ("average_precision", 1.0),
    "brier": ("neg_brier_score", -1.0),
}
_MULTICLASS: dict[str, tuple[str, float]] = {"roc_auc": ("roc_auc_ovr", 1.0)}


@dataclass(frozen=True)
class CurveMetric:
    """A metric the learning curve can score, and how scikit-learn computes it."""

    #: The mlcycle name (``f1_macro``, ``log_loss``, ...).
    name: str
    #: The scikit-learn ``scoring`` string.
    scorer: str
    #: +1 when higher is better; -1 for a loss (the scorer returns it negated).
    sign: float

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger value of the metric is better."""
        return self.sign > 0


def metric_names(n_classes: int) -> list[str]:
    """The metrics the learning curve can use for ``n_classes`` classes.

    Examples
    --------
    >>> "pr_auc" in metric_names(2), "pr_auc" in metric_names(3)
    (True, False)
    """
    extra = _BINARY if n_classes == 2 else _MULTICLASS
    return sorted({**_ANY, **extra})


def curve_metric(name: str, n_classes: int, *, setting: str) -> CurveMetric:
    """The scorer of metric ``name`` for data with ``n_classes`` classes.

    Parameters
    ----------
    name
        An mlcycle metric name.
    n_classes
        Classes in the data (``roc_auc`` is one-vs-rest for more than two).
    setting
        The setting the name came from, for the message (``data.check.metric`` or
        ``evaluate.primary_metric``).

    Returns
    -------
    CurveMetric

    Raises
    ------
    ConfigError
        scikit-learn cannot score that metric on this data; the message lists the ones
        it can.

    Examples
    --------
    >>> curve_metric("log_loss", 2, setting="data.check.metric")
    CurveMetric(name='log_loss', scorer='neg_log_loss', sign=-1.0)
    >>> curve_metric("roc_auc", 3, setting="data.check.metric").scorer
    'roc_auc_ovr'
    """
    table = {**_ANY, **(_BINARY if n_classes == 2 else _MULTICLASS)}
    if name not in table:
        kind = "binary" if n_classes == 2 else f"{n_classes}-class"
        raise ConfigError(
            f"{setting} is {name!r}, which the learning curve cannot score on {kind} data; "
            f"use one of {metric_names(n_classes)} (set data.check.metric=NAME to choose the "
            "learning curve's metric without changing evaluate.primary_metric)"
        )
    scorer, sign = table[name]
    return CurveMetric(name=name, scorer=scorer, sign=sign)
