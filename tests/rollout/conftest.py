"""Fixtures of the rollout tests: the serving tests' real servers and bundles."""

from tests.serve.conftest import cancer_bundle, start_server

__all__ = ["cancer_bundle", "start_server"]
