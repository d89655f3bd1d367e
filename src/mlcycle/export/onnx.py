"""Convert a fitted pipeline to ONNX with skl2onnx.

The graph has the inputs ``numeric`` (float32 ``[N, n_numeric]``), ``categorical``
(string ``[N, n_categorical]``) and ``text`` (string ``[N, n_text]``), each only when its
group is non-empty (an image model has the single input ``image``, float32
``[N, C, H, W]``, and is exported by :mod:`mlcycle.export.cnn_onnx`), and exactly two
outputs: ``label`` (string ``[N]``) and ``probabilities`` (float32 ``[N, n_classes]``,
columns in ``classes`` order). See "Model input layout" in ``docs/architecture.md``.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlcycle._optional import require
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ExportError, NotFittedError
from mlcycle.train.pipeline import INPUT_CATEGORICAL, INPUT_NUMERIC, INPUT_TEXT

if TYPE_CHECKING:
    import onnx
    from sklearn.pipeline import Pipeline

__all__ = ["OUTPUT_LABEL", "OUTPUT_PROBABILITIES", "TARGET_OPSET", "to_onnx"]

#: Name of the output holding the predicted labels.
OUTPUT_LABEL = "label"
#: Name of the output holding the class probabilities.
OUTPUT_PROBABILITIES = "probabilities"
#: Opsets of the exported graph. Opset 18 / ai.onnx.ml 3 run on every onnxruntime since
#: 1.14, so bundles also load on serving images older than the training environment.
TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}

#: Locale of the graph's lower-casing of text (onnxruntime's StringNormalizer).
TEXT_LOCALE = "C.UTF-8"
#: The graph's word pattern (RE2): runs of two or more letters, digits or underscores,
#: what scikit-learn's default ``(?u)\\b\\w\\w+\\b`` matches. Given as a pattern so
#: punctuation between words does not break n-grams (skl2onnx's default splits on
#: separators and leaves empty tokens that do).
TEXT_TOKENS = r"[\p{L}\p{N}_][\p{L}\p{N}_]+"

_PATCH_LOCK = threading.Lock()


def to_onnx(pipeline: Pipeline, schema: Schema) -> onnx.ModelProto:
    """The ONNX graph of a fitted pipeline built by :func:`~mlcycle.train.build_pipeline`.

    Parameters
    ----------
    pipeline
        Fitted pipeline (``preprocess`` → ``model``) trained on a frame in
        ``schema.model_order``.
    schema
        Gives the widths of the ``numeric`` and ``categorical`` inputs.

    Returns
    -------
    onnx.ModelProto
        A checked model with outputs ``label`` and ``probabilities``.

    Raises
    ------
    ExportError
        skl2onnx has no converter for a step, or the conversion failed.
    NotFittedError
        The pipeline has not been fitted.
    """
    if schema.image:  # the CNN: PyTorch's exporter, not skl2onnx
        from mlcycle.export.cnn_onnx import cnn_to_onnx

        return cnn_to_onnx(pipeline, schema)
    if pipeline.steps[0][0] == "derive":  # data.derived: their graph in front (docs/features.md)
        from mlcycle.features.graph import derived_to_onnx

        return derived_to_onnx(pipeline, schema, to_onnx)
    onnx_mod = require("onnx", "train")
    convert = require("skl2onnx", "train").convert_sklearn
    types = require("skl2onnx.common.data_types", "train")

    estimator = pipeline.steps[-1][1]
    est_name = type(estimator).__name__
    if not hasattr(estimator, "classes_"):
        raise NotFittedError(f"the {est_name} pipeline is not fitted; call fit_model first")
    initial_types: list[tuple[str, Any]] = []
    if schema.numeric:
        initial_types.append((INPUT_NUMERIC, types.FloatTensorType([None, len(schema.numeric)])))
    if schema.categorical:
        initial_types.append(
            (INPUT_CATEGORICAL, types.StringTensorType([None, len(schema.categorical)]))
        )
    if schema.text:
        initial_types.append((INPUT_TEXT, types.StringTensorType([None, len(schema.text)])))
    options: dict[int, dict[str, Any]] = {id(estimator): {"zipmap": False}}
    for step in _text_vectorizers(pipeline):
        # onnxruntime's StringNormalizer lower-cases under a named locale; C.UTF-8 ships
        # with glibc itself, en_US.UTF-8 (skl2onnx's default) needs a language pack.
        options[id(step)] = {"locale": TEXT_LOCALE, "tokenexp": TEXT_TOKENS}
    try:
        with _skl2onnx_fixes(est_name):
            model: onnx.ModelProto = convert(
                pipeline,
                name="mlcycle",
                initial_types=initial_types,
                options=options,
                target_opset=dict(TARGET_OPSET),
            )
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ExportError(
            f"skl2onnx could not convert the pipeline ending in {est_name} "
            f"({type(exc).__name__}: {first_line}). Train one of the supported families "
            "(logreg, gbdt, random_forest, mlp) with mlcycle's preprocessing, or register a "
            "custom skl2onnx converter for the step named in the message"
        ) from exc

    _rename_outputs(model, est_name)
    onnx_mod.helper.set_model_props(
        model,
        {
            "mlcycle.classes": json.dumps([str(c) for c in estimator.classes_]),
            "mlcycle.numeric": json.dumps([f.name for f in schema.numeric]),
            "mlcycle.categorical": json.dumps([f.name for f in schema.categorical]),
            "mlcycle.text": json.dumps([f.name for f in schema.text]),
        },
    )
    try:
        onnx_mod.checker.check_model(model)
    except Exception as exc:
        raise ExportError(f"the ONNX graph of {est_name} failed onnx's checker: {exc}") from exc
    return model


def _text_vectorizers(pipeline: Pipeline) -> list[Any]:
    """The fitted TF-IDF vectorisers inside the pipeline's ``preprocess`` step."""
    preprocess = dict(pipeline.steps).get("preprocess")
    fitted = getattr(preprocess, "named_transformers_", {})
    return [t for name, t in fitted.items() if name.startswith(f"{INPUT_TEXT}_")]


def _rename_outputs(model: onnx.ModelProto, est_name: str) -> None:
    """Give the two graph outputs the names of the contract, whatever skl2onnx chose."""
    outputs = list(model.graph.output)
    if len(outputs) != 2:
        raise ExportError(
            f"the ONNX graph of {est_name} has {len(outputs)} outputs "
            f"({[o.name for o in outputs]}); expected a label and a probabilities output"
        )
    renames = {outputs[0].name: OUTPUT_LABEL, outputs[1].name: OUTPUT_PROBABILITIES}
    if all(old == new for old, new in renames.items()):
        return
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    for out in model.graph.output:
        out.name = renames[out.name]


@contextmanager
def _skl2onnx_fixes(est_name: str) -> Iterator[None]:
    """Work around a skl2onnx 1.20 / onnx >= 1.19 incompatibility, for the conversion only.

    skl2onnx's HistGradientBoosting converter passes Python ``bool`` values in the
    integer attribute ``nodes_missing_value_tracks_true``; recent onnx releases reject
    booleans in integer attributes ("Expected an int, got a boolean"). The wrapper casts
    the value to ``int`` (what the attribute means) and is removed afterwards.
    """
    if est_name != "HistGradientBoostingClassifier":
        yield
        return
    from skl2onnx.common import tree_ensemble

    with _PATCH_LOCK:
        original = tree_ensemble.add_node

        @functools.wraps(original)
        def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
            tracks = int(nodes_missing_value_tracks_true)
            return original(*args, nodes_missing_value_tracks_true=tracks, **kwargs)

        tree_ensemble.add_node = add_node
        try:
            yield
        finally:
            tree_ensemble.add_node = original
