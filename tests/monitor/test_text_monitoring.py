"""Text features end to end: validated as strings, served through the TF-IDF graph, and
watched by their length (metrics and drift) against the bundle's profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlcycle.bundle import Bundle
from mlcycle.monitor.drift import drift_from_profile
from mlcycle.monitor.live import LiveMonitor
from mlcycle.monitor.live_metrics import MonitorMetrics
from mlcycle.monitor.settings import MonitorSettings, WindowSettings
from mlcycle.monitor.window_stats import text_lengths
from mlcycle.serve.errors import RequestError
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ServeSettings
from mlcycle.train.pipeline import onnx_inputs
from tests._bundles import build_bundle
from tests._datasets import tickets_dataset
from tests.monitor.test_live import facts


@pytest.fixture(scope="module")
def tickets_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle("tickets", tmp_path_factory.mktemp("tickets") / "bundle")


@pytest.fixture(scope="module")
def served(tickets_bundle: Path) -> ServedModel:
    return ServedModel.load(ServeSettings(bundle=str(tickets_bundle)))


def _records(messages: list[str]) -> list[dict[str, object]]:
    return [
        {"message": m, "channel": "email", "account_age_days": 100 + i}
        for i, m in enumerate(messages)
    ]


def test_the_profile_describes_text_length(tickets_bundle: Path) -> None:
    spec = Bundle.load(tickets_bundle).profile["features"]["message"]
    assert spec["kind"] == "text"
    length = spec["length"]
    assert length["sample"] == sorted(length["sample"])
    assert 20 < length["mean"] < 300
    assert length["min"] <= length["quantiles"]["0.5"] <= length["max"]


def test_served_inputs_equal_the_training_layout(served: ServedModel) -> None:
    ds = tickets_dataset(rows=60)
    batch = served.validator.records(ds.frame.to_dict("records"))
    assert batch.inputs["text"].shape == (60, 1)
    _, proba = served.predict(batch.inputs)
    _, expected = served.predict(onnx_inputs(ds.frame, ds.schema))
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert proba.shape == (60, 4)


def test_text_values_are_checked_as_text(served: ServedModel) -> None:
    with pytest.raises(RequestError, match=r"text feature 'message' got a number 12.5") as info:
        served.validator.records([{"message": 12.5, "channel": "email", "account_age_days": 1}])
    assert info.value.status == 422
    assert info.value.field == "records[0].message"
    assert served.validator.kinds["message"] == "text"
    # any text is fine: there is no list of known values to check against
    batch = served.validator.records(_records(["never seen words zyx qwv"]))
    assert batch.inputs["text"][0, 0] == "never seen words zyx qwv"


def test_text_length_metrics_and_drift_of_length(served: ServedModel, tmp_path: Path) -> None:
    settings = MonitorSettings(window=WindowSettings(size=500, every=100, min_rows=50))
    metrics = MonitorMetrics(CollectorRegistry(), served.version, settings.stage)
    monitor = LiveMonitor(settings, facts(served), metrics, engine=None)
    try:
        calm = tickets_dataset(rows=300).frame.to_dict("records")
        batch = served.validator.records(calm)
        _, proba = served.predict(batch.inputs)
        monitor.record("calm", batch.inputs, proba, 0.001)
        result = monitor.evaluate_now()
        values = {(m.name, m.labels.get("q")): m.value for m in result.metrics}
        expected = text_lengths(batch.inputs["text"][:, 0], "")
        assert values[("input.text_length_mean", None)] == pytest.approx(expected.mean())
        assert values[("input.text_length_quantile", "0.5")] == pytest.approx(
            np.quantile(expected, 0.5)
        )
        assert result.drift is not None and "message" not in result.drift.drifted_features

        long = _records(["my parcel has not arrived " * 20] * 300)
        batch = served.validator.records(long)
        _, proba = served.predict(batch.inputs)
        monitor.record("long", batch.inputs, proba, 0.001)
        shifted = monitor.evaluate_now()
        assert shifted.drift is not None and "message" in shifted.drift.drifted_features
    finally:
        monitor.close()


def test_drift_from_profile_tests_text_by_length(tickets_bundle: Path) -> None:
    profile = Bundle.load(tickets_bundle).profile
    same = tickets_dataset(rows=300).frame["message"].tolist()
    assert "message" not in drift_from_profile(profile, {"message": same}).drifted_features
    short = ["late"] * 300
    result = drift_from_profile(profile, {"message": short})
    assert "message" in result.drifted_features
