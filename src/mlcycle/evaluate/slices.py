"""Slices of a dataset: named subsets of rows defined by conditions on features.

A slice is declared in config (``analyze.slices``) as a name and conditions that a row
must all meet, one per feature::

    analyze:
      slices:
        - name: large tumours
          where:
            mean radius: {min: 17}            # numeric range, min <= x < max
        - name: tea or coffee only
          where:
            drink: [tea, coffee]              # categorical: one of these values
            tags: {contains: night}           # text or categorical: holds this word
          baseline: 0.9                       # e.g. human-level on this slice

Error analysis (``mlcycle analyze``) scores the model on each slice; augmentation can
target the slices it ranked highest. Masks are computed on a frame of raw features (a
:class:`~mlcycle.data.dataset.Dataset`'s ``frame``), where numeric features are float
(missing as NaN) and categorical / text features are strings (missing as ``""``).

Examples
--------
>>> import pandas as pd
>>> from mlcycle.data.schema import FeatureSpec, Schema
>>> schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric"),
...                                   FeatureSpec("c", "categorical")])
>>> frame = pd.DataFrame({"x": [1.0, 5.0, 9.0], "c": ["u", "v", "u"]})
>>> sl = Slice.from_config({"name": "big u", "where": {"x": {"min": 4}, "c": ["u"]}})
>>> slice_mask(frame, sl, schema).tolist()
[False, False, True]
>>> sl.describe()
'x >= 4 and c in [u]'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlcycle.data.schema import Schema
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Condition", "Slice", "parse_slices", "slice_mask"]

_RANGE_KEYS = frozenset({"min", "max"})
_CONTAINS = "contains"


@dataclass(frozen=True)
class Condition:
    """One feature's condition: a numeric range, a set of values, or a word to contain.

    Parameters
    ----------
    feature
        The feature the condition reads.
    min, max
        Numeric range, ``min <= x < max``; either may be ``None`` (open). Missing
        values (NaN) never match a range.
    values
        Categorical values, as strings; ``""`` stands for missing (on a numeric
        feature too: ``[null]`` in config matches its missing values).
    contains
        A word that a text or categorical value must hold (case-insensitive; tags
        such as ``"night;rain"`` are split on ``;``, ``,`` and spaces).
    """

    feature: str
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    contains: str | None = None

    def describe(self) -> str:
        """The condition as a short phrase, e.g. ``x >= 4`` or ``c in [u, v]``."""
        if self.values == ("",):
            return f"{self.feature} is missing"
        if self.values is not None:
            shown = (v if v != "" else "(missing)" for v in self.values)
            return f"{self.feature} in [{', '.join(shown)}]"
        if self.contains is not None:
            return f"{self.feature} contains {self.contains!r}"
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)} <= {self.feature} < {_num(self.max)}"
        if self.min is not None:
            return f"{self.feature} >= {_num(self.min)}"
        return f"{self.feature} < {_num(self.max)}"


@dataclass(frozen=True)
class Slice:
    """A named subset of rows: all of its conditions hold.

    Parameters
    ----------
    name
        Shown in reports and used to target augmentation.
    conditions
        What a row must meet (all of them). An empty tuple is the whole data set.
    baseline
        A reference score of the primary metric on this slice (e.g. human-level
        performance), or ``None`` to use the analysis' default baseline.
    source
        ``"config"`` for declared slices, ``"auto"`` for those error analysis found.
    """

    name: str
    conditions: tuple[Condition, ...] = ()
    baseline: float | None = None
    source: str = "config"
    features: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(c.feature for c in self.conditions))

    def describe(self) -> str:
        """All conditions joined with ``and`` (``"all rows"`` when there are none)."""
        return " and ".join(c.describe() for c in self.conditions) or "all rows"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form: name, the description, the baseline and the source."""
        return {
            "name": self.name,
            "where": self.describe(),
            "baseline": self.baseline,
            "source": self.source,
        }

    def to_config(self) -> dict[str, Any]:
        """The config entry that :meth:`from_config` reads back into this slice.

        It is what a user pastes under ``analyze.slices`` (the source is not kept: a
        pasted slice is a declared one). Two conditions on one feature cannot be written
        as one entry; the last one wins.

        Examples
        --------
        >>> sl = Slice("big", (Condition("x", min=4.0), Condition("c", values=("u", ""))))
        >>> sl.to_config()
        {'name': 'big', 'where': {'x': {'min': 4.0}, 'c': ['u', None]}}
        >>> Slice.from_config(sl.to_config()) == sl
        True
        """
        where: dict[str, Any] = {}
        for c in self.conditions:
            if c.values is not None:
                where[c.feature] = [None if v == "" else v for v in c.values]
            elif c.contains is not None:
                where[c.feature] = {_CONTAINS: c.contains}
            else:
                where[c.feature] = {
                    k: v for k, v in (("min", c.min), ("max", c.max)) if v is not None
                }
        entry: dict[str, Any] = {"name": self.name, "where": where}
        if self.baseline is not None:
            entry["baseline"] = self.baseline
        return entry

    @classmethod
    def from_config(cls, entry: Any, where: str = "analyze.slices") -> Slice:
        """Build from one config entry ``{name, where: {feature: condition}, baseline}``.

        Parameters
        ----------
        entry
            A mapping (or an OmegaConf node / dataclass converted to one).
        where
            Names the config location in error messages.

        Raises
        ------
        ConfigError
            No name, unknown keys, or a condition that is not a range, a list of values
            or ``{contains: word}``.
        """
        entry = _plain(entry)
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise ConfigError(
                f"{where}: every slice needs a name and conditions, e.g. "
                "{name: large, where: {mean radius: {min: 17}}}; got " + repr(entry)
            )
        name = str(entry["name"])
        unknown = set(entry) - {"name", "where", "baseline"}
        if unknown:
            raise ConfigError(
                f"{where}: slice '{name}' has unknown keys {sorted(unknown)}; "
                "allowed: name, where, baseline"
            )
        conds = entry.get("where") or {}
        if not isinstance(conds, Mapping):
            raise ConfigError(
                f"{where}: slice '{name}': 'where' must map features to conditions, got {conds!r}"
            )
        baseline = entry.get("baseline")
        if baseline is not None and not isinstance(baseline, int | float):
            raise ConfigError(
                f"{where}: slice '{name}': baseline must be a number (the primary metric "
                f"a reference reaches on this slice), got {baseline!r}"
            )
        return cls(
            name=name,
            conditions=tuple(_condition(name, str(f), c, where) for f, c in conds.items()),
            baseline=None if baseline is None else float(baseline),
        )


def parse_slices(entries: Sequence[Any], where: str = "analyze.slices") -> list[Slice]:
    """Slices from a list of config entries, checking that names are unique.

    Parameters
    ----------
    entries
        Config entries, see :meth:`Slice.from_config`.
    where
        Names the config location in error messages.

    Returns
    -------
    list of Slice
        In config order.

    Raises
    ------
    ConfigError
        A bad entry, or two slices with the same name.

    Examples
    --------
    >>> [s.name for s in parse_slices([{"name": "a", "where": {"x": {"max": 1}}}])]
    ['a']
    """
    slices = [Slice.from_config(e, f"{where}[{i}]") for i, e in enumerate(entries)]
    names = [s.name for s in slices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: slice names must be unique; repeated: {dupes}")
    return slices


def slice_mask(frame: pd.DataFrame, sl: Slice, schema: Schema) -> npt.NDArray[np.bool_]:
    """Which rows of ``frame`` are in the slice.

    Parameters
    ----------
    frame
        Raw features (numeric as float, categorical and text as strings).
    sl
        The slice.
    schema
        Tells each condition's feature kind, so a range on a categorical feature or a
        list of values on a numeric one is refused with a clear message.

    Returns
    -------
    numpy.ndarray
        Boolean mask of length ``len(frame)``.

    Raises
    ------
    ConfigError
        A condition names a feature the schema does not have, or does not fit its kind.
    """
    mask = np.ones(len(frame), dtype=bool)
    for cond in sl.conditions:
        if cond.feature not in schema.feature_names:
            raise ConfigError(
                f"slice '{sl.name}' reads the feature '{cond.feature}', which the data does "
                f"not have; features: {', '.join(schema.feature_names)}"
            )
        kind = schema.feature(cond.feature).kind
        column = frame[cond.feature].to_numpy()
        if cond.values is not None:
            if kind == "numeric":
                mask &= _numeric_in(sl.name, cond, column)
            else:
                mask &= np.isin(column.astype(str), np.asarray(cond.values, dtype=str))
        elif cond.contains is not None:
            if kind == "numeric":
                raise ConfigError(
                    f"slice '{sl.name}': '{cond.feature}' is numeric; 'contains' applies to "
                    "text and categorical features. Use {min: .., max: ..} for a range"
                )
            mask &= _contains(column, cond.contains)
        else:
            if kind != "numeric":
                raise ConfigError(
                    f"slice '{sl.name}': '{cond.feature}' is {kind}; a range (min/max) "
                    "applies to numeric features. List the values instead: "
                    f"{cond.feature}: [a, b]"
                )
            x = column.astype(np.float64)
            with np.errstate(invalid="ignore"):
                inside = ~np.isnan(x)
                if cond.min is not None:
                    inside &= x >= cond.min
                if cond.max is not None:
                    inside &= x < cond.max
            mask &= inside
    return mask


def _condition(name: str, feature: str, spec: Any, where: str) -> Condition:
    spec = _plain(spec)
    if isinstance(spec, list | tuple):
        if not spec:
            raise ConfigError(f"{where}: slice '{name}': the value list of '{feature}' is empty")
        return Condition(feature, values=tuple("" if v is None else str(v) for v in spec))
    if isinstance(spec, str | int | float | bool) and not isinstance(spec, bool):
        return Condition(feature, values=(str(spec),))
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {_CONTAINS}:
            word = str(spec[_CONTAINS]).strip()
            if not word:
                raise ConfigError(f"{where}: slice '{name}': '{feature}: contains' is empty")
            return Condition(feature, contains=word)
        if keys and keys <= _RANGE_KEYS:
            lo, hi = spec.get("min"), spec.get("max")
            for key, v in (("min", lo), ("max", hi)):
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                    raise ConfigError(
                        f"{where}: slice '{name}': {feature}.{key} must be a number, got {v!r}"
                    )
            if lo is None and hi is None:
                raise ConfigError(f"{where}: slice '{name}': give '{feature}' a min or a max")
            if lo is not None and hi is not None and not float(lo) < float(hi):
                raise ConfigError(
                    f"{where}: slice '{name}': {feature} has min {lo} >= max {hi}; "
                    "the range is min <= x < max"
                )
            return Condition(
                feature,
                min=None if lo is None else float(lo),
                max=None if hi is None else float(hi),
            )
    raise ConfigError(
        f"{where}: slice '{name}': the condition on '{feature}' is {spec!r}; use a range "
        "{min: 1, max: 5}, a list of values [a, b], or {contains: word}"
    )


def _numeric_in(name: str, cond: Condition, column: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    listed = list(cond.values or ())
    try:
        wanted = np.asarray([float(v) for v in listed if v != ""], dtype=np.float64)
    except ValueError:
        raise ConfigError(
            f"slice '{name}': '{cond.feature}' is numeric but the slice lists "
            f"{listed}; list numbers (null for missing) or use a range {{min: .., max: ..}}"
        ) from None
    x = column.astype(np.float64)
    found: npt.NDArray[np.bool_] = np.isin(x, wanted)
    if "" in listed:  # null / "" in the list: the missing values (NaN)
        found |= np.isnan(x)
    return found


def _contains(column: npt.NDArray[Any], word: str) -> npt.NDArray[np.bool_]:
    import re

    target = word.lower()
    split = re.compile(r"[;,\s]+")
    return np.fromiter(
        (target in split.split(str(v).lower()) for v in column), dtype=bool, count=len(column)
    )


def _plain(value: Any) -> Any:
    """OmegaConf containers as plain Python (other values unchanged)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf comes with the train extra
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"
