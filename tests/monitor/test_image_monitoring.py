"""Image features watched by per-image brightness and contrast: profile, live metrics and
drift (brightened images drift, images like the training ones do not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlcycle.bundle import Bundle
from mlcycle.monitor.drift import drift_from_profile
from mlcycle.monitor.images import image_features, image_stats
from mlcycle.monitor.live import LiveMonitor, ModelFacts
from mlcycle.monitor.live_metrics import MonitorMetrics
from mlcycle.monitor.report import _drift_against_profile
from mlcycle.monitor.settings import MonitorSettings, WindowSettings
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ServeSettings
from tests._bundles import build_bundle
from tests._datasets import digits_dataset

# The CNN needs PyTorch (the `torch` extra).
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle("digits", tmp_path_factory.mktemp("digits") / "bundle")


@pytest.fixture(scope="module")
def served(digits_bundle: Path) -> ServedModel:
    return ServedModel.load(ServeSettings(bundle=str(digits_bundle)))


@pytest.fixture(scope="module")
def images() -> np.ndarray[Any, Any]:
    return np.stack(digits_dataset().frame["image"].tolist())  # [1797, 1, 8, 8]


def _facts(model: ServedModel) -> ModelFacts:
    """The facts the server gives its monitor (serve/app.py start_monitor)."""
    v = model.validator
    blocks = [
        (b.name, True, tuple(image_features(b.features[0])))
        if b.kind == "image"
        else (b.name, b.numeric, b.features)
        for b in v.blocks
    ]
    return ModelFacts(
        model.name, model.version, model.classes, blocks, v.missing_category, model.bundle.profile
    )


def _brighter(images: np.ndarray[Any, Any], by: float) -> np.ndarray[Any, Any]:
    return np.clip(images + by, 0, 16).astype(np.float32)


def test_the_profile_describes_brightness_and_contrast(
    digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    spec = Bundle.load(digits_bundle).profile["features"]["image"]
    assert (spec["kind"], spec["shape"], spec["missing_rate"]) == ("image", [1, 8, 8], 0.0)
    for j, stat in enumerate(("brightness", "contrast")):
        block = spec[stat]
        assert block["sample"] == sorted(block["sample"])
        assert block["min"] <= block["quantiles"]["0.5"] <= block["max"]
        assert sum(block["histogram"]["counts"]) == block["count"]
        # the training split is 70 % of the images: its stats are close to all images'
        assert block["mean"] == pytest.approx(image_stats(images)[:, j].mean(), rel=0.05)


def test_live_metrics_watch_brightness_and_brightened_images_drift(
    served: ServedModel, images: np.ndarray[Any, Any]
) -> None:
    settings = MonitorSettings(window=WindowSettings(size=400, every=100, min_rows=50))
    metrics = MonitorMetrics(CollectorRegistry(), served.version, settings.stage)
    monitor = LiveMonitor(settings, _facts(served), metrics, engine=None)
    try:
        calm = images[:400]
        _, proba = served.predict({"image": calm})
        monitor.record("calm", {"image": calm}, proba, 0.001)
        result = monitor.evaluate_now()
        values = {
            (m.name, m.labels.get("feature"), m.labels.get("q")): m.value for m in result.metrics
        }
        stats = image_stats(calm)
        assert values[("input.mean", "image.brightness", None)] == pytest.approx(stats[:, 0].mean())
        assert values[("input.mean", "image.contrast", None)] == pytest.approx(stats[:, 1].mean())
        assert values[("input.quantile", "image.brightness", "0.5")] == pytest.approx(
            np.quantile(stats[:, 0], 0.5)
        )
        assert ("input.out_of_range_rate", "image.brightness", None) in values
        assert result.drift is not None
        assert {"image.brightness", "image.contrast"} <= {f.feature for f in result.drift.features}
        assert "image.brightness" not in result.drift.drifted_features

        bright = _brighter(images[400:800], 5.0)
        _, proba = served.predict({"image": bright})
        monitor.record("bright", {"image": bright}, proba, 0.001)
        shifted = monitor.evaluate_now()
        assert shifted.drift is not None and "image.brightness" in shifted.drift.drifted_features
        out = {(m.name, m.labels.get("feature")): m.value for m in shifted.metrics}
        assert (
            out[("input.mean", "image.brightness")]
            > values[("input.mean", "image.brightness", None)] + 3
        )
        assert out[("input.out_of_range_rate", "image.brightness")] > 0.5
    finally:
        monitor.close()


def test_drift_from_profile_tests_images_by_brightness_and_contrast(
    digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    profile = Bundle.load(digits_bundle).profile
    same = drift_from_profile(profile, {"image": list(images[:500])})
    assert {f.feature for f in same.features} == {"image.brightness", "image.contrast"}
    assert same.drifted_features == []
    bright = drift_from_profile(profile, {"image": list(_brighter(images[:500], 5.0))})
    assert "image.brightness" in bright.drifted_features
    # the prediction log holds the two numbers, not the pixels: the same verdict from them
    stats = image_stats(_brighter(images[:500], 5.0))
    logged = {"image.brightness": stats[:, 0].tolist(), "image.contrast": stats[:, 1].tolist()}
    assert "image.brightness" in drift_from_profile(profile, logged).drifted_features


def test_the_report_compares_logged_brightness_with_the_profile(
    digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    profile = Bundle.load(digits_bundle).profile
    stats = image_stats(_brighter(images[:300], 5.0))
    columns = {"image.brightness": stats[:, 0].tolist(), "image.contrast": stats[:, 1].tolist()}
    section = _drift_against_profile(profile, columns, None)
    assert section["skipped"] == {}
    assert "image.brightness" in section["histograms"]
    assert "image.brightness" in section["dataset"]["drifted_features"]
