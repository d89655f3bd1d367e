"""``mlcycle monitor expand``: move the prediction log's batches into its table now.

The server's monitor writes the prediction log as packed batches and expands them into
the ``predictions`` table later (:mod:`mlcycle.monitor.log_batches`); mlcycle's own
readers expand before they read. Run this before querying the table with your own SQL.
"""

from __future__ import annotations

import argparse
import time

from mlcycle.monitor.alarm_commands import add_store_argument, open_store
from mlcycle.monitor.log_batches import backlog, expand_batches

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``mlcycle monitor expand`` flags to ``parser``.

    Parameters
    ----------
    parser
        The subcommand's parser.
    """
    add_store_argument(parser)


def run(ns: argparse.Namespace) -> str:
    """Expand every batch of the store's prediction log; what was done, as a sentence.

    Parameters
    ----------
    ns
        Parsed by a parser set up with :func:`add_arguments`.

    Raises
    ------
    DataError
        No store at the given path.
    StoreError
        A batch cannot be read (it is named; nothing of its transaction is written).
    """
    engine = open_store(ns.store)
    try:
        started = time.perf_counter()
        rows = expand_batches(engine)
        left = backlog(engine)  # written by a server meanwhile
    finally:
        engine.dispose()
    took = time.perf_counter() - started
    text = f"expanded {rows} prediction row(s) into the predictions table in {took:.1f} s"
    return text + (f"; {left} more arrived meanwhile" if left else "")
