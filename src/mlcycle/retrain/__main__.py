"""``python -m mlcycle.retrain ARGS``: the same as ``mlcycle retrain ARGS``."""

from __future__ import annotations

import sys

from mlcycle.exceptions import MlcycleError
from mlcycle.retrain.command import main

if __name__ == "__main__":  # pragma: no cover - run as a program
    try:
        main(prog="python -m mlcycle.retrain")
    except MlcycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(2) from None
