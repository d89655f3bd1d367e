"""mlcycle.rollout.analysis: every check passes on arms drawn alike and fails on a clearly
worse challenger, waits on too little evidence, and the decision rolls back on any failure
(even before the bake window is over), holds before it or while error rate or latency
waits, and promotes otherwise, whether or not labels arrived. The statistics equal their
textbook formulas (z-test by hand, Mann-Whitney U as scipy gives it, PSI, macro F1 as
scikit-learn gives it)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from mlcycle.monitor.store import FEEDBACK, PREDICTIONS, connect
from mlcycle.rollout.analysis import (
    CHECKS,
    PSI_EPSILON,
    Check,
    Decision,
    analyse,
    macro_f1,
    output_psi,
    proportions_z_test,
)
from mlcycle.rollout.evidence import ArmSample, Evidence, ShadowSample, gather
from mlcycle.rollout.settings import AnalysisSettings

CLASSES = ("setosa", "versicolor", "virginica")
MIX = (0.5, 0.3, 0.2)
SETTINGS = AnalysisSettings()


def arm(
    n: int,
    seed: int,
    *,
    error_rate: float = 0.01,
    latency_scale: float = 5.0,
    mix: tuple[float, ...] = MIX,
    labels: int = 0,
    accuracy: float = 0.9,
) -> ArmSample:
    """``n`` requests of one row drawn from the given rates (seeded)."""
    rng = np.random.default_rng(seed)
    errors = int((rng.random(n) < error_rate).sum())
    predicted = rng.choice(CLASSES, n - errors, p=mix)
    labels = min(labels, predicted.size)
    right = rng.random(labels) < accuracy
    wrong = [CLASSES[(CLASSES.index(p) + 1) % 3] for p in predicted[:labels]]
    y_true = [
        str(p) if ok else w for p, ok, w in zip(predicted[:labels], right, wrong, strict=True)
    ]
    names, counts = np.unique(predicted, return_counts=True)
    return ArmSample(
        requests=n,
        errors=errors,
        latency_ms=rng.gamma(2.0, latency_scale, n),
        class_counts={str(k): int(v) for k, v in zip(names, counts, strict=True)},
        y_true=y_true,
        y_pred=[str(p) for p in predicted[:labels]],
    )


def alike(n: int = 2000, labels: int = 0, shadow: ShadowSample | None = None) -> Evidence:
    return Evidence(arm(n, 4, labels=labels), arm(n, 5, labels=labels), shadow)


def by_name(decision: Decision) -> dict[str, Check]:
    return {c.name: c for c in decision.checks}


AGREEING = ShadowSample(pairs=2000, disagreements=40, probability_difference=0.02)


# -- each check passes on arms drawn alike ---------------------------------------------


def test_equal_arms_pass_every_check_and_promote() -> None:
    decision = analyse(alike(labels=500, shadow=AGREEING), SETTINGS, bake_reached=True)
    checks = by_name(decision)
    assert list(checks) == list(CHECKS)
    assert {c.status for c in decision.checks} == {"pass"}, decision.reason
    assert decision.action == "promote"
    assert decision.reason.startswith("passed: error_rate, latency")


def test_without_shadow_the_shadow_checks_do_not_run() -> None:
    decision = analyse(alike(labels=500), SETTINGS, bake_reached=True)
    assert [c.name for c in decision.checks] == [
        "error_rate",
        "latency",
        "output_psi",
        "accuracy",
    ]
    assert decision.action == "promote"


# -- each check fails on a clearly worse challenger ------------------------------------


def test_ten_percent_errors_against_none_rolls_back() -> None:
    ev = Evidence(arm(500, 1, error_rate=0.0), arm(500, 2, error_rate=0.1))
    decision = analyse(ev, SETTINGS, bake_reached=True)
    check = by_name(decision)["error_rate"]
    assert check.status == "fail"
    assert check.p_value is not None and check.p_value < 1e-6
    assert check.value == pytest.approx(ev.challenger.error_rate)
    assert decision.action == "rollback"
    assert "error_rate failed: challenger" in decision.reason
    assert f"({ev.challenger.errors}/500) vs champion 0.0% (0/500)" in decision.reason
    assert [c.name for c in decision.checks if c.status == "fail"] == ["error_rate"]


def test_a_significant_but_small_error_increase_passes() -> None:
    champion = replace(arm(100, 1), requests=100_000, errors=1000)  # 1.0%
    challenger = replace(arm(100, 2), requests=100_000, errors=1500)  # 1.5%
    check = by_name(analyse(Evidence(champion, challenger), SETTINGS, bake_reached=True))
    assert check["error_rate"].p_value is not None and check["error_rate"].p_value < 1e-6
    assert check["error_rate"].status == "pass"  # 0.5 points < max_error_rate_increase


def test_five_times_slower_rolls_back() -> None:
    ev = Evidence(arm(500, 1), arm(500, 2, latency_scale=25.0))
    decision = analyse(ev, SETTINGS, bake_reached=True)
    check = by_name(decision)["latency"]
    assert check.status == "fail"
    assert check.value is not None and check.value > 3
    assert decision.action == "rollback" and "latency failed: challenger p99" in decision.reason


def test_a_few_slow_outliers_raise_p99_but_do_not_fail() -> None:
    champion = arm(1000, 1)
    slow = champion.latency_ms.copy()
    slow[:20] = 1000.0  # 2% very slow requests: p99 far up, the rest alike
    challenger = replace(champion, latency_ms=slow)
    check = by_name(analyse(Evidence(champion, challenger), SETTINGS, bake_reached=True))
    latency = check["latency"]
    assert latency.value is not None and latency.value > SETTINGS.max_latency_p99_ratio
    assert latency.p_value is not None and latency.p_value > SETTINGS.alpha
    assert latency.status == "pass"


def test_a_slower_p99_within_the_absolute_floor_passes() -> None:
    """x1.6 at millisecond scale (scheduler noise on a busy machine) is not a regression."""
    champion = arm(600, 1, latency_scale=0.5)  # p99 about 3 ms
    challenger = arm(600, 2, latency_scale=0.8)  # p99 about 5 ms, clearly slower by rank
    latency = by_name(analyse(Evidence(champion, challenger), SETTINGS, bake_reached=True))[
        "latency"
    ]
    assert latency.value is not None and latency.value > SETTINGS.max_latency_p99_ratio
    assert latency.p_value is not None and latency.p_value < SETTINGS.alpha
    assert latency.status == "pass"
    strict = replace(SETTINGS, min_latency_p99_increase_ms=0.0)
    latency = by_name(analyse(Evidence(champion, challenger), strict, bake_reached=True))["latency"]
    assert latency.status == "fail"


def test_mann_whitney_p_value_is_scipys() -> None:
    ev = Evidence(arm(300, 1), arm(200, 2, latency_scale=6.0))
    latency = by_name(analyse(ev, SETTINGS, bake_reached=True))["latency"]
    expected = stats.mannwhitneyu(
        ev.challenger.latency_ms, ev.champion.latency_ms, alternative="greater"
    ).pvalue
    assert latency.p_value == pytest.approx(float(expected), rel=1e-12)
    p99 = np.percentile(ev.challenger.latency_ms, 99) / np.percentile(ev.champion.latency_ms, 99)
    assert latency.value == pytest.approx(float(p99))


def test_thirty_percent_disagreement_rolls_back() -> None:
    shadow = ShadowSample(pairs=1000, disagreements=300, probability_difference=0.05)
    decision = analyse(alike(shadow=shadow), SETTINGS, bake_reached=True)
    check = by_name(decision)["disagreement"]
    assert check.status == "fail" and check.value == pytest.approx(0.3)
    assert by_name(decision)["probability_difference"].status == "pass"
    assert decision.action == "rollback"
    assert "30.0% of 1000 shadowed rows (300)" in decision.reason


def test_large_probability_difference_rolls_back() -> None:
    shadow = ShadowSample(pairs=1000, disagreements=10, probability_difference=0.3)
    decision = analyse(alike(shadow=shadow), SETTINGS, bake_reached=True)
    assert by_name(decision)["probability_difference"].status == "fail"
    assert decision.action == "rollback"


def test_another_class_mix_rolls_back_on_psi() -> None:
    ev = Evidence(arm(1000, 1), arm(1000, 2, mix=(0.1, 0.2, 0.7)))
    decision = analyse(ev, SETTINGS, bake_reached=True)
    check = by_name(decision)["output_psi"]
    assert check.status == "fail"
    assert check.value == pytest.approx(
        output_psi(ev.champion.class_counts, ev.challenger.class_counts)
    )
    assert check.value is not None and check.value > 1
    assert decision.action == "rollback" and "output_psi failed: PSI" in decision.reason


def test_a_new_class_mix_passes_when_labels_show_the_challenger_more_accurate() -> None:
    # drifted traffic: the champion is wrong more often, so the truthful mix differs
    ev = Evidence(
        arm(1000, 1, labels=300, accuracy=0.7), arm(1000, 2, mix=(0.1, 0.2, 0.7), labels=300)
    )
    decision = analyse(ev, SETTINGS, bake_reached=True)
    psi_check = by_name(decision)["output_psi"]
    assert psi_check.value is not None and psi_check.value > SETTINGS.max_psi
    assert psi_check.status == "pass" and "moved toward the truth" in psi_check.detail
    assert decision.action == "promote"


def test_a_new_class_mix_holds_while_labels_come_in_then_passes_on_them() -> None:
    few = Evidence(
        arm(1000, 1, labels=10, accuracy=0.7), arm(1000, 2, mix=(0.1, 0.2, 0.7), labels=10)
    )
    decision = analyse(few, SETTINGS, bake_reached=True)
    assert by_name(decision)["output_psi"].status == "wait"
    assert decision.action == "hold" and "output_psi" in decision.reason
    unlabelled = Evidence(arm(1000, 1), arm(1000, 2, mix=(0.1, 0.2, 0.7)))
    assert analyse(unlabelled, SETTINGS, bake_reached=True).action == "rollback"


def test_a_new_class_mix_still_fails_when_the_challenger_is_less_accurate() -> None:
    ev = Evidence(
        arm(1000, 1, labels=60, accuracy=0.95),
        arm(1000, 2, mix=(0.1, 0.2, 0.7), labels=60, accuracy=0.85),
    )
    decision = analyse(ev, SETTINGS, bake_reached=True)
    accuracy = by_name(decision)["accuracy"]
    assert accuracy.status == "pass"  # not significant on 60 labels ...
    assert accuracy.value is not None and accuracy.value > 0  # ... but a drop
    assert by_name(decision)["output_psi"].status == "fail"
    assert decision.action == "rollback"


def test_accuracy_sixty_against_ninety_five_rolls_back() -> None:
    ev = Evidence(arm(1000, 1, labels=200, accuracy=0.95), arm(1000, 2, labels=200, accuracy=0.6))
    decision = analyse(ev, SETTINGS, bake_reached=True)
    check = by_name(decision)["accuracy"]
    assert check.status == "fail"
    assert ev.champion.accuracy is not None and ev.challenger.accuracy is not None
    assert check.value == pytest.approx(ev.champion.accuracy - ev.challenger.accuracy)
    f1 = macro_f1(ev.challenger.y_true, ev.challenger.y_pred)
    assert f1 is not None and f"macro F1 {f1:.3f}" in check.detail
    assert decision.action == "rollback" and "accuracy failed" in decision.reason


def test_an_accuracy_drop_that_is_not_significant_passes() -> None:
    def labelled(correct: int, n: int) -> ArmSample:
        return replace(
            arm(100, 1), y_true=["a"] * n, y_pred=["a"] * correct + ["b"] * (n - correct)
        )

    ev = Evidence(labelled(28, 30), labelled(26, 30))  # 93.3% vs 86.7%: 6.7 points, p > 0.1
    check = by_name(analyse(ev, SETTINGS, bake_reached=True))["accuracy"]
    assert check.value is not None and check.value > SETTINGS.max_accuracy_drop
    assert check.p_value is not None and check.p_value > SETTINGS.alpha
    assert check.status == "pass"


def test_all_failures_are_named_in_the_reason() -> None:
    ev = Evidence(
        arm(1000, 1, error_rate=0.0),
        arm(1000, 2, error_rate=0.2, latency_scale=50.0, mix=(0.1, 0.2, 0.7)),
    )
    decision = analyse(ev, SETTINGS, bake_reached=True)
    assert decision.action == "rollback"
    for name in ("error_rate", "latency", "output_psi"):
        assert f"{name} failed: {by_name(decision)[name].detail}" in decision.reason


# -- too little evidence ---------------------------------------------------------------


def test_too_few_requests_wait_and_hold_even_when_much_worse() -> None:
    ev = Evidence(arm(20, 1, error_rate=0.0), arm(20, 2, error_rate=0.5, latency_scale=50.0))
    decision = analyse(ev, SETTINGS, bake_reached=True)
    checks = by_name(decision)
    assert checks["error_rate"].status == "wait"
    assert checks["latency"].status == "wait"
    assert checks["output_psi"].status == "wait"
    assert "fewer than 30 requests on an arm" in checks["error_rate"].detail
    assert decision.action == "hold"
    assert decision.reason.startswith("waiting for evidence: error_rate: ")


def test_too_few_shadow_pairs_wait() -> None:
    shadow = ShadowSample(pairs=10, disagreements=9, probability_difference=0.8)
    checks = by_name(analyse(alike(shadow=shadow), SETTINGS, bake_reached=True))
    assert checks["disagreement"].status == "wait"
    assert checks["probability_difference"].status == "wait"
    assert "fewer than 30 pairs" in checks["disagreement"].detail


def test_an_empty_arm_waits_without_values() -> None:
    ev = Evidence(arm(500, 1), ArmSample())
    decision = analyse(ev, SETTINGS, bake_reached=True)
    for check in decision.checks:
        assert (check.status, check.value, check.p_value) == ("wait", None, None)
    assert decision.action == "hold"


def test_waiting_accuracy_does_not_block_promotion() -> None:
    ev = Evidence(arm(1000, 1, labels=10), arm(1000, 2, labels=10, accuracy=0.1))
    decision = analyse(ev, SETTINGS, bake_reached=True)
    accuracy = by_name(decision)["accuracy"]
    assert accuracy.status == "wait" and "fewer than 30 labels" in accuracy.detail
    assert decision.action == "promote"
    assert "not enough evidence yet (not required) for accuracy" in decision.reason


def test_no_labels_at_all_does_not_block_promotion() -> None:
    decision = analyse(alike(), SETTINGS, bake_reached=True)
    assert by_name(decision)["accuracy"].status == "wait"
    assert decision.action == "promote"


# -- the bake window -------------------------------------------------------------------


def test_passing_arms_hold_before_the_bake_window_is_over() -> None:
    detail = "baked 12 s of 30 s and 80 of 200 requests"
    decision = analyse(alike(), SETTINGS, bake_reached=False, bake_detail=detail)
    assert (decision.action, decision.reason) == ("hold", detail)
    assert analyse(alike(), SETTINGS, bake_reached=False).reason == "the bake window is not over"


def test_a_failing_check_rolls_back_before_the_bake_window_is_over() -> None:
    ev = Evidence(arm(500, 1, error_rate=0.0), arm(500, 2, error_rate=0.1))
    decision = analyse(ev, SETTINGS, bake_reached=False, bake_detail="not yet")
    assert decision.action == "rollback"
    assert "error_rate failed" in decision.reason


# -- the statistics --------------------------------------------------------------------


def statsmodels_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """statsmodels' proportions_ztest([x1, x2], [n1, n2], alternative="larger") by hand."""
    p = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return z, 0.5 * math.erfc(z / math.sqrt(2))  # P(Z > z)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(24, 200, 1, 200), (20, 100, 10, 100), (5, 1000, 9, 800), (3, 31, 0, 40), (50, 50, 1, 60)],
)
def test_z_test_equals_statsmodels_formula(x1: int, n1: int, x2: int, n2: int) -> None:
    z, p = proportions_z_test(x1, n1, x2, n2)
    want_z, want_p = statsmodels_z_test(x1, n1, x2, n2)
    assert z == pytest.approx(want_z, rel=1e-12)
    assert p == pytest.approx(want_p, rel=1e-9)


def test_z_test_textbook_value() -> None:
    # 20/100 against 10/100: pooled 0.15, z = 0.1 / sqrt(0.15 * 0.85 * 0.02) = 1.980,
    # normal table: P(Z > 1.98) = 0.0239.
    z, p = proportions_z_test(20, 100, 10, 100)
    assert z == pytest.approx(1.980, abs=5e-4)
    assert p == pytest.approx(0.0239, abs=1e-4)


def test_z_test_without_any_difference_in_outcomes_gives_p_one() -> None:
    assert proportions_z_test(0, 100, 0, 30) == (0.0, 1.0)
    assert proportions_z_test(10, 10, 30, 30) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least one trial"):
        proportions_z_test(0, 0, 1, 10)


def test_error_rate_p_value_is_the_z_test() -> None:
    ev = Evidence(arm(400, 1, error_rate=0.02), arm(300, 2, error_rate=0.05))
    check = by_name(analyse(ev, SETTINGS, bake_reached=True))["error_rate"]
    _, want = statsmodels_z_test(ev.challenger.errors, 300, ev.champion.errors, 400)
    assert check.p_value == pytest.approx(want, rel=1e-9)


def test_output_psi_is_the_formula_with_epsilon() -> None:
    champion = {"a": 60, "b": 40}
    challenger = {"a": 30, "b": 50, "c": 20}  # "c" is new: its champion share is epsilon
    e = np.array([0.6, 0.4, PSI_EPSILON])
    a = np.array([0.3, 0.5, 0.2])
    assert output_psi(champion, challenger) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert output_psi(champion, dict(champion)) == 0.0
    assert output_psi(champion, {}) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.choice(["a", "b", "c", "d"], 200, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    y_pred = rng.choice(["a", "b", "c", "e"], 200).tolist()
    present = sorted(set(y_true))
    want = f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred) == pytest.approx(want)
    assert macro_f1([], []) is None


# -- JSON ------------------------------------------------------------------------------


def test_decision_to_dict_is_strict_json() -> None:
    champion = replace(arm(100, 1), latency_ms=np.zeros(100))  # p99 0: the ratio is infinite
    shadow = ShadowSample(pairs=0, disagreements=0, probability_difference=math.nan)
    decision = analyse(Evidence(champion, arm(100, 2), shadow), SETTINGS, bake_reached=True)
    data = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert data["action"] == decision.action == "rollback"
    latency = next(c for c in data["checks"] if c["name"] == "latency")
    assert latency["status"] == "fail" and latency["value"] is None
    difference = next(c for c in data["checks"] if c["name"] == "probability_difference")
    assert (difference["status"], difference["value"]) == ("wait", None)
    assert set(data["checks"][0]) == {"name", "status", "value", "threshold", "p_value", "detail"}


# -- from the store --------------------------------------------------------------------


def test_a_failing_challenger_logged_in_the_store_is_rolled_back(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    rng = np.random.default_rng(7)
    rows, feedback = [], []
    for i in range(400):
        arm_name = "challenger" if i % 2 else "champion"
        failed = arm_name == "challenger" and rng.random() < 0.15
        label = None if failed else str(rng.choice(CLASSES))
        rows.append(
            {
                "request_id": f"r{i}",
                "row": 0,
                "time": 100.0 + i,
                "model_name": "m",
                "model_version": "2" if arm_name == "challenger" else "1",
                "arm": arm_name,
                "stage": "",
                "label": label,
                "latency_ms": float(rng.gamma(2.0, 5.0)),
                "error": "500: boom" if failed else None,
            }
        )
        if label is not None:
            feedback.append(
                {"request_id": f"r{i}", "row": 0, "time": 600.0, "label": label, "source": "api"}
            )
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), rows)
        conn.execute(FEEDBACK.insert(), feedback)
    evidence = gather(engine, model_name="m", since=100.0)
    decision = analyse(evidence, SETTINGS, bake_reached=False, bake_detail="baking")
    checks = by_name(decision)
    assert (evidence.champion.requests, evidence.challenger.requests) == (200, 200)
    assert checks["error_rate"].status == "fail"
    assert checks["latency"].status == "pass"
    assert checks["accuracy"].status == "pass"  # every labelled prediction is right
    assert decision.action == "rollback"
