"""CI gate: may the newest ``@challenger`` replace the ``@champion``?

Run inside an mlcycle project after ``mlcycle train`` (which registers the new version
with the alias ``challenger``). Passes when there is no champion yet, or when the
challenger's test F1 (macro) is at least the champion's minus ``--margin``, and every
baseline in the challenger's evaluation that has a target is met. Prints the verdict and,
on GitHub Actions, writes ``version=N`` to ``$GITHUB_OUTPUT`` for the promote step.

Exit status: 0 pass, 1 the gate said no, 2 an error (no challenger, no project).

    python examples/github-actions/gate.py --metric f1_macro --margin 0.0 [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlcycle.exceptions import MlcycleError
from mlcycle.serve_commands import resolve_model


def _test_metric(bundle: Path, metric: str) -> float:
    evaluation: dict[str, Any] = json.loads((bundle / "evaluation.json").read_text())
    return float(evaluation["splits"]["test"][metric])


def main() -> int:
    """Compare ``@challenger`` with ``@champion``; 0 pass, 1 fail, 2 error."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metric", default="f1_macro", help="test-split metric (f1_macro)")
    p.add_argument("--margin", type=float, default=0.0, help="allowed drop (0.0)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. tracking.uri=...")
    ns = p.parse_args()
    try:
        challenger, name, version, _ = resolve_model("@challenger", ns.overrides)
    except MlcycleError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    new = _test_metric(challenger, ns.metric)
    try:
        champion, _, champion_version, _ = resolve_model("@champion", ns.overrides)
        old: float | None = _test_metric(champion, ns.metric)
    except MlcycleError:
        champion_version, old = "", None  # the first model: nothing to beat
    passed = old is None or new >= old - ns.margin
    verdict = "pass" if passed else "fail"
    against = f"champion v{champion_version} {old:.4f}" if old is not None else "no champion"
    print(f"gate: {verdict}: {name} v{version} test {ns.metric} {new:.4f} vs {against}")
    output = os.environ.get("GITHUB_OUTPUT")
    if output and passed:
        with open(output, "a") as fh:
            fh.write(f"version={version}\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
