"""``mlcycle feedback import FILE.csv``: store ground truth for logged predictions.

The CLI adds these flags to its ``feedback`` parser with :func:`add_arguments` and calls
:func:`run`. The file has the columns ``request_id``, ``label`` and optionally ``row``
(see :func:`mlcycle.monitor.feedback.import_feedback_csv`). A label must be one of the
model's classes: those of ``--model BUNDLE_DIR`` (its ``signature.json``) when given,
else the distinct labels the store has logged predictions with, which are the classes
the served models actually predicted (a class never predicted yet is then refused;
pass ``--model`` to allow it). By default one bad row refuses the whole file and
nothing is stored; ``--skip-invalid`` stores the good rows and lists the others.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlcycle.exceptions import BundleError
from mlcycle.monitor.feedback import FeedbackResult, import_feedback_csv, logged_classes
from mlcycle.monitor.store import connect, resolve_store

__all__ = ["add_arguments", "bundle_classes", "render_result", "run"]

_SHOWN = 20  # rejected rows listed in the summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``import`` subcommand and its flags to the ``feedback`` parser.

    Parameters
    ----------
    parser
        The ``feedback`` command's parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="mlcycle feedback")
    >>> add_arguments(parser)
    >>> ns = parser.parse_args(["import", "labels.csv", "--overwrite"])
    >>> ns.feedback_command, ns.file.name, ns.overwrite, ns.skip_invalid
    ('import', 'labels.csv', True, False)
    """
    sub = parser.add_subparsers(dest="feedback_command", metavar="COMMAND", required=True)
    imp = sub.add_parser(
        "import",
        help="store the true labels of a CSV file (request_id, label, row)",
        description="Store the true labels of logged predictions from a CSV file with "
        "the columns request_id, label and optionally row (default 0). All rows or none, "
        "unless --skip-invalid.",
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv", help="the CSV file")
    imp.add_argument(
        "--store",
        metavar="URL_OR_PATH",
        help="monitoring store: SQLite file or SQLAlchemy URL (default: monitor.db in the "
        "project root)",
    )
    imp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace labels already stored for a prediction (the old one is kept as "
        "previous_label)",
    )
    imp.add_argument(
        "--skip-invalid",
        action="store_true",
        help="store the valid rows and report the others (default: one bad row refuses the file)",
    )
    imp.add_argument(
        "--model",
        metavar="BUNDLE_DIR",
        help="bundle whose classes the labels must be among (default: the labels of the "
        "logged predictions)",
    )


def bundle_classes(bundle_dir: str | Path) -> list[str]:
    """The classes in a bundle's ``signature.json`` (without loading the model).

    Raises
    ------
    BundleError
        The folder or its ``signature.json`` is missing or has no classes.
    """
    from mlcycle.bundle import SIGNATURE_FILE

    path = Path(bundle_dir) / SIGNATURE_FILE
    try:
        signature = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{bundle_dir} is not a bundle folder: {SIGNATURE_FILE} is missing"
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from None
    classes = signature.get("classes") if isinstance(signature, dict) else None
    if not isinstance(classes, list) or not classes:
        raise BundleError(f"{path} lists no classes; re-export the bundle")
    return [str(c) for c in classes]


def render_result(result: FeedbackResult, file: Path) -> str:
    """The summary printed after an import."""
    lines = [
        f"feedback from {file}: {result.stored} stored, {result.replaced} replaced, "
        f"{result.unchanged} unchanged, {len(result.rejected)} rejected"
    ]
    for problem in result.rejected[:_SHOWN]:
        lines.append(f"  rejected [{problem['code']}] {problem['message']}")
    if len(result.rejected) > _SHOWN:
        lines.append(f"  ... and {len(result.rejected) - _SHOWN} more rejected")
    return "\n".join(lines)


def run(ns: argparse.Namespace) -> FeedbackResult:
    """Run ``mlcycle feedback <command>`` with the parsed flags; prints a summary.

    Returns
    -------
    FeedbackResult
        What the import stored, replaced, left unchanged and rejected.

    Raises
    ------
    FeedbackError
        A row was refused (without ``--skip-invalid``); nothing was stored.
    DataError
        The file is missing, unreadable, empty or lacks a column.
    BundleError
        ``--model`` is not a bundle folder.
    """
    engine = connect(resolve_store(ns.store))
    try:
        classes = bundle_classes(ns.model) if ns.model else logged_classes(engine)
        result = import_feedback_csv(
            engine, ns.file, classes=classes, overwrite=ns.overwrite, skip_invalid=ns.skip_invalid
        )
    finally:
        engine.dispose()
    print(render_result(result, ns.file))
    return result
