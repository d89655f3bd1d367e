"""``mlcycle automation calibrate``: the threshold search against a brute-force one on
random data, its edge cases (ties, unreachable targets, everything right, target 1.0),
the exact lower bound, and the command on a project trained once with the defaults."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from mlcycle.exceptions import BundleError, ConfigError, DataError
from mlcycle.review.calibrate import (
    UnreachableTargetError,
    choose_threshold,
    curve_at,
    lower_bound,
    precision_curve,
    setting_value,
)

CLASSES = ["a", "b", "c"]


def brute_force(
    proba: np.ndarray, y: np.ndarray, target: float, on_bound: bool
) -> tuple[float, int, int] | None:
    """The lowest observed confidence whose rows at or above it reach the target."""
    conf = proba.max(axis=1)
    correct = np.array(CLASSES)[proba.argmax(axis=1)] == y
    for t in sorted(set(conf.tolist())):
        chosen = conf >= t
        k, n = int(correct[chosen].sum()), int(chosen.sum())
        score = lower_bound(k, n) if on_bound else k / n
        if score >= target:
            return t, n, k
    return None


@st.composite
def scored_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 40))
    # Few distinct values, so rows often tie on their top probability.
    raw = draw(st.lists(st.integers(1, 6), min_size=3 * n, max_size=3 * n))
    proba = np.array(raw, dtype=np.float64).reshape(n, 3)
    proba /= proba.sum(axis=1, keepdims=True)
    y = np.array(draw(st.lists(st.sampled_from(CLASSES), min_size=n, max_size=n)))
    return proba.astype(np.float32), y


@settings(max_examples=100, deadline=None)
@given(
    data=scored_rows(),
    target=st.sampled_from([0.3, 0.5, 0.8, 0.9, 0.95, 1.0]),
    on_bound=st.booleans(),
)
def test_choice_matches_a_brute_force_search_and_its_setting_selects_the_same_rows(
    data: tuple[np.ndarray, np.ndarray], target: float, on_bound: bool
) -> None:
    proba, y = data
    expected = brute_force(proba.astype(np.float64), y, target, on_bound)
    if expected is None:
        with pytest.raises(UnreachableTargetError):
            choose_threshold(proba, y, CLASSES, target, confidence_bound=on_bound)
        return
    result = choose_threshold(proba, y, CLASSES, target, confidence_bound=on_bound)
    p = result.point
    assert (p.threshold, p.automated, p.correct) == expected
    conf = proba.astype(np.float64).max(axis=1)
    assert int((conf >= result.threshold).sum()) == p.automated
    assert result.automation_rate == p.automated / len(y)
    assert (result.lower_bound if on_bound else result.precision) >= target


@given(
    low=st.floats(0.0, 1.0, allow_nan=False),
    high=st.floats(0.0, 1.0, allow_nan=False, exclude_min=True),
)
def test_setting_value_is_short_and_inside_the_interval(low: float, high: float) -> None:
    if not low < high:
        return
    value = setting_value(low, high)
    assert low < value <= high


def test_rows_tied_at_the_threshold_are_automated_together() -> None:
    # Four rows at 0.8, one of them wrong: the tie is taken whole or not at all.
    proba = np.array([[0.95, 0.05]] * 4 + [[0.8, 0.2]] * 4 + [[0.6, 0.4]] * 2)
    y = np.array(["a"] * 4 + ["a", "a", "a", "b"] + ["b", "b"])
    curve = precision_curve(proba, y, ["a", "b"])
    assert [(p.threshold, p.automated, p.correct) for p in curve] == [
        (0.95, 4, 4),
        (0.8, 8, 7),
        (0.6, 10, 7),
    ]
    assert choose_threshold(proba, y, ["a", "b"], 0.875).point.automated == 8
    strict = choose_threshold(proba, y, ["a", "b"], 0.9)
    assert strict.point.automated == 4 and 0.8 < strict.threshold <= 0.95
    assert strict.threshold == 0.9  # the shortest decimal above the tie


def test_unreachable_target_names_the_best_precision_and_a_target_that_works() -> None:
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4]])
    y = np.array(["a", "b", "a", "b"])
    with pytest.raises(UnreachableTargetError) as err:
        choose_threshold(proba, y, ["a", "b"], 0.99)
    message = str(err.value)
    assert "no confidence threshold reaches a precision of 0.99 on these 4 rows" in message
    assert "the best is 0.6667 (2 of 3 rows correct at threshold 0.7" in message
    assert "lower --target-precision to 0.66 or less" in message
    assert err.value.best.automated == 3 and isinstance(err.value, ConfigError)


def test_all_correct_automates_every_row() -> None:
    proba = np.array([[0.55, 0.45], [0.2, 0.8], [0.99, 0.01]])
    result = choose_threshold(proba, ["a", "b", "a"], ["a", "b"], 1.0)
    assert result.automation_rate == 1.0 and result.precision == 1.0
    assert result.threshold == 0.5  # anything up to the lowest confidence, written short


def test_target_one_stops_above_the_most_confident_mistake() -> None:
    proba = np.array([[0.99, 0.01], [0.97, 0.03], [0.96, 0.04], [0.9, 0.1]])
    result = choose_threshold(proba, ["a", "a", "b", "a"], ["a", "b"], 1.0)
    assert result.point.automated == 2 and result.threshold == 0.97


def test_confidence_bound_is_stricter_on_few_rows_and_never_reaches_one() -> None:
    proba = np.array([[0.99, 0.01]] * 20)
    y = np.array(["a"] * 20)
    assert choose_threshold(proba, y, ["a", "b"], 0.99).precision == 1.0
    bound = r"0\.99 \(95% lower confidence bound\) on these 20 rows: the best is 0\.8609"
    with pytest.raises(UnreachableTargetError, match=bound):
        choose_threshold(proba, y, ["a", "b"], 0.99, confidence_bound=True)
    with pytest.raises(UnreachableTargetError, match="stays below 1 for any number of rows"):
        choose_threshold(proba, y, ["a", "b"], 1.0, confidence_bound=True)
    assert choose_threshold(proba, y, ["a", "b"], 0.85, confidence_bound=True).lower_bound > 0.85


@pytest.mark.parametrize(("k", "n"), [(1, 1), (7, 10), (99, 100), (500, 1000)])
def test_lower_bound_is_the_exact_one_sided_clopper_pearson_bound(k: int, n: int) -> None:
    bound = lower_bound(k, n, 0.95)
    # At the bound, seeing k or more successes has probability exactly 5%.
    assert math.isclose(binom.sf(k - 1, n, bound), 0.05, rel_tol=1e-6)
    assert lower_bound(0, n) == 0.0 and math.isnan(lower_bound(0, 0))


def test_curve_at_reads_round_thresholds() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    curve = precision_curve(proba, ["a", "b", "a", "a"], ["a", "b"])
    points = curve_at(curve, [0.5, 0.75, 0.95])
    assert [(p.automated, p.correct) for p in points] == [(4, 3), (2, 2), (0, 0)]
    assert math.isnan(points[2].precision) and points[2].to_dict()["precision"] is None


@pytest.mark.parametrize(
    ("proba", "y", "target", "error", "match"),
    [
        ([[0.9, 0.1]], ["a"], 0.0, ConfigError, r"target precision 0.0 is not in \(0, 1\]"),
        ([[0.9, 0.1]], ["a"], 1.2, ConfigError, r"not in \(0, 1\]"),
        ([[0.9, 0.1]], ["a", "b"], 0.9, DataError, "1 rows of probabilities but 2 true labels"),
        ([[0.9, 0.05, 0.05]], ["a"], 0.9, DataError, r"expected \(rows, 2\)"),
        ([[0.9, 0.1]], ["z"], 0.9, DataError, r"true labels \['z'\] are not among"),
        (np.zeros((0, 2)), [], 0.9, DataError, "no labelled rows"),
        ([[np.nan, 0.1]], ["a"], 0.9, DataError, "NaN or infinite"),
    ],
)
def test_bad_inputs_are_clear_errors(
    proba: object, y: list[str], target: float, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        choose_threshold(np.asarray(proba, dtype=float), y, ["a", "b"], target)


# -- the command, on a project trained once -------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project (conf/ only, no git or DVC) trained once with the defaults, in this
    process, its version 1 promoted to champion."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    from mlcycle import registry, workflow
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project
    from mlcycle.project_init import project_config_yaml
    from mlcycle.tracking import configure_tracking

    root = tmp_path_factory.mktemp("calibrate") / "proj"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "config.yaml").write_text(project_config_yaml({}, []))
    saved_env = {k: os.environ.get(k) for k in _MLFLOW_ENV}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        mp.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
        project = Project(root)
        raw = compose([], project=project)
        cfg = to_config(raw)
        result = workflow.train(cfg, project, raw)
        ctx = configure_tracking(cfg.tracking, project)
        registry.promote(ctx, cfg.tracking.registered_model, str(result.version))
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    yield root


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL")


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_mlflow_globals")
def test_calibrate_command_on_the_champion_prints_the_threshold_and_how_to_set_it(
    trained: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlcycle.review.calibrate_command import calibrate_command

    monkeypatch.chdir(trained)
    calibrate_command(["--target-precision", "0.99", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "champion" and doc["split"] == "val"
    assert doc["precision"] >= 0.99 and doc["correct"] <= doc["automated"] <= doc["rows"]
    assert doc["automation_rate"] == doc["automated"] / doc["rows"]
    assert doc["lower_bound"] < doc["precision"]
    threshold = doc["threshold"]
    assert (
        f"mlcycle automation set --mode partial --threshold {threshold:g} --url " in doc["set"][1]
    )

    calibrate_command(["--target-precision", "0.99"])
    out = capsys.readouterr().out
    assert f"serve.automation.threshold={threshold:g}" in out
    assert "http://127.0.0.1:8080" in out and "95% lower bound" in out


@pytest.mark.slow
def test_calibrate_command_fails_clearly_when_no_threshold_reaches_the_target(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.review.calibrate_command import calibrate_command

    monkeypatch.chdir(trained)
    (bundle,) = (trained / "bundles" / "breast_cancer").iterdir()
    args = ["--target-precision", "1", "--confidence-bound", "--model", str(bundle)]
    with pytest.raises(UnreachableTargetError, match="stays below 1 for any number of rows"):
        calibrate_command(args)
    with pytest.raises(BundleError, match=r"bundle folder .* does not exist"):
        calibrate_command(["--target-precision", "0.9", "--model", "./no/such/bundle"])
    with pytest.raises(SystemExit):
        calibrate_command(["--target-precision", "1.5"])
