"""The served model: a loaded bundle, its name and version, and its request validator."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.bundle import MANIFEST_FILE, Bundle
from mlcycle.serve.errors import RequestError
from mlcycle.serve.settings import ServeSettings
from mlcycle.serve.validation import Validator

__all__ = ["ServedModel", "warmup_inputs"]


@dataclass
class ServedModel:
    """A bundle ready to answer requests.

    Attributes
    ----------
    bundle
        The loaded bundle.
    name, version
        Shown in responses, the ``X-Model-Version`` header and metric labels.
    validator
        Checks requests against the bundle's signature.
    load_seconds
        Time to verify and load the bundle and run one warm-up prediction.
    """

    bundle: Bundle
    name: str
    version: str
    validator: Validator
    load_seconds: float

    @classmethod
    def load(cls, settings: ServeSettings) -> ServedModel:
        """Load ``settings.bundle`` with ``settings.ort`` options and warm it up.

        The version is ``settings.model_version`` when set (the registry version),
        else the first 12 hex digits of the bundle manifest's sha256.

        Raises
        ------
        mlcycle.exceptions.BundleError
            The bundle is missing, corrupted or not loadable.
        """
        start = time.perf_counter()
        ort = settings.ort
        bundle = Bundle.load(
            settings.bundle,
            intra_op_threads=ort.intra_op_threads or None,
            inter_op_threads=ort.inter_op_threads or None,
            graph_optimization=ort.graph_optimization,
        )
        validator = Validator(bundle.signature, settings.validation)
        bundle.predict(warmup_inputs(validator))
        version = settings.model_version or _manifest_digest(bundle.path)
        name = settings.model_name or bundle.model_name
        return cls(bundle, name, version, validator, time.perf_counter() - start)

    def check_name(self, name: str | None, version: str | None) -> None:
        """Raise a 404 unless ``name`` (and ``version``, when given) is this model.

        Raises
        ------
        RequestError
            404 ``unknown_model``, naming the model that is served.
        """
        if name != self.name or (version is not None and version != self.version):
            asked = f"{name!r}" + (f" version {version!r}" if version is not None else "")
            raise RequestError(
                404,
                "unknown_model",
                f"model {asked} is not served here; this serves "
                f"{self.name!r} version {self.version!r}",
                "path",
            )

    @property
    def classes(self) -> list[str]:
        """Class labels, in the order of the probability columns."""
        return self.bundle.classes

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Labels ``[N]`` and probabilities ``[N, C]`` (float32) for validated inputs."""
        return self.bundle.predict(inputs)


def _manifest_digest(path: Path) -> str:
    return hashlib.sha256((path / MANIFEST_FILE).read_bytes()).hexdigest()[:12]


def warmup_inputs(validator: Validator) -> dict[str, np.ndarray[Any, Any]]:
    """One valid row of model inputs: zeros (a black image), and each categorical's first
    category."""
    out: dict[str, np.ndarray[Any, Any]] = {}
    for block in validator.blocks:
        width = len(block.features)
        if block.shape is not None:  # an image: one black image
            out[block.name] = np.zeros((1, *block.shape), dtype=np.float32)
        elif block.numeric:
            out[block.name] = np.zeros((1, width), dtype=np.float32)
        else:
            cats = [min(validator.categories[f], default="") for f in block.features]
            out[block.name] = np.array([cats], dtype=object)
    return out
