"""The schema of a dataset: features, their kinds and allowed values, the label.

A schema is saved as an editable YAML file next to the data file
(``data/<stem>.schema.yaml``). It is inferred on first use; after that the file is the
contract: training checks the data against it, the bundle's signature carries it, and
serving validates requests with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlcycle.exceptions import SchemaError

__all__ = ["FEATURE_KINDS", "FeatureKind", "FeatureSpec", "Schema"]

FeatureKind = Literal["numeric", "categorical", "text", "image"]
FEATURE_KINDS: tuple[str, ...] = ("numeric", "categorical", "text", "image")

_HEADER = """\
# mlcycle dataset schema. Edit freely: this file is the contract between the data,
# the trained model and the server.
#   kind: numeric | categorical | text | image
#   min / max: allowed range of a numeric feature (serving rejects values outside it
#              when the out-of-range policy says so; training warns), or the pixel
#              values seen in an image feature
#   shape: [channels, height, width] of every image of an image feature
#   categories: the known values of a categorical feature
#   nullable: whether the feature may be missing
"""


@dataclass
class FeatureSpec:
    """One input feature.

    Parameters
    ----------
    name
        Column name in the data file.
    kind
        ``numeric``, ``categorical``, ``text`` or ``image``.
    dtype
        Storage type seen in the data: ``float64``, ``int64``, ``bool`` or ``string``
        (an image feature: its pixels' type, e.g. ``uint8`` or ``float32``).
    min, max
        Allowed range (numeric features), or the pixel values seen (image features).
    categories
        Known values (categorical features only), as strings.
    nullable
        Whether missing values are allowed.
    shape
        ``[channels, height, width]`` of every image (image features only).
    """

    name: str
    kind: FeatureKind
    dtype: str = "float64"
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    nullable: bool = False
    shape: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, without keys that do not apply to the kind."""
        d = asdict(self)
        if self.kind not in ("numeric", "image"):
            d.pop("min")
            d.pop("max")
        if self.kind != "image":
            d.pop("shape")
        if self.kind != "categorical":
            d.pop("categories")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "schema") -> FeatureSpec:
        """Build from plain data, with a clear error for a bad entry."""
        if not isinstance(d, dict) or "name" not in d:
            raise SchemaError(f"{where}: every feature needs a 'name'; got {d!r}")
        kind = d.get("kind")
        if kind not in FEATURE_KINDS:
            raise SchemaError(
                f"{where}: feature '{d['name']}' has kind {kind!r}; "
                f"use one of {', '.join(FEATURE_KINDS)}"
            )
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise SchemaError(
                f"{where}: feature '{d['name']}' has unknown keys {sorted(unknown)}; "
                "allowed: name, kind, dtype, min, max, categories, nullable, shape"
            )
        cats = d.get("categories")
        shape = _image_shape(d, kind, where)
        return cls(
            name=str(d["name"]),
            kind=kind,
            dtype=str(d.get("dtype", "float64" if kind == "numeric" else "string")),
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
            categories=None if cats is None else [str(c) for c in cats],
            nullable=bool(d.get("nullable", False)),
            shape=shape,
        )


def _image_shape(d: dict[str, Any], kind: str, where: str) -> list[int] | None:
    """The checked ``shape`` of an image feature (``None`` for other kinds)."""
    shape = d.get("shape")
    if kind != "image":
        if shape is not None:
            raise SchemaError(
                f"{where}: feature '{d['name']}' is {kind} and has a 'shape'; only image "
                "features have one (remove it, or set kind: image)"
            )
        return None
    ok = (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    )
    if not ok or not isinstance(shape, list):
        raise SchemaError(
            f"{where}: image feature '{d['name']}' has shape {shape!r}; it needs "
            "shape: [channels, height, width], three positive integers (e.g. [1, 8, 8])"
        )
    return [int(v) for v in shape]


@dataclass
class Schema:
    """Features, label column and classes of a classification dataset.

    Examples
    --------
    >>> s = Schema(label="y", classes=["a", "b"],
    ...            features=[FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical",
    ...                                                              categories=["u"])])
    >>> [f.name for f in s.numeric], [f.name for f in s.categorical]
    (['x'], ['c'])
    >>> Schema.from_dict(s.to_dict()) == s
    True
    """

    label: str
    classes: list[str]
    features: list[FeatureSpec] = field(default_factory=list)

    @property
    def numeric(self) -> list[FeatureSpec]:
        """Numeric features, in schema order."""
        return [f for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[FeatureSpec]:
        """Categorical features, in schema order."""
        return [f for f in self.features if f.kind == "categorical"]

    @property
    def text(self) -> list[FeatureSpec]:
        """Text features, in schema order."""
        return [f for f in self.features if f.kind == "text"]

    @property
    def image(self) -> list[FeatureSpec]:
        """Image features, in schema order."""
        return [f for f in self.features if f.kind == "image"]

    @property
    def feature_names(self) -> list[str]:
        """All feature names, in schema order."""
        return [f.name for f in self.features]

    @property
    def model_order(self) -> list[str]:
        """Column order the model is trained on: numeric, categorical, text, image (see docs)."""
        return [f.name for f in [*self.numeric, *self.categorical, *self.text, *self.image]]

    def feature(self, name: str) -> FeatureSpec:
        """The feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise SchemaError(f"the schema has no feature '{name}'; it has {self.feature_names}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what the YAML file and ``signature.json`` hold)."""
        return {
            "label": self.label,
            "classes": list(self.classes),
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "schema") -> Schema:
        """Build from plain data, with errors that name ``where`` (usually the file)."""
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected a mapping with label, classes, features")
        for key in ("label", "classes", "features"):
            if key not in d:
                raise SchemaError(f"{where}: missing '{key}'")
        if not isinstance(d["features"], list) or not d["features"]:
            raise SchemaError(f"{where}: 'features' must be a non-empty list")
        features = [FeatureSpec.from_dict(f, where) for f in d["features"]]
        names = [f.name for f in features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"{where}: features listed twice: {dupes}")
        if d["label"] in names:
            raise SchemaError(f"{where}: the label '{d['label']}' is also listed as a feature")
        return cls(
            label=str(d["label"]),
            classes=[str(c) for c in d["classes"]],
            features=features,
        )

    def save(self, path: Path) -> Path:
        """Write the schema as commented YAML; returns ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        path.write_text(_HEADER + body, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Schema:
        """Read a schema file written by :meth:`save` (or by hand)."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SchemaError(f"schema file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise SchemaError(f"schema file {path} is not valid YAML: {exc}") from None
        return cls.from_dict(data, where=str(path))
