"""Evaluation plots: valid PNG files, one curve per class, deterministic, no leaked figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlcycle.evaluate.plots import PLOT_FILES, save_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _case(classes: list[str], n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(len(classes)), size=n)
    return np.asarray(classes)[rng.integers(0, len(classes), size=n)], proba


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


@pytest.mark.parametrize("classes", [["benign", "malignant"], ["a", "b", "c", "d", "e"]])
def test_save_plots_writes_four_valid_pngs(tmp_path: Path, classes: list[str]) -> None:
    y, p = _case(classes)
    written = save_plots(y, p, classes, tmp_path / "plots")
    assert set(written) == set(PLOT_FILES)
    for name, path in written.items():
        assert path == tmp_path / "plots" / PLOT_FILES[name]
        _assert_png(path)


def test_plots_with_a_class_absent_from_y_true_do_not_fail(tmp_path: Path) -> None:
    y = np.array(["a", "b"] * 10)
    p = np.random.default_rng(1).dirichlet(np.ones(3), size=20)
    for path in save_plots(y, p, ["a", "b", "c"], tmp_path).values():
        _assert_png(path)


def test_plots_are_deterministic(tmp_path: Path) -> None:
    y, p = _case(["x", "y", "z"], seed=2)
    first = save_plots(y, p, ["x", "y", "z"], tmp_path / "one")
    second = save_plots(y, p, ["x", "y", "z"], tmp_path / "two")
    for name in PLOT_FILES:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_save_plots_leaves_no_open_pyplot_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    y, p = _case(["x", "y"])
    save_plots(y, p, ["x", "y"], tmp_path, calibration_bins=5)
    assert plt.get_fignums() == before
