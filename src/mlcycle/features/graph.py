"""The derivation as an ONNX graph, merged in front of the model's graph.

The derivation graph takes the model's raw inputs (``numeric`` float32 ``[N, n_numeric]``
and ``categorical`` string ``[N, n_categorical]``) and gives the numeric block widened by
one column per derived feature, and the categorical block unchanged. It is built with
``onnx.helper`` from standard operators that exist since opset 13 and ``ai.onnx.ml`` 1
(the ``CategoryMapper`` of a flag's ``in`` terms), at the versions the model's graph
imports (at most ``TARGET_OPSET``: 18 and 3), and joined to the skl2onnx graph with
``onnx.compose.merge_models``, so the exported model still takes the raw inputs and a
server needs no Python preprocessing. Every step mirrors :mod:`mlcycle.features.compute`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ExportError
from mlcycle.features.calendar import date_part
from mlcycle.features.compute import DATE_LIMIT
from mlcycle.features.spec import Bins, DatePart, DerivedFeature, Flag, Ratio, Term

if TYPE_CHECKING:
    import onnx
    from sklearn.pipeline import Pipeline

__all__ = ["derivation_model", "derived_to_onnx", "prepend_derivation"]

_NUMERIC, _CATEGORICAL = "numeric", "categorical"  # the model's input names
_PREFIX = "derive/"
#: Opsets the derivation needs at least (ReduceSum's axes input is opset 13). skl2onnx
#: declares the lowest opsets its nodes need (often 13 and ai.onnx.ml 1), and
#: ``merge_models`` needs equal versions, so the derivation takes the model's.
_MIN_OPSET = {"": 13, "ai.onnx.ml": 1}
_DEFAULT_OPSET = {"": 18, "ai.onnx.ml": 3}


def derived_to_onnx(
    pipeline: Pipeline,
    schema: Schema,
    convert: Callable[[Pipeline, Schema], onnx.ModelProto],
) -> onnx.ModelProto:
    """Export a pipeline whose first step derives features (``derive``).

    Parameters
    ----------
    pipeline
        Fitted; its first step is a :class:`~mlcycle.features.step.DeriveFeatures`.
    schema
        The raw features (the inputs of the exported graph).
    convert
        Converts the rest of the pipeline for a schema (``mlcycle.export.onnx.to_onnx``).

    Returns
    -------
    onnx.ModelProto
        The rest's graph with the derivation in front; inputs as for ``schema``.
    """
    step = pipeline.steps[0][1]
    inner = convert(pipeline[1:], step.output_schema())
    return prepend_derivation(inner, step.features_, schema)


def prepend_derivation(
    model: onnx.ModelProto, features: Sequence[DerivedFeature], schema: Schema
) -> onnx.ModelProto:
    """``model`` (which takes the widened numeric block) with the derivation in front.

    Parameters
    ----------
    model
        A graph whose ``numeric`` input holds the raw numeric features, then one column
        per derived feature, and whose ``categorical`` input (if any) the raw ones.
    features
        The derived features, in column order.
    schema
        The raw features.

    Returns
    -------
    onnx.ModelProto
        Inputs ``numeric`` / ``categorical`` (and the model's others) of the raw schema;
        the model's outputs; metadata ``mlcycle.derived`` lists the derived features.

    Raises
    ------
    ExportError
        The model's opsets are too old for the derivation, or the merged graph fails
        onnx's checker.
    """
    onnx_mod = require("onnx", "train")
    opsets = {(o.domain or ""): int(o.version) for o in model.opset_import}
    for domain, low in _MIN_OPSET.items():
        if opsets.get(domain, low) < low:
            raise ExportError(
                f"the model's graph imports {domain or 'ai.onnx'} opset {opsets[domain]}; the "
                f"derived features need {low} or later (export with TARGET_OPSET)"
            )
    derive = derivation_model(
        features, schema, opsets={**_DEFAULT_OPSET, **opsets}, ir_version=model.ir_version
    )
    io_map = [(f"{_PREFIX}{_NUMERIC}", _NUMERIC)]
    if schema.categorical:
        io_map.append((f"{_PREFIX}{_CATEGORICAL}", _CATEGORICAL))
    try:
        merged = onnx_mod.compose.merge_models(derive, model, io_map=io_map)
    except Exception as exc:  # name clashes, IR or opset mismatch
        raise ExportError(
            f"could not put the derived features in front of the model's graph: {exc}"
        ) from exc
    merged.producer_name, merged.producer_version = model.producer_name, model.producer_version
    versions = {(o.domain or ""): int(o.version) for o in merged.opset_import}
    del merged.opset_import[:]  # merge_models lists each shared domain twice
    merged.opset_import.extend(onnx_mod.helper.make_opsetid(d, v) for d, v in versions.items())
    merged.graph.name = model.graph.name
    props = {p.key: p.value for p in model.metadata_props}
    props["mlcycle.numeric"] = json.dumps([f.name for f in schema.numeric])
    props["mlcycle.derived"] = json.dumps([_record(f) for f in features])
    onnx_mod.helper.set_model_props(merged, props)
    try:
        onnx_mod.checker.check_model(merged)
    except Exception as exc:
        raise ExportError(f"the graph with derived features failed onnx's checker: {exc}") from exc
    out: onnx.ModelProto = merged
    return out


def derivation_model(
    features: Sequence[DerivedFeature],
    schema: Schema,
    *,
    opsets: dict[str, int] | None = None,
    ir_version: int | None = None,
) -> onnx.ModelProto:
    """The derivation alone: raw ``numeric`` / ``categorical`` in, widened blocks out.

    Parameters
    ----------
    features
        The derived features (from :func:`~mlcycle.features.spec.parse_derived`).
    schema
        The raw features: the inputs' widths and column order.
    opsets
        Domain to version; default opset 18 and ``ai.onnx.ml`` 3.
    ir_version
        The model's IR version (``merge_models`` needs equal ones); default onnx's.

    Returns
    -------
    onnx.ModelProto
        Outputs ``derive/numeric`` (float32 ``[N, n_numeric + len(features)]``) and, when
        the schema has categorical features, ``derive/categorical`` (the input as is).
    """
    onnx_mod = require("onnx", "train")
    helper, tp = onnx_mod.helper, onnx_mod.TensorProto
    g = _Graph(onnx_mod)
    n_num, n_cat = len(schema.numeric), len(schema.categorical)
    inputs, outputs = [], []
    if n_num:
        inputs.append(helper.make_tensor_value_info(_NUMERIC, tp.FLOAT, [None, n_num]))
    if n_cat:
        inputs.append(helper.make_tensor_value_info(_CATEGORICAL, tp.STRING, [None, n_cat]))
    num = {f.name: j for j, f in enumerate(schema.numeric)}
    cat = {f.name: j for j, f in enumerate(schema.categorical)}
    columns = [_column(g, f, num, cat) for f in features]
    out_num = f"{_PREFIX}{_NUMERIC}"
    g.node("Concat", [_NUMERIC, *columns] if n_num else columns, out_num, axis=1)
    width = n_num + len(features)
    outputs.append(helper.make_tensor_value_info(out_num, tp.FLOAT, [None, width]))
    if n_cat:
        out_cat = f"{_PREFIX}{_CATEGORICAL}"
        g.node("Identity", [_CATEGORICAL], out_cat)
        outputs.append(helper.make_tensor_value_info(out_cat, tp.STRING, [None, n_cat]))
    graph = helper.make_graph(g.nodes, "mlcycle_derive", inputs, outputs, g.initializers)
    versions = opsets or _DEFAULT_OPSET
    model: onnx.ModelProto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in versions.items()],
        producer_name="mlcycle",
    )
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _record(feature: DerivedFeature) -> dict[str, Any]:
    return {"name": feature.name, "kind": _KIND[type(feature)], "formula": feature.describe()}


_KIND = {Ratio: "ratio", Bins: "bins", DatePart: "date_part", Flag: "flag"}


class _Graph:
    """Nodes and initializers of the derivation, with unique prefixed names."""

    def __init__(self, onnx_mod: Any) -> None:
        self.onnx = onnx_mod
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._consts: dict[tuple[str, Any], str] = {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{_PREFIX}{hint}_{self._count}"

    def node(self, op: str, inputs: list[str], output: str, domain: str = "", **attrs: Any) -> str:
        node = self.onnx.helper.make_node(
            op, inputs, [output], name=f"{output}:{op}", domain=domain, **attrs
        )
        self.nodes.append(node)
        return output

    def op(self, op: str, *inputs: str, domain: str = "", **attrs: Any) -> str:
        return self.node(op, list(inputs), self.name(op.lower()), domain=domain, **attrs)

    def const(self, value: Any, dtype: Any) -> str:
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, (array.shape, array.tobytes()))
        if key not in self._consts:
            name = self.name("const")
            self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def f32(self, value: float) -> str:
        return self.const(value, np.float32)

    def i64(self, value: int | list[int]) -> str:
        return self.const(value, np.int64)

    def slice_column(self, source: str, j: int) -> str:
        """Column ``j`` of ``source`` as ``[N, 1]``."""
        return self.op("Slice", source, self.i64([j]), self.i64([j + 1]), self.i64([1]))

    def nan_where(self, cond: str, value: str) -> str:
        """NaN where ``cond`` holds, else ``value`` (float32)."""
        return self.op("Where", cond, self.f32(np.nan), value)


class _OnnxIntOps:
    """:class:`~mlcycle.features.calendar.IntOps` as ONNX nodes on int64 tensors."""

    def __init__(self, g: _Graph) -> None:
        self.g = g

    def _v(self, b: str | int) -> str:
        return self.g.i64(b) if isinstance(b, int) else b

    def add(self, a: str, b: str | int) -> str:
        return self.g.op("Add", a, self._v(b))

    def sub(self, a: str, b: str | int) -> str:
        return self.g.op("Sub", a, self._v(b))

    def mul(self, a: str, b: int) -> str:
        return self.g.op("Mul", a, self._v(b))

    def mod(self, a: str, b: int) -> str:
        # integer Mod with fmod=0 takes the divisor's sign: Python's a % b
        return self.g.op("Mod", a, self._v(b), fmod=0)

    def floordiv(self, a: str, b: int) -> str:
        # integer Div truncates towards zero; (a - a % b) / b is exact and floors
        return self.g.op("Div", self.sub(a, self.mod(a, b)), self._v(b))

    def less(self, a: str, b: int) -> str:
        return self.g.op("Less", a, self._v(b))

    def equal(self, a: str, b: int) -> str:
        return self.g.op("Equal", a, self._v(b))

    def and_(self, a: str, b: str) -> str:
        return self.g.op("And", a, b)

    def or_(self, a: str, b: str) -> str:
        return self.g.op("Or", a, b)

    def not_(self, a: str) -> str:
        return self.g.op("Not", a)

    def where(self, cond: str, a: str, b: str) -> str:
        return self.g.op("Where", cond, a, b)


def _column(g: _Graph, feature: DerivedFeature, num: dict[str, int], cat: dict[str, int]) -> str:
    """The ``[N, 1]`` float32 column of one derived feature."""
    tp = g.onnx.TensorProto

    def x(name: str) -> str:
        return g.slice_column(_NUMERIC, num[name])

    if isinstance(feature, Ratio):
        r = g.op("Div", x(feature.numerator), x(feature.denominator))
        return g.nan_where(g.op("Or", g.op("IsNaN", r), g.op("IsInf", r)), r)
    if isinstance(feature, Bins):
        v = x(feature.feature)
        edges = g.const([list(feature.edges)], np.float32)  # [1, k]
        above = g.op("Cast", g.op("GreaterOrEqual", v, edges), to=tp.FLOAT)
        index = g.op("ReduceSum", above, g.i64([1]), keepdims=1)
        return g.nan_where(g.op("IsNaN", v), index)
    if isinstance(feature, DatePart):
        v = x(feature.feature)
        valid = g.op("LessOrEqual", g.op("Abs", v), g.f32(DATE_LIMIT))
        safe = g.op("Where", valid, v, g.f32(0.0))
        secs = g.op("Cast", g.op("Floor", safe), to=tp.INT64)
        part = g.op("Cast", date_part(_OnnxIntOps(g), secs, feature.part), to=tp.FLOAT)
        return g.op("Where", valid, part, g.f32(np.nan))
    masks = [_term(g, t, num, cat) for t in feature.terms]
    combined = masks[0]
    for m in masks[1:]:
        combined = g.op("And" if feature.mode == "all" else "Or", combined, m)
    return g.op("Cast", combined, to=tp.FLOAT)


def _term(g: _Graph, term: Term, num: dict[str, int], cat: dict[str, int]) -> str:
    """The ``[N, 1]`` boolean mask of one flag term."""
    tp = g.onnx.TensorProto
    if term.values is not None:
        keys = sorted(set(term.values))
        hit = g.op(  # 1 for the listed categories, 0 for any other string
            "CategoryMapper",
            g.slice_column(_CATEGORICAL, cat[term.feature]),
            domain="ai.onnx.ml",
            cats_strings=keys,
            cats_int64s=[1] * len(keys),
            default_int64=0,
        )
        mask = g.op("Cast", hit, to=tp.BOOL)
        return g.op("Not", mask) if term.negate else mask
    v = g.slice_column(_NUMERIC, num[term.feature])
    conds = []
    if term.min is not None:
        conds.append(g.op("GreaterOrEqual", v, g.f32(term.min)))
    if term.max is not None:
        conds.append(g.op("Less", v, g.f32(term.max)))
    return conds[0] if len(conds) == 1 else g.op("And", conds[0], conds[1])
