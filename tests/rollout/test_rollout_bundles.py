"""The rollout challenger bundles: valid, same signature as the champion, and each faulty,
slow, inaccurate or better exactly as advertised."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.bundle import Bundle
from tests import _rollout_bundles as rb
from tests._bundles import build_bundle

EXTRA_MS = 4.0
BUILDERS = {
    "faulty": rb.faulty_bundle,
    "slow": lambda dest: rb.slow_bundle(dest, extra_ms=EXTRA_MS),
    "inaccurate": rb.inaccurate_bundle,
    "better": rb.better_bundle,
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rollout_bundles")
    out = {"champion": build_bundle("cancer", root / "champion")}
    for kind, build in BUILDERS.items():
        out[kind] = build(root / kind)
    return out


@pytest.fixture(scope="module")
def bundles(paths: dict[str, Path]) -> dict[str, Bundle]:
    return {kind: Bundle.load(path, intra_op_threads=1) for kind, path in paths.items()}


def _all_inputs(bundle: Bundle) -> dict[str, np.ndarray[Any, Any]]:
    frame = rb.cancer_frame()
    return bundle.inputs_from_columns({c: frame[c].to_numpy() for c in frame.columns})


def _accuracy(bundle: Bundle) -> float:
    _, val = rb.cancer_split()
    labels, _ = bundle.predict_columns({c: val.frame[c].to_numpy() for c in val.frame.columns})
    return float(np.mean(labels == val.y))


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_bundle_loads_with_the_champion_signature(
    bundles: dict[str, Bundle], paths: dict[str, Path], kind: str
) -> None:
    bundle = bundles[kind]
    assert bundle.signature == bundles["champion"].signature
    assert bundle.classes == ["benign", "malignant"]
    assert json.loads((paths[kind] / "evaluation.json").read_text())["rollout_fixture"]["kind"]
    labels, proba = bundle.predict(_all_inputs(bundle))
    assert labels.shape == (569,) and proba.shape == (569, 2)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_bundle_is_deterministic(paths: dict[str, Path], tmp_path: Path, kind: str) -> None:
    again = BUILDERS[kind](tmp_path / kind)
    first = json.loads((paths[kind] / "MANIFEST.json").read_text())["files"]
    second = json.loads((again / "MANIFEST.json").read_text())["files"]
    assert first["model.onnx"] == second["model.onnx"]


def test_faulty_gives_nan_exactly_on_faulty_rows(bundles: dict[str, Bundle]) -> None:
    faulty, champion = bundles["faulty"], bundles["champion"]
    expected = rb.faulty_rows(rb.cancer_frame())
    assert 0.25 <= expected.mean() <= 0.35
    labels, proba = faulty.predict(_all_inputs(faulty))
    champ_labels, champ_proba = champion.predict(_all_inputs(champion))
    assert np.array_equal(np.isnan(proba).all(axis=1), expected)
    assert np.array_equal(np.isnan(proba).any(axis=1), expected)
    assert np.array_equal(proba[~expected], champ_proba[~expected])
    assert np.array_equal(labels, champ_labels)


def test_faulty_share_and_records(tmp_path: Path) -> None:
    rows = rb.cancer_rows(200, seed=3)
    for share in (0.1, 0.5):
        bundle = Bundle.load(rb.faulty_bundle(tmp_path / str(share), share=share))
        expected = rb.faulty_rows(rows, share=share)
        assert abs(rb.faulty_rows(rb.cancer_frame(), share=share).mean() - share) < 0.02
        cols = {name: [r[name] for r in rows] for name in rows[0]}
        _, proba = bundle.predict_columns(cols)
        assert np.array_equal(np.isnan(proba).any(axis=1), expected)
        assert np.isfinite(proba[~expected]).all()
    with pytest.raises(ValueError, match="share"):
        rb.faulty_threshold(1.0)


def test_slow_gives_the_champion_predictions(bundles: dict[str, Bundle]) -> None:
    slow, champion = bundles["slow"], bundles["champion"]
    labels, proba = slow.predict(_all_inputs(slow))
    champ_labels, champ_proba = champion.predict(_all_inputs(champion))
    assert np.array_equal(labels, champ_labels)
    np.testing.assert_allclose(proba, champ_proba, rtol=0, atol=1e-6)
    # Missing and infinite inputs do not leak NaN through the slow chain.
    odd = _all_inputs(slow)["numeric"][:4].copy()
    odd[0, :] = np.nan
    odd[1, 3] = np.inf
    odd[2, 5] = -np.inf
    odd[3, ::2] = np.nan
    _, slow_odd = slow.predict({"numeric": odd})
    _, champ_odd = champion.predict({"numeric": odd})
    assert np.isfinite(champ_odd).all()
    np.testing.assert_allclose(slow_odd, champ_odd, rtol=0, atol=1e-6)


def _median_ms(bundle: Bundle, inputs: dict[str, np.ndarray[Any, Any]], n: int = 50) -> float:
    for _ in range(5):
        bundle.predict(inputs)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        bundle.predict(inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def test_slow_is_slower_per_call(bundles: dict[str, Bundle]) -> None:
    slow, champion = bundles["slow"], bundles["champion"]
    one_row = {"numeric": _all_inputs(slow)["numeric"][:1]}
    champ_ms = _median_ms(champion, one_row)
    slow_ms = _median_ms(slow, one_row)
    assert slow_ms - champ_ms >= 0.5 * EXTRA_MS, (champ_ms, slow_ms)


def test_slow_rejects_non_positive_extra(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extra_ms"):
        rb.slow_bundle(tmp_path / "b", extra_ms=0)


def test_inaccurate_is_near_chance(bundles: dict[str, Bundle]) -> None:
    assert _accuracy(bundles["champion"]) >= 0.9
    assert _accuracy(bundles["inaccurate"]) <= 0.7


def test_better_is_at_least_as_accurate(bundles: dict[str, Bundle]) -> None:
    assert _accuracy(bundles["better"]) >= _accuracy(bundles["champion"]) - 0.02


def test_cancer_rows_and_labels_are_aligned(bundles: dict[str, Bundle]) -> None:
    rows, labels = rb.cancer_rows(300, seed=1), rb.cancer_labels(300, seed=1)
    assert len(rows) == len(labels) == 300
    assert rows == rb.cancer_rows(300, seed=1) and rows != rb.cancer_rows(300, seed=2)
    assert set(rows[0]) == set(bundles["champion"].feature_names)
    assert all(isinstance(v, float) for v in rows[0].values())
    json.dumps(rows, allow_nan=False)
    assert set(labels) == {"benign", "malignant"}
    cols = {name: [r[name] for r in rows] for name in rows[0]}
    predicted, _ = bundles["champion"].predict_columns(cols)
    assert np.mean(predicted == np.array(labels)) >= 0.9
    assert len(rb.cancer_rows(1000, seed=0)) == 1000
