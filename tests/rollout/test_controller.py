"""mlcycle.rollout.controller in one process: the order of what a worker does on a decision."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.rollout.analysis import Decision
from mlcycle.rollout.controller import RolloutController
from mlcycle.serve.app import ServerState
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ServeSettings
from tests import _rollout_bundles as rb


@pytest.fixture()
def controller(cancer_bundle: Path, tmp_path: Path) -> Iterator[RolloutController]:
    settings = ServeSettings(bundle=str(cancer_bundle))
    settings = dataclasses.replace(
        settings, monitor=dataclasses.replace(settings.monitor, store=str(tmp_path / "m.db"))
    )
    state = ServerState(ServedModel.load(settings), settings)
    c = RolloutController(state, state.store_engine(), cwd=tmp_path)
    state.rollouts = c
    try:
        yield c
    finally:
        state.close()


def _arms_when_aliases_move(
    c: RolloutController, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, set[str]]]:
    """What ``_after`` (the registry aliases) saw routed: (state, arm names), per call."""
    seen: list[tuple[str, set[str]]] = []

    def after(r: Any) -> None:
        seen.append((r.state, set(c.state.routing.arms)))

    monkeypatch.setattr(c, "_after", after)
    return seen


def _start(c: RolloutController, tmp_path: Path) -> None:
    bundle = rb.inaccurate_bundle(tmp_path / "challenger")
    c.begin(mode="bluegreen", bundle=str(bundle), who="test")
    assert set(c.state.routing.arms) == {"champion", "challenger"}


def test_a_rollback_by_hand_stops_routing_to_the_challenger_before_anything_else(
    controller: RolloutController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start(controller, tmp_path)
    seen = _arms_when_aliases_move(controller, monkeypatch)
    controller.act("rollback", who="test")
    assert seen == [("rolled_back", {"champion"})]


def test_a_rollback_by_analysis_stops_routing_to_the_challenger_before_anything_else(
    controller: RolloutController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once the store says "rolled back" (what GET /admin/rollout reads), this worker's next
    # request must not reach the challenger: a CI run once saw one that did, while the
    # worker was still starting the process that moves the registry aliases.
    _start(controller, tmp_path)
    seen = _arms_when_aliases_move(controller, monkeypatch)
    import mlcycle.rollout.analysis as analysis

    def rollback(*args: Any, **kwargs: Any) -> Decision:
        return Decision("rollback", "error_rate failed (forced by the test)", ())

    monkeypatch.setattr(analysis, "analyse", rollback)
    r = controller.store.active(controller.model_name)
    assert r is not None
    assert controller.analyse(r) is not None
    assert seen == [("rolled_back", {"champion"})]
