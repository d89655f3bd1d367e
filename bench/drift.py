"""Benchmark: ``mlcycle drift`` against a plain numpy/scipy computation of the same tests.

In one run: writes a reference and a current Parquet file of ``--rows`` rows (default 1
million) x 20 numeric + 5 categorical columns, with drift injected in a known subset
(numeric columns 0-3 shifted by 0.05-0.5 standard deviations, categorical column 0 with
its mix changed), then measures in fresh subprocesses, one after the other:

* ``mlcycle drift REF CUR --output report.json``: the whole command, reading included;
* the same with ``--html report.html`` instead: the report with a histogram per column;
* the plain computation: pandas reads both files, then scipy's ``wasserstein_distance``
  (divided by the reference's standard deviation) and ``jensenshannon`` per column, the
  tests ``mlcycle`` chooses for windows this large.

Prints wall time and peak memory (``ru_maxrss`` of the child) of both, their ratio
(target: within 1.5x and under 1 GB), and which columns each flagged (target: every
injected column, at most one false alarm).

Run: ``.venv/bin/python bench/drift.py [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 20, 5
SHIFTS = {"num_0": 0.5, "num_1": 0.3, "num_2": 0.15, "num_3": 0.11}
MIXED = "cat_0"

PLAIN = r"""
import json, sys
import numpy as np, pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
flagged = []
for c in ref.columns:
    if c.startswith("num_"):
        r, k = ref[c].to_numpy(float), cur[c].to_numpy(float)
        if wasserstein_distance(r, k) / np.std(r) > 0.1:
            flagged.append(c)
    else:
        cats = sorted(set(ref[c].unique()) | set(cur[c].unique()))
        p = ref[c].value_counts().reindex(cats, fill_value=0).to_numpy(float)
        q = cur[c].value_counts().reindex(cats, fill_value=0).to_numpy(float)
        if jensenshannon(p / p.sum(), q / q.sum(), base=2) > 0.1:
            flagged.append(c)
print(json.dumps(flagged))
"""


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    cats = np.array(list("abcdefgh"))

    def table(drifted: bool) -> pd.DataFrame:
        cols: dict[str, np.ndarray] = {}
        for i in range(NUMERIC):
            name = f"num_{i}"
            shift = SHIFTS.get(name, 0.0) if drifted else 0.0
            cols[name] = rng.normal(shift, 1.0, rows).astype(np.float64)
        for i in range(CATEGORICAL):
            name = f"cat_{i}"
            p = np.full(len(cats), 1 / len(cats))
            if drifted and name == MIXED:
                p = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
            cols[name] = rng.choice(cats, rows, p=p)
        return pd.DataFrame(cols)

    ref, cur = folder / "reference.parquet", folder / "current.parquet"
    table(False).to_parquet(ref)
    table(True).to_parquet(cur)
    return ref, cur


_LAUNCH = (
    "import resource, subprocess, sys;"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True);"
    "sys.stdout.write(p.stdout);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the command, and its stdout.

    A fresh launcher runs ``cmd`` so that ``ru_maxrss`` of its children is this
    command's alone.
    """
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCH, *cmd], cwd=cwd, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - t0
    *out, peak_kb = proc.stdout.rstrip("\n").split("\n")
    return seconds, int(peak_kb) / 1024, "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-drift-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        ref, cur = make_data(args.rows, folder)
        print(f"wrote 2 x {args.rows:,} rows x {NUMERIC + CATEGORICAL} columns in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        plain_s, plain_mb, out = timed([sys.executable, "-c", PLAIN, str(ref), str(cur)], folder)
        plain_flags = json.loads(out)
        ours_cmd = [sys.executable, "-m", "mlcycle", "drift", str(ref), str(cur),
                    "--output", "report.json"]  # fmt: skip
        ours_s, ours_mb, _ = timed(ours_cmd, folder)
        report = json.loads((folder / "report.json").read_text())
        html_cmd = [*ours_cmd[:-2], "--html", "report.html"]
        html_s, html_mb, _ = timed(html_cmd, folder)
        html_kb = (folder / "report.html").stat().st_size / 1024
    flagged = report["dataset"]["drifted_features"]
    injected = sorted([*SHIFTS, MIXED])
    false_alarms = sorted(set(flagged) - set(injected))
    print(f"plain numpy/scipy: {plain_s:6.2f} s, peak {plain_mb:6.0f} MB, flagged {plain_flags}")
    print(f"mlcycle drift:     {ours_s:6.2f} s, peak {ours_mb:6.0f} MB, flagged {flagged}")
    print(f"mlcycle drift --html: {html_s:5.2f} s, peak {html_mb:6.0f} MB, "
          f"report.html {html_kb:.0f} KiB")  # fmt: skip
    print(f"time ratio mlcycle / plain: {ours_s / plain_s:.2f}x (target <= 1.5x)")
    print(f"peak memory: {ours_mb:.0f} MB (target < 1024 MB)")
    print(f"injected {injected}: all flagged = {set(injected) <= set(flagged)}; "
          f"false alarms {false_alarms or 'none'} (target: at most one)")  # fmt: skip


if __name__ == "__main__":
    main()
