"""``mlcycle drift REFERENCE CURRENT``: two files in, a table and a JSON report out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def frames(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "steady": rng.normal(0, 1, n),
            "moved": rng.normal(shift, 1, n),
            "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def drift(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlcycle", "drift", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_drift_flags_the_moved_column_and_writes_json(tmp_path: Path, suffix: str) -> None:
    ref, cur = tmp_path / f"ref.{suffix}", tmp_path / f"cur.{suffix}"
    for frame, path in ((frames(3000, 0.0, 1), ref), (frames(800, 1.0, 2), cur)):
        frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    proc = drift(str(ref), str(cur), "--output", "report.json", "--fail-on-drift", cwd=tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["dataset"]["drifted_features"] == ["moved"]
    assert not doc["dataset"]["drifted"]  # 1 of 3 is below the 0.5 share
    assert proc.returncode == 0, proc.stderr
    kinds = {f["feature"]: (f["kind"], f["test"]) for f in doc["features"]}
    assert kinds == {
        "steady": ("numeric", "ks"),
        "moved": ("numeric", "ks"),
        "color": ("categorical", "chi2"),
    }
    assert "data drift" in proc.stdout and "moved" in proc.stdout


def test_fail_on_drift_exits_1_when_the_dataset_drifted(tmp_path: Path) -> None:
    frames(2000, 0.0, 1).to_csv(tmp_path / "ref.csv", index=False)
    moved = frames(2000, 0.0, 2)
    moved["steady"] += 2
    moved["moved"] += 2
    moved.to_csv(tmp_path / "cur.csv", index=False)
    proc = drift("ref.csv", "cur.csv", "--fail-on-drift", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DRIFT" in proc.stdout


def test_files_with_different_columns_are_a_clear_error(tmp_path: Path) -> None:
    frames(100, 0, 1).to_csv(tmp_path / "ref.csv", index=False)
    frames(100, 0, 2).drop(columns="color").to_csv(tmp_path / "cur.csv", index=False)
    proc = drift("ref.csv", "cur.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "different columns" in proc.stderr
    assert "['color']" in proc.stderr and "--columns" in proc.stderr
    ok = drift("ref.csv", "cur.csv", "--columns", "steady,moved", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    missing = drift("ref.csv", "nope.csv", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_html_report_has_a_plot_per_column_and_the_numbers_of_the_json(tmp_path: Path) -> None:
    frames(3000, 0.0, 1).to_parquet(tmp_path / "ref.parquet")
    frames(800, 1.0, 2).to_parquet(tmp_path / "cur.parquet")
    proc = drift("ref.parquet", "cur.parquet", "--html", "out/report.html",
                 "--output", "plain.json", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert doc["features"] == plain["features"] and doc["dataset"] == plain["dataset"]
    section = page.split("Reference vs current, per feature", 1)[1]
    figures = re.findall(r"<figure>(.*?)<figcaption>([^:<]+):", section, flags=re.S)
    assert {name: body.count("<svg") for body, name in figures} == {
        "steady": 1, "moved": 1, "color": 1,
    }  # fmt: skip
    hist = doc["drift"]["histograms"]
    assert hist["color"]["categories"] == ["red", "green", "blue"]
    assert len(hist["moved"]["edges"]) == 31
    assert sum(hist["moved"]["current"]) == pytest.approx(1.0)
    for f in doc["features"]:
        assert f"{f['statistic']:.4g}" in page and f"{f['psi']:.4g}" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "http://" not in page


def test_html_report_needs_an_html_file_name(tmp_path: Path) -> None:
    frames(100, 0, 1).to_csv(tmp_path / "ref.csv", index=False)
    proc = drift("ref.csv", "ref.csv", "--html", "report.json", cwd=tmp_path)
    assert proc.returncode == 2 and "--html report.json must end in .html" in proc.stderr
