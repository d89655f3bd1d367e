"""Fixtures of the rollout tests: the serving tests' real servers and bundles."""

from tests.serve.conftest import start_server

__all__ = ["start_server"]
