"""Derived features as declared in config (``data.derived``), checked against the schema.

Each entry has a ``name`` (the new numeric feature) and a ``kind``::

    data:
      derived:
        - {name: price_per_item, kind: ratio, numerator: amount, denominator: items}
        - {name: amount_band, kind: bins, feature: amount, edges: [5, 20, 100]}
        - {name: order_month, kind: date_part, feature: ordered_at, part: month}
        - name: tea_or_coffee_only
          kind: flag
          all: [{feature: drink, in: [tea, coffee]}]

Parsing checks everything that can be checked before training (the features exist and
have the right kind, edges are sorted, names are new) and raises a
:class:`~mlcycle.exceptions.ConfigError` that names the entry and the fix.

Examples
--------
>>> from mlcycle.data.schema import FeatureSpec, Schema
>>> schema = Schema("y", ["a", "b"], [FeatureSpec("amount", "numeric"),
...                                   FeatureSpec("items", "numeric")])
>>> (r,) = parse_derived([{"name": "unit", "kind": "ratio", "numerator": "amount",
...                        "denominator": "items"}], schema)
>>> r.describe()
'amount / items'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlcycle.data.schema import Schema
from mlcycle.exceptions import ConfigError

__all__ = [
    "DATE_PARTS",
    "DERIVED_KINDS",
    "Bins",
    "DatePart",
    "DerivedFeature",
    "Flag",
    "Ratio",
    "Term",
    "derived_entries",
    "parse_derived",
]

#: The kinds of derived feature.
DERIVED_KINDS: tuple[str, ...] = ("ratio", "bins", "date_part", "flag")
#: The parts a ``date_part`` feature can take from Unix seconds (UTC).
DATE_PARTS: tuple[str, ...] = ("year", "month", "day", "weekday", "hour", "dayofyear")

_WHERE = "data.derived"
_KEYS: dict[str, frozenset[str]] = {
    "ratio": frozenset({"numerator", "denominator"}),
    "bins": frozenset({"feature", "edges"}),
    "date_part": frozenset({"feature", "part"}),
    "flag": frozenset({"all", "any"}),
}
_NUMERIC_HINT = "For a categorical feature use a flag term {feature: ..., in: [...]}"
_RANGE_HINT = "For a numeric feature use a flag term {feature: ..., min: ..., max: ...}"
_DATE_HINT = (
    "A date must be a numeric feature holding Unix seconds (UTC): convert the column in the "
    "data, e.g. pd.to_datetime(col).astype('int64') // 10**9 (docs/features.md)"
)


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator``; missing when either is missing or the result is not
    finite (a zero denominator)."""

    name: str
    numerator: str
    denominator: str

    def describe(self) -> str:
        """The feature as a short formula."""
        return f"{self.numerator} / {self.denominator}"


@dataclass(frozen=True)
class Bins:
    """The bin index of ``feature``: the number of ``edges`` ``<= x`` (0 to ``len(edges)``),
    so bin ``i`` is ``edges[i-1] <= x < edges[i]``; missing stays missing."""

    name: str
    feature: str
    edges: tuple[float, ...]

    def describe(self) -> str:
        """The feature as a short formula."""
        return f"bin of {self.feature} at {list(self.edges)}"


@dataclass(frozen=True)
class DatePart:
    """A calendar part of ``feature`` (Unix seconds, UTC): year, month (1-12), day
    (1-31), weekday (Monday 0 to Sunday 6), hour (0-23) or dayofyear (1-366)."""

    name: str
    feature: str
    part: str

    def describe(self) -> str:
        """The feature as a short formula."""
        return f"{self.part} of {self.feature}"


@dataclass(frozen=True)
class Term:
    """One condition of a flag: ``feature`` in ``values`` (negated for ``not_in``), or
    ``min <= feature < max`` (either bound optional)."""

    feature: str
    values: tuple[str, ...] | None = None
    negate: bool = False
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        """The condition as a short phrase."""
        if self.values is not None:
            op = "not in" if self.negate else "in"
            return f"{self.feature} {op} [{', '.join(self.values)}]"
        parts = [] if self.min is None else [f"{self.min:g} <="]
        parts.append(self.feature)
        if self.max is not None:
            parts.append(f"< {self.max:g}")
        return " ".join(parts)


@dataclass(frozen=True)
class Flag:
    """1.0 when ``all`` (or ``any``) of ``terms`` hold, else 0.0; never missing."""

    name: str
    mode: Literal["all", "any"]
    terms: tuple[Term, ...]

    def describe(self) -> str:
        """The feature as a short formula."""
        return f" {'and' if self.mode == 'all' else 'or'} ".join(t.describe() for t in self.terms)


DerivedFeature = Ratio | Bins | DatePart | Flag


def derived_entries(value: Any) -> list[Any]:
    """The entries of a ``derived`` setting as a list (``None`` or an unresolved
    ``${data.derived}`` outside a composed config mean none).

    Examples
    --------
    >>> derived_entries("${data.derived}"), derived_entries(None)
    ([], [])
    """
    if value is None or (isinstance(value, str) and value.startswith("${")):
        return []
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        raise ConfigError(
            f"{_WHERE} is {value!r}; it must be a list of entries like "
            "{name: ..., kind: ratio|bins|date_part|flag, ...} (see docs/features.md)"
        )
    return list(value)


def parse_derived(entries: Sequence[Any], schema: Schema) -> list[DerivedFeature]:
    """Check the ``derived`` entries against ``schema`` and build them.

    Parameters
    ----------
    entries
        Mappings as written in config (see the module docstring).
    schema
        The raw features; derived features are computed from these only.

    Returns
    -------
    list of DerivedFeature
        In the given order (the order of the derived columns).

    Raises
    ------
    ConfigError
        An entry without a name or with an unknown kind or key, a feature that does not
        exist or has the wrong kind, unsorted bin edges, an unknown date part, or a name
        that is already a feature (or another derived feature, or the label).
    """
    out: list[DerivedFeature] = []
    taken = {*schema.feature_names, schema.label}
    if entries and schema.image:
        raise ConfigError(
            f"{_WHERE} is set, but the data is images; derived features are computed from "
            "numeric and categorical features (remove data.derived)"
        )
    for i, entry in enumerate(entries):
        feature = _parse_one(entry, i, schema)
        if feature.name in taken:
            raise ConfigError(
                f"{_WHERE}[{i}] '{feature.name}': the name is already taken by a feature, the "
                "label or another derived feature; give the derived feature a new name"
            )
        taken.add(feature.name)
        out.append(feature)
    return out


def _parse_one(entry: Any, i: int, schema: Schema) -> DerivedFeature:
    if (
        not isinstance(entry, Mapping)
        or not isinstance(entry.get("name"), str)
        or not entry["name"]
    ):
        raise ConfigError(
            f"{_WHERE}[{i}] is {entry!r}; each derived feature needs a 'name' and a 'kind', "
            "e.g. {name: unit_price, kind: ratio, numerator: amount, denominator: items}"
        )
    name, kind = str(entry["name"]), entry.get("kind")
    where = f"{_WHERE}[{i}] '{name}'"
    if kind not in _KEYS:
        raise ConfigError(f"{where} has kind {kind!r}; use one of {', '.join(DERIVED_KINDS)}")
    unknown = set(entry) - {"name", "kind"} - _KEYS[kind]
    if unknown:
        allowed = ", ".join(sorted(_KEYS[kind]))
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)} for kind {kind}; use {allowed}"
        )
    if kind == "ratio":
        return Ratio(
            name,
            _feature(entry, "numerator", "numeric", where, schema, _NUMERIC_HINT),
            _feature(entry, "denominator", "numeric", where, schema, _NUMERIC_HINT),
        )
    if kind == "bins":
        feature = _feature(entry, "feature", "numeric", where, schema, _NUMERIC_HINT)
        return Bins(name, feature, _edges(entry, where))
    if kind == "date_part":
        part = entry.get("part")
        if part not in DATE_PARTS:
            raise ConfigError(f"{where} has part {part!r}; use one of {', '.join(DATE_PARTS)}")
        return DatePart(
            name, _feature(entry, "feature", "numeric", where, schema, _DATE_HINT), part
        )
    return _flag(entry, name, where, schema)


def _feature(
    entry: Mapping[str, Any], key: str, kind: str, where: str, schema: Schema, hint: str
) -> str:
    """The raw feature ``entry[key]``, which must exist and be of ``kind``."""
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} needs '{key}': the name of a {kind} feature; got {value!r}")
    kinds = {f.name: f.kind for f in schema.features}
    if value not in kinds:
        raise ConfigError(
            f"{where}: '{key}' names '{value}', which is not a feature of the data (derived "
            f"features are computed from raw features only); the features are "
            f"{schema.feature_names}"
        )
    if kinds[value] != kind:
        raise ConfigError(
            f"{where}: '{key}' names '{value}', a {kinds[value]} feature; it must be {kind}. "
            + hint
        )
    return value


def _edges(entry: Mapping[str, Any], where: str) -> tuple[float, ...]:
    edges = entry.get("edges")
    ok = isinstance(edges, Sequence) and not isinstance(edges, str) and len(edges) > 0
    numbers = [_number(e) for e in edges] if ok and isinstance(edges, Sequence) else [None]
    if not ok or any(e is None for e in numbers):
        raise ConfigError(
            f"{where} needs 'edges': a non-empty list of finite numbers in increasing order, "
            f"e.g. [5, 20, 100]; got {edges!r}"
        )
    values = tuple(float(e) for e in numbers if e is not None)
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(
            f"{where} has edges {list(values)}, which are not strictly increasing; sort them "
            "and drop duplicates"
        )
    return values


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _flag(entry: Mapping[str, Any], name: str, where: str, schema: Schema) -> Flag:
    modes = [m for m in ("all", "any") if m in entry]
    if len(modes) != 1:
        raise ConfigError(
            f"{where} needs exactly one of 'all' or 'any': a list of terms like "
            "{feature: drink, in: [tea, coffee]} or {feature: amount, min: 5, max: 20}"
        )
    mode = modes[0]
    terms = entry[mode]
    if not isinstance(terms, Sequence) or isinstance(terms, str) or not terms:
        raise ConfigError(f"{where}: '{mode}' must be a non-empty list of terms; got {terms!r}")
    parsed = tuple(_term(t, f"{where} {mode}[{j}]", schema) for j, t in enumerate(terms))
    return Flag(name, "all" if mode == "all" else "any", parsed)


def _term(term: Any, where: str, schema: Schema) -> Term:
    example = "{feature: drink, in: [tea, coffee]} or {feature: amount, min: 5, max: 20}"
    if not isinstance(term, Mapping) or "feature" not in term:
        raise ConfigError(f"{where} is {term!r}; a term is {example}")
    unknown = set(term) - {"feature", "in", "not_in", "min", "max"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; a term has 'feature' and either "
            "'in', 'not_in', or 'min' / 'max'"
        )
    lists = [k for k in ("in", "not_in") if k in term]
    bounds = [k for k in ("min", "max") if k in term]
    if len(lists) + (1 if bounds else 0) != 1:
        raise ConfigError(
            f"{where} needs exactly one condition: 'in', 'not_in', or a range 'min' / 'max'; "
            f"e.g. {example}"
        )
    if lists:
        feature = _feature(term, "feature", "categorical", where, schema, _RANGE_HINT)
        values = term[lists[0]]
        if not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise ConfigError(
                f"{where}: '{lists[0]}' must be a non-empty list of categories; got {values!r}"
            )
        # None stands for a missing value, which the model sees as "" (docs/features.md)
        cats = tuple("" if v is None else str(v) for v in values)
        return Term(feature, values=cats, negate=lists[0] == "not_in")
    feature = _feature(term, "feature", "numeric", where, schema, _NUMERIC_HINT)
    low, high = (None if term.get(k) is None else _number(term[k]) for k in ("min", "max"))
    for key, raw, num in (("min", term.get("min"), low), ("max", term.get("max"), high)):
        if raw is not None and num is None:
            raise ConfigError(f"{where}: '{key}' must be a finite number; got {raw!r}")
    if low is None and high is None:
        raise ConfigError(f"{where}: give 'min', 'max' or both (min <= x < max)")
    if low is not None and high is not None and high <= low:
        raise ConfigError(f"{where}: 'max' ({high:g}) must be greater than 'min' ({low:g})")
    return Term(feature, min=low, max=high)
