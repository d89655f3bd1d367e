"""Build the scikit-learn estimator of a model family from its config.

Every family reads the shared inverse regularisation strength ``C`` the same way, so
one sweep (``model.C=0.01,0.1,1,10``) spans them all:

============== ===================================== ==================================
family         estimator                             ``C`` becomes
============== ===================================== ==================================
logreg         ``LogisticRegression``                ``C``
gbdt           ``HistGradientBoostingClassifier``    ``l2_regularization = 1 / C``
random_forest  ``RandomForestClassifier``            ignored (logged; no penalty term)
mlp            ``MLPClassifier``                     ``alpha = 1 / C``
cnn            ``CNNClassifier`` (images, PyTorch)   ``weight_decay = 1 / C``
============== ===================================== ==================================

``FAMILIES`` are the tabular families; ``cnn`` (:data:`IMAGE_FAMILIES`) takes one image
feature (:mod:`mlcycle.train.cnn`).

``random_state`` is the training seed everywhere, and gradient boosting runs without
early stopping, so the same seed, data and config give the same model.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mlcycle.config.structured import (
    CNNConfig,
    GBDTConfig,
    LogRegConfig,
    MLPConfig,
    ModelConfig,
    RandomForestConfig,
)
from mlcycle.exceptions import ConfigError

__all__ = [
    "FAMILIES",
    "IMAGE_FAMILIES",
    "TREE_FAMILIES",
    "log_convergence_warnings",
    "make_estimator",
]

logger = logging.getLogger(__name__)

#: Model families ``make_estimator`` knows, in the order they are documented.
FAMILIES: tuple[str, ...] = ("logreg", "gbdt", "random_forest", "mlp")
#: Families for data with one image feature.
IMAGE_FAMILIES: tuple[str, ...] = ("cnn",)
#: Families built from decision trees: invariant to feature scaling.
TREE_FAMILIES: frozenset[str] = frozenset({"gbdt", "random_forest"})

_MAX_FEATURES = ("sqrt", "log2", "all")
_CLASS_WEIGHTS = (None, "balanced")


def make_estimator(cfg: ModelConfig, seed: int) -> Any:
    """The unfitted scikit-learn classifier described by ``cfg``.

    Parameters
    ----------
    cfg
        A model config; ``cfg.name`` picks the family. Fields a family does not
        have take that family's defaults (see :mod:`mlcycle.config.structured`).
    seed
        ``random_state`` of the estimator.

    Returns
    -------
    Any
        An unfitted scikit-learn classifier.

    Raises
    ------
    ConfigError
        Unknown family, or a value the family cannot take (``C <= 0``, an unknown
        ``max_features`` or ``class_weight``).

    Examples
    --------
    >>> from mlcycle.config.structured import GBDTConfig
    >>> est = make_estimator(GBDTConfig(C=0.5), seed=0)
    >>> type(est).__name__, est.l2_regularization, est.early_stopping
    ('HistGradientBoostingClassifier', 2.0, False)
    """
    name = getattr(cfg, "name", None)
    builder = _BUILDERS.get(str(name))
    if builder is None:
        raise ConfigError(
            f"model.name is {name!r}, which is not a model family; "
            f"use one of {', '.join(FAMILIES + IMAGE_FAMILIES)} (e.g. `model=gbdt`)"
        )
    return builder(cfg, seed)


@contextmanager
def log_convergence_warnings(family: str) -> Iterator[None]:
    """Turn scikit-learn's ``ConvergenceWarning`` into a logged warning.

    A solver stopping at ``max_iter`` is worth knowing but not an error: the model is
    usable and the evaluation says how good it is. Other warnings pass through
    unchanged (re-issued after the block).

    Parameters
    ----------
    family
        Model family named in the log message.

    Examples
    --------
    >>> with log_convergence_warnings("logreg"):
    ...     pass
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    seen: set[str] = set()
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            text = str(w.message)
            if text not in seen:
                seen.add(text)
                logger.warning(
                    "%s did not converge: %s Raise model.max_iter if the validation "
                    "metrics suffer.",
                    family,
                    text.strip(),
                )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _options(cfg: ModelConfig, family: type[ModelConfig]) -> dict[str, Any]:
    """The family's fields, read from ``cfg`` with the family's defaults as fallback."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(family):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out[f.name] = getattr(cfg, f.name, default)
    c = out.get("C")
    if c is not None and not (isinstance(c, int | float) and c > 0):
        raise ConfigError(f"model.C is {c!r}; it must be a positive number, or null")
    cw = out.get("class_weight")
    if "class_weight" in out and cw not in _CLASS_WEIGHTS:
        raise ConfigError(f"model.class_weight is {cw!r}; use null or 'balanced'")
    return out


def _logreg(cfg: ModelConfig, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    o = _options(cfg, LogRegConfig)
    return LogisticRegression(
        C=1.0 if o["C"] is None else float(o["C"]),
        max_iter=o["max_iter"],
        class_weight=o["class_weight"],
        random_state=seed,
    )


def _gbdt(cfg: ModelConfig, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    o = _options(cfg, GBDTConfig)
    l2 = o["l2_regularization"] if o["C"] is None else 1.0 / float(o["C"])
    return HistGradientBoostingClassifier(
        learning_rate=o["learning_rate"],
        max_iter=o["max_iter"],
        max_leaf_nodes=o["max_leaf_nodes"],
        max_depth=o["max_depth"],
        min_samples_leaf=o["min_samples_leaf"],
        l2_regularization=l2,
        class_weight=o["class_weight"],
        early_stopping=False,
        random_state=seed,
    )


def _random_forest(cfg: ModelConfig, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    o = _options(cfg, RandomForestConfig)
    if o["C"] is not None:
        logger.warning(
            "random_forest has no penalty term: model.C=%s is ignored "
            "(limit max_depth or raise min_samples_leaf to regularise a forest)",
            o["C"],
        )
    max_features = o["max_features"]
    if max_features not in _MAX_FEATURES:
        raise ConfigError(
            f"model.max_features is {max_features!r}; use one of {', '.join(_MAX_FEATURES)}"
        )
    return RandomForestClassifier(
        n_estimators=o["n_estimators"],
        max_depth=o["max_depth"],
        min_samples_leaf=o["min_samples_leaf"],
        max_features=None if max_features == "all" else max_features,
        n_jobs=o["n_jobs"],
        class_weight=o["class_weight"],
        random_state=seed,
    )


def _mlp(cfg: ModelConfig, seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    o = _options(cfg, MLPConfig)
    alpha = o["alpha"] if o["C"] is None else 1.0 / float(o["C"])
    return MLPClassifier(
        hidden_layer_sizes=tuple(int(h) for h in o["hidden_layer_sizes"]),
        alpha=alpha,
        learning_rate_init=o["learning_rate_init"],
        max_iter=o["max_iter"],
        early_stopping=o["early_stopping"],
        random_state=seed,
    )


def _cnn(cfg: ModelConfig, seed: int) -> Any:
    from mlcycle.train.cnn import CNNClassifier, check_params

    o = _options(cfg, CNNConfig)
    weight_decay = o["weight_decay"] if o["C"] is None else 1.0 / float(o["C"])
    est = CNNClassifier(
        channels=[int(c) for c in o["channels"]],
        hidden=o["hidden"],
        epochs=o["epochs"],
        batch_size=o["batch_size"],
        learning_rate=o["learning_rate"],
        weight_decay=weight_decay,
        random_state=seed,
    )
    check_params(est)
    return est


_BUILDERS: dict[str, Callable[[ModelConfig, int], Any]] = {
    "logreg": _logreg,
    "gbdt": _gbdt,
    "random_forest": _random_forest,
    "mlp": _mlp,
    "cnn": _cnn,
}
