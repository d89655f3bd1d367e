"""Export the image pipeline's CNN to ONNX with PyTorch's exporter.

The graph takes the ``image`` input (float32 ``[N, C, H, W]``, raw pixels: the network
normalises them itself) and has the two outputs of the contract: ``probabilities``
(float32 ``[N, n_classes]``, a softmax inside the graph) and ``label`` (string ``[N]``:
``ArgMax`` of the probabilities, then ``Gather`` from a string initializer of the
classes, so ties go to the first class, like numpy's ``argmax``).

``torch.onnx.export(..., dynamo=True)`` traces the network with an example batch of 2
images and a dynamic batch axis: with a batch of 1 the exporter specialises the size and
the graph would only take single images (pytorch/pytorch#148629). Opset 18, like the
scikit-learn graphs. The exporter's console output and its known warnings are kept out
of the user's terminal; anything else it warns about passes through.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ExportError, NotFittedError
from mlcycle.train.pipeline import INPUT_IMAGE

if TYPE_CHECKING:
    import onnx
    from sklearn.pipeline import Pipeline

__all__ = ["EXAMPLE_BATCH", "cnn_to_onnx"]

#: Images in the example batch the exporter traces (at least 2, see the module docs).
EXAMPLE_BATCH = 2
_OPSET = 18
_LABEL = "label"
_PROBABILITIES = "probabilities"

#: Warnings torch's exporter raises about its own internals (nothing the user can act on).
_KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)
_QUIET_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")


def cnn_to_onnx(pipeline: Pipeline, schema: Schema) -> onnx.ModelProto:
    """The ONNX graph of a fitted image pipeline (:func:`~mlcycle.train.cnn.image_pipeline`).

    Parameters
    ----------
    pipeline
        The fitted pipeline whose last step is a
        :class:`~mlcycle.train.cnn.CNNClassifier`.
    schema
        The training data's schema (one image feature).

    Returns
    -------
    onnx.ModelProto
        A checked model: input ``image`` ``[N, C, H, W]``, outputs ``label`` and
        ``probabilities``, with the model properties of the scikit-learn graphs.

    Raises
    ------
    NotFittedError
        The pipeline has not been fitted.
    ExportError
        The exporter failed, or the graph failed onnx's checker.
    """
    torch = require("torch", "torch")
    onnx_mod = require("onnx", "train")
    estimator = pipeline.steps[-1][1]
    if not hasattr(estimator, "module_"):
        raise NotFittedError(
            f"the {type(estimator).__name__} pipeline is not fitted; call fit_model first"
        )
    classes = [str(c) for c in estimator.classes_]
    c, h, w = estimator.input_shape_

    class _Probabilities(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: Any) -> Any:
            return torch.softmax(self.net(image), dim=1)

    wrapper = _Probabilities(estimator.module_).eval()
    example = torch.zeros((EXAMPLE_BATCH, c, h, w), dtype=torch.float32)
    batch = torch.export.Dim("batch")
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                dynamic_shapes={"image": {0: batch}},
                input_names=[INPUT_IMAGE],
                output_names=[_PROBABILITIES],
                opset_version=_OPSET,
                verbose=False,
                optimize=True,
            )
        model: onnx.ModelProto = program.model_proto
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ExportError(
            f"torch.onnx could not export the CNN ({type(exc).__name__}: {first_line})"
        ) from exc

    _add_label(model, classes)
    onnx_mod.helper.set_model_props(
        model,
        {
            "mlcycle.classes": json.dumps(classes),
            "mlcycle.numeric": json.dumps([]),
            "mlcycle.categorical": json.dumps([]),
            "mlcycle.text": json.dumps([]),
            "mlcycle.image": json.dumps([f.name for f in schema.image]),
        },
    )
    try:
        onnx_mod.checker.check_model(model)
    except Exception as exc:
        raise ExportError(f"the ONNX graph of the CNN failed onnx's checker: {exc}") from exc
    return model


def _add_label(model: onnx.ModelProto, classes: list[str]) -> None:
    """Append ``label = classes[argmax(probabilities)]`` and order the outputs label first."""
    onnx_mod = require("onnx", "train")
    helper, tp = onnx_mod.helper, onnx_mod.TensorProto
    graph = model.graph
    names = [o.name for o in graph.output]
    if names != [_PROBABILITIES]:
        raise ExportError(f"the exported CNN has the outputs {names}; expected probabilities")
    table = onnx_mod.numpy_helper.from_array(np.array(classes, dtype=object), "mlcycle_classes")
    graph.initializer.append(table)
    graph.node.extend(
        [
            helper.make_node(
                "ArgMax",
                [_PROBABILITIES],
                ["mlcycle_label_index"],
                axis=1,
                keepdims=0,
                name="mlcycle_argmax",
            ),
            helper.make_node(
                "Gather",
                ["mlcycle_classes", "mlcycle_label_index"],
                [_LABEL],
                axis=0,
                name="mlcycle_label",
            ),
        ]
    )
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    label = helper.make_tensor_value_info(_LABEL, tp.STRING, [batch.dim_param or None])
    probabilities = graph.output[0]
    outputs = [label, probabilities]
    del graph.output[:]
    graph.output.extend(outputs)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporter's prints, log lines and known warnings off the console."""
    loggers = [logging.getLogger(n) for n in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    sink = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            for message, category in _KNOWN_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
