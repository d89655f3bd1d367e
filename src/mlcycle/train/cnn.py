"""A small convolutional network for image features, as a scikit-learn classifier.

:class:`CNNClassifier` follows the estimator contract (``fit`` / ``predict_proba`` /
``predict`` / ``classes_``, hyperparameters stored by ``__init__`` under their own names),
so ``sklearn.base.clone``, ``cross_val_predict`` and a ``Pipeline`` take it like any other
family. It reads the model frame's image column (one float32 array ``[C, H, W]`` per row;
see "Model input layout" in ``docs/architecture.md``), or an array ``[N, C, H, W]`` /
``[N, H, W]``, and trains on the CPU with Adam.

The network normalises its input itself (the training pixels' mean and standard
deviation per channel are buffers of the module), so the exported ONNX graph takes raw
pixels: ``blocks x (conv 3x3 -> ReLU -> max-pool 2)`` -> dense ``hidden`` -> ReLU ->
logits. Training is deterministic for a ``random_state``: the weights are initialised
and the batches shuffled from generators seeded with it, and the global random state of
torch is left as it was.

PyTorch is imported inside the methods only, so importing this module costs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from mlcycle._optional import require
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ConfigError, DataError, NotFittedError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["CNNClassifier", "check_params", "image_pipeline", "stack_images"]

logger = logging.getLogger(__name__)


def stack_images(X: Any) -> np.ndarray[Any, Any]:
    """Images as one float32 array ``[N, C, H, W]``.

    Parameters
    ----------
    X
        A frame with one column of images (each ``[C, H, W]`` or ``[H, W]``), a 1-D
        object array of such images, or a numeric array ``[N, C, H, W]`` / ``[N, H, W]``.

    Returns
    -------
    numpy.ndarray
        float32 ``[N, C, H, W]``, C-contiguous.

    Raises
    ------
    DataError
        Not images, or images of different shapes.

    Examples
    --------
    >>> stack_images(np.zeros((3, 8, 8))).shape
    (3, 1, 8, 8)
    >>> column = np.empty(2, dtype=object)
    >>> column[0], column[1] = np.ones((1, 2, 2)), np.zeros((1, 2, 2))
    >>> stack_images(column).shape
    (2, 1, 2, 2)
    """
    columns = getattr(X, "columns", None)
    if columns is not None:
        if len(columns) != 1:
            raise DataError(
                f"the CNN takes exactly one image column; got the columns {list(columns)}"
            )
        X = X.iloc[:, 0].to_numpy()
    arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if arr.dtype == object:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise DataError(f"expected one image per row; got an object array {arr.shape}")
        values = arr.tolist()
        absent = next((i for i, v in enumerate(values) if v is None), None)
        if absent is not None:
            raise DataError(f"row {absent} has no image; the CNN needs an image in every row")
        shapes = {np.shape(v) for v in values}
        if len(shapes) > 1:
            raise DataError(
                f"the images have different shapes {sorted(shapes)}; they must all be the same"
            )
        arr = np.stack([np.asarray(v, dtype=np.float32) for v in values]) if values else arr
    if arr.dtype.kind not in "fiub":
        raise DataError(f"images must hold numbers; got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    if arr.ndim != 4:
        raise DataError(f"images must be [N, C, H, W] or [N, H, W]; got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_params(est: CNNClassifier) -> None:
    """Check the hyperparameters: one message shape for all (name, rule, value).

    Raises
    ------
    ConfigError
        The first hyperparameter out of range, named as its ``model.`` key.

    Examples
    --------
    >>> check_params(CNNClassifier(epochs=0))
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.ConfigError: model.epochs must be a positive integer; got 0
    """
    rules: list[tuple[str, bool, str]] = [
        (
            "channels",
            isinstance(est.channels, Sequence)
            and len(est.channels) > 0
            and all(isinstance(c, int) and c > 0 for c in est.channels),
            "a non-empty list of positive integers",
        ),
        ("hidden", isinstance(est.hidden, int) and est.hidden > 0, "a positive integer"),
        ("epochs", isinstance(est.epochs, int) and est.epochs > 0, "a positive integer"),
        ("batch_size", isinstance(est.batch_size, int) and est.batch_size > 0, "an integer > 0"),
        (
            "learning_rate",
            isinstance(est.learning_rate, int | float) and est.learning_rate > 0,
            "a positive number",
        ),
        (
            "weight_decay",
            isinstance(est.weight_decay, int | float) and est.weight_decay >= 0,
            "a number >= 0",
        ),
    ]
    for name, ok, rule in rules:
        if not ok:
            raise ConfigError(f"model.{name} must be {rule}; got {getattr(est, name)!r}")


def image_pipeline(schema: Schema, model_cfg: Any, seed: int) -> Pipeline:
    """The pipeline of image data: a single step ``model``, the CNN.

    Parameters
    ----------
    schema
        Must have exactly one image feature and no other feature.
    model_cfg
        The ``model`` config; its family must be ``cnn``.
    seed
        ``random_state`` of the CNN.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``[("model", CNNClassifier)]``, unfitted.

    Raises
    ------
    ConfigError
        An image schema with another family, ``cnn`` on data without exactly one image
        feature, or a hyperparameter out of range.
    """
    from sklearn.pipeline import Pipeline

    from mlcycle.train.estimators import FAMILIES, make_estimator

    family = str(getattr(model_cfg, "name", ""))
    images = [f.name for f in schema.image]
    others = [f.name for f in schema.features if f.kind != "image"]
    if images and family != "cnn":
        raise ConfigError(
            f"the data has the image feature(s) {images}, which model={family} cannot "
            "take; train an image model with model=cnn"
        )
    if len(images) != 1 or others:
        what = (
            f"no image feature (features: {schema.feature_names})"
            if not images
            else f"the image features {images} and the other features {others}"
        )
        raise ConfigError(
            f"model=cnn takes data with exactly one image feature and nothing else; this "
            f"data has {what}. Use model={' or model='.join(FAMILIES)} for tabular data, "
            "or drop the other features from the schema"
        )
    return Pipeline([("model", make_estimator(model_cfg, seed))])


def _network(
    in_shape: tuple[int, int, int],
    channels: Sequence[int],
    hidden: int,
    n_classes: int,
    mean: np.ndarray[Any, Any],
    std: np.ndarray[Any, Any],
) -> Any:
    """The torch module: normalise -> conv blocks -> dense -> logits."""
    torch = require("torch", "torch")
    nn = torch.nn

    class _Net(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            c, h, w = in_shape
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1))
            layers: list[Any] = []
            for out in channels:
                layers += [nn.Conv2d(c, int(out), 3, padding=1), nn.ReLU()]
                if min(h, w) >= 2:
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                c = int(out)
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(c * h * w, hidden),
                nn.ReLU(),
                nn.Linear(hidden, n_classes),
            )

        def forward(self, x: Any) -> Any:
            return self.head(self.features((x - self.mean) / self.std))

    return _Net()


class CNNClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A small convolutional network trained with Adam on the CPU.

    Parameters
    ----------
    channels
        Output channels of each convolution block (3x3 convolution, ReLU, 2x2 max-pool
        while the image is at least 2 pixels wide).
    hidden
        Units of the dense layer before the output.
    epochs
        Passes over the training images.
    batch_size
        Images per gradient step.
    learning_rate
        Adam's step size.
    weight_decay
        Adam's L2 penalty (``1 / model.C`` when ``C`` is set).
    random_state
        Seed of the weights' initialisation and of the batches' order.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The class labels, sorted (the columns of :meth:`predict_proba`).
    input_shape_ : tuple of int
        ``(C, H, W)`` of the training images; other shapes are refused.
    module_ : torch.nn.Module
        The trained network (outputs logits; softmax gives the probabilities).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 1, 6, 6)).astype(np.float32)
    >>> y = np.where(X[:, 0, :3].mean(axis=(1, 2)) > 0.5, "top", "bottom")
    >>> clf = CNNClassifier(channels=[4], hidden=8, epochs=2).fit(X, y)
    >>> clf.predict_proba(X[:3]).shape, clf.classes_.tolist()
    ((3, 2), ['bottom', 'top'])
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        hidden: int = 64,
        epochs: int = 15,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        random_state: int = 0,
    ) -> None:
        self.channels = channels
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> CNNClassifier:
        """Train on images ``X`` (see :func:`stack_images`) and labels ``y``.

        Returns
        -------
        CNNClassifier
            ``self``.

        Raises
        ------
        ConfigError
            A hyperparameter out of range.
        DataError
            Not images, fewer than two classes, or non-finite pixels.
        """
        torch = require("torch", "torch")
        check_params(self)
        images = stack_images(X)
        labels = np.asarray(y)
        if len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if not np.isfinite(images).all():
            raise DataError("the training images hold NaN or infinite pixels; clean them first")
        classes, target = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"the CNN needs at least two classes; got {list(classes)}")
        n, c, h, w = images.shape
        mean = images.mean(axis=(0, 2, 3))
        std = images.std(axis=(0, 2, 3))
        std = np.where(std > 1e-6, std, 1.0)

        seed = int(self.random_state)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _network((c, h, w), self.channels, int(self.hidden), len(classes), mean, std)
        x_all = torch.from_numpy(images)
        y_all = torch.from_numpy(target.astype(np.int64))
        optimiser = torch.optim.Adam(
            net.parameters(), lr=float(self.learning_rate), weight_decay=float(self.weight_decay)
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.Generator().manual_seed(seed)
        last_loss = float("nan")
        net.train()
        for _ in range(int(self.epochs)):
            perm = torch.randperm(n, generator=order)
            for lo in range(0, n, int(self.batch_size)):
                idx = perm[lo : lo + int(self.batch_size)]
                optimiser.zero_grad()
                loss = loss_fn(net(x_all[idx]), y_all[idx])
                loss.backward()
                optimiser.step()
                last_loss = float(loss.item())
        net.eval()
        logger.debug(
            "CNN: %d epochs on %d images %s in %.2f s (last batch loss %.4f)",
            self.epochs,
            n,
            (c, h, w),
            time.perf_counter() - start,
            last_loss,
        )
        self.module_ = net
        self.classes_ = classes
        self.input_shape_ = (c, h, w)
        self.n_features_in_ = 1
        return self

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, float32 ``[N, n_classes]`` in :attr:`classes_` order.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        DataError
            Images of another shape than the training ones.
        """
        if not hasattr(self, "module_"):
            raise NotFittedError("this CNNClassifier is not fitted yet; call fit first")
        torch = require("torch", "torch")
        images = stack_images(X)
        if tuple(images.shape[1:]) != self.input_shape_:
            raise DataError(
                f"the images have shape {list(images.shape[1:])}; the CNN was trained on "
                f"{list(self.input_shape_)} (channels, height, width)"
            )
        with torch.inference_mode():
            logits = self.module_(torch.from_numpy(images))
            proba = torch.softmax(logits, dim=1)
        return np.asarray(proba.numpy(), dtype=np.float32)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """The most probable class of each image."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])
