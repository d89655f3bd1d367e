"""An arm: one loaded model with its own micro-batcher and monitor.

The server always has a ``champion`` arm; during a rollout it also has a ``challenger``.
Each arm logs its predictions through its own monitor process (so the challenger's rows
carry its version and its drift is measured on its own), under its arm name.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.serve.batching import MicroBatcher
from mlcycle.serve.model import ServedModel

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlcycle.monitor.service import MonitorClient
    from mlcycle.serve.metrics import ServeMetrics
    from mlcycle.serve.settings import ServeSettings

__all__ = ["Arm", "describe", "load_arm_model", "make_arm", "warm_up_problems"]

log = logging.getLogger("mlcycle.serve")


@dataclass(frozen=True)
class Arm:
    """A model the server can route to, under an arm name."""

    name: str
    model: ServedModel
    batcher: MicroBatcher
    monitor: MonitorClient | None

    @property
    def model_doc(self) -> dict[str, str]:
        """``{"name", "version", "arm"}``, as responses show it."""
        return {"name": self.model.name, "version": self.model.version, "arm": self.name}

    @property
    def version_header(self) -> bytes:
        """The ``X-Model-Version`` header value."""
        return self.model.version.encode("latin-1", "replace")

    def renamed(self, name: str) -> Arm:
        """The same model, batcher and monitor under another arm name."""
        return dataclasses.replace(self, name=name)

    def close(self) -> None:
        """Stop the batcher's thread and the monitor (which writes what it holds)."""
        self.batcher.close()
        if self.monitor is not None:
            self.monitor.close()


def make_arm(
    name: str,
    model: ServedModel,
    settings: ServeSettings,
    metrics: ServeMetrics,
    in_flight: Callable[[], int],
) -> Arm:
    """An arm for ``model``: a batcher, and a monitor process when monitoring is on."""
    batcher = MicroBatcher(
        model.predict, settings.batching, in_flight=in_flight, on_batch=metrics.batch_rows.observe
    )
    monitor = None
    if settings.monitor.enabled:
        from mlcycle.serve.app import start_monitor

        monitor = start_monitor(model, settings, metrics)
    return Arm(name, model, batcher, monitor)


def load_arm_model(settings: ServeSettings, bundle: str, *, name: str, version: str) -> ServedModel:
    """Load a challenger's bundle with the server's settings, under the champion's name.

    Raises
    ------
    mlcycle.exceptions.BundleError
        The bundle is missing, corrupted or not loadable.
    """
    return ServedModel.load(
        dataclasses.replace(settings, bundle=bundle, model_name=name, model_version=version)
    )


def warm_up_problems(model: ServedModel) -> list[str]:
    """What is wrong with ``model``'s answer to a warm-up request (empty: nothing).

    The request is the row :meth:`ServedModel.load` warms up with (zeros, or each
    categorical feature's first category); it must get finite probabilities that sum
    to 1.
    """
    from mlcycle.serve.model import warmup_inputs

    try:
        _, proba = model.predict(warmup_inputs(model.validator))
    except Exception as exc:  # the challenger is broken: say so, do not route to it
        return [f"the warm-up prediction failed: {exc}"]
    proba = np.asarray(proba, dtype=np.float64)
    if not np.isfinite(proba).all():
        return ["the warm-up prediction gave non-finite probabilities"]
    total = float(proba.sum(axis=1)[0]) if proba.size else math.nan
    if not math.isclose(total, 1.0, abs_tol=1e-3):
        return [f"the warm-up probabilities sum to {total:.4f}, not 1"]
    return []


def describe(arm: Arm | None) -> dict[str, Any] | None:
    """An arm as the admin API shows it."""
    if arm is None:
        return None
    return {**arm.model_doc, "bundle": str(arm.model.bundle.path)}
