"""The review queue's checks (tests/review/test_queue.py) on a real PostgreSQL server.

Skipped when the PostgreSQL binaries or psycopg are missing (tests/_postgres.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from mlcycle.monitor.store import connect
from mlcycle.review.queue import ReviewQueue
from tests._postgres import PostgresServer
from tests.review.test_queue import QUEUE_CHECKS, Clock


@pytest.mark.parametrize("check", QUEUE_CHECKS, ids=[c.__name__[6:] for c in QUEUE_CHECKS])
def test_queue_on_postgresql(
    postgres_server: PostgresServer, check: Callable[[ReviewQueue], None]
) -> None:
    engine: sa.Engine = connect(postgres_server.create_database())
    try:
        check(ReviewQueue(engine, model_name="mixed", clock=Clock()))
    finally:
        engine.dispose()
