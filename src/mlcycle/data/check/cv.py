"""Cross-validation shared by the label issues and the learning curve: folds, warnings.

The folds are stratified and seeded, so the same data and settings give the same
out-of-sample probabilities and the same curve. A class with fewer rows than folds is
refused up front, with a message naming ``data.check.folds``, rather than left to
scikit-learn's warning and a failed fit.

Fitting the project's model many times on parts of the data makes the estimators warn
(a solver that did not converge on a small subset, a metric undefined for a class a
subset lacks). Those warnings are facts about the check, not errors: :func:`fit_notes`
records them as report notes instead of letting them escape.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from mlcycle.exceptions import DataError

__all__ = ["check_class_sizes", "fit_notes", "stratified_folds"]

logger = logging.getLogger(__name__)

# Warnings about library versions say nothing about the data.
_IGNORED = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_NOTE_CHARS = 160


def check_class_sizes(y: np.ndarray[Any, Any], folds: int) -> None:
    """Refuse data where a class has fewer rows than there are folds.

    Parameters
    ----------
    y
        The labels (strings).
    folds
        The number of stratified folds.

    Raises
    ------
    DataError
        A class is smaller than ``folds``; the message names it and the fix.

    Examples
    --------
    >>> check_class_sizes(np.array(["a", "a", "b", "b", "b"]), 2)
    >>> check_class_sizes(np.array(["a", "a", "b"]), 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.DataError: class 'b' has 1 row, too few for the label-issue check: ...
    """
    classes, counts = np.unique(y, return_counts=True)
    order = np.argsort(counts, kind="stable")
    smallest, n = str(classes[order[0]]), int(counts[order[0]])
    if n >= folds:
        return
    rows = f"{n} row" + ("s" if n != 1 else "")
    if n < 2:
        raise DataError(
            f"class {smallest!r} has {rows}, too few for the label-issue check: every class "
            "needs at least 2 rows (one to train on, one to check). Add rows of that class, "
            "or drop its rows from the data"
        )
    raise DataError(
        f"class {smallest!r} has {rows}, fewer than the {folds} folds of data.check.folds; "
        f"each fold needs a row of every class. Use --folds {n} (or data.check.folds={n}), "
        "or add rows of that class"
    )


def stratified_folds(y: np.ndarray[Any, Any], folds: int, seed: int) -> Any:
    """A shuffled, seeded ``StratifiedKFold`` after :func:`check_class_sizes`.

    Parameters
    ----------
    y
        The labels.
    folds
        Number of folds (>= 2).
    seed
        Seed of the shuffle.

    Returns
    -------
    sklearn.model_selection.StratifiedKFold
    """
    from sklearn.model_selection import StratifiedKFold

    check_class_sizes(y, folds)
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


@contextmanager
def fit_notes(notes: list[str], what: str) -> Iterator[None]:
    """Record the warnings raised inside the block as short notes, counted by kind.

    Parameters
    ----------
    notes
        Receives one line per distinct warning, e.g. ``"learning curve: ConvergenceWarning
        (x4): lbfgs failed to converge ..."``.
    what
        The step the notes are about.

    Examples
    --------
    >>> notes: list[str] = []
    >>> with fit_notes(notes, "demo"):
    ...     warnings.warn("small sample", UserWarning)
    ...     warnings.warn("small sample", UserWarning)
    >>> notes
    ['demo: UserWarning (x2): small sample']
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    counts: Counter[tuple[str, str]] = Counter()
    for w in caught:
        if issubclass(w.category, _IGNORED):
            continue
        text = " ".join(str(w.message).split())
        if len(text) > _NOTE_CHARS:
            text = text[: _NOTE_CHARS - 3] + "..."
        counts[(w.category.__name__, text)] += 1
    for (category, text), n in counts.items():
        times = f" (x{n})" if n > 1 else ""
        note = f"{what}: {category}{times}: {text}"
        logger.info(note)
        notes.append(note)
