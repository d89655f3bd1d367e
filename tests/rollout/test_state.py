"""mlcycle.rollout.state: rollouts start in the right phase, move one step per revision,
hold one active rollout per model, survive a restart, and on PostgreSQL let exactly one of
two racing server processes start or step a rollout."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcycle.monitor.store import connect
from mlcycle.rollout.settings import RolloutSettings
from mlcycle.rollout.state import (
    ROLLOUT_EVENTS,
    ROLLOUTS,
    Rollout,
    RolloutError,
    RolloutStore,
)
from tests._postgres import PostgresServer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = connect(tmp_path / "m.db")
    yield engine
    engine.dispose()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(engine: sa.Engine, clock: Clock) -> RolloutStore:
    return RolloutStore(engine, clock=clock)


def start(store: RolloutStore, mode: str = "canary", model: str = "churn", **kw: Any) -> Rollout:
    settings = kw.pop("settings", RolloutSettings())
    return store.start(
        model_name=model,
        mode=mode,
        champion_version="3",
        champion_bundle="/bundles/3",
        challenger_version="4",
        challenger_bundle="/bundles/4",
        settings=settings,
        who=kw.pop("who", "ana"),
        reason=kw.pop("reason", "new features"),
    )


def step(store: RolloutStore, r: Rollout, reason: str = "analysis passed") -> Rollout:
    moved = store.promote_step(r, who="auto", reason=reason)
    assert moved is not None
    return moved


def count_events(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(ROLLOUT_EVENTS)).scalar_one()
        )


# -- starting ---------------------------------------------------------------------------


def test_each_mode_starts_in_its_phase_at_its_weight(store: RolloutStore, clock: Clock) -> None:
    shadow = start(store, "shadow", model="a", settings=RolloutSettings(shadow_percent=40))
    canary = start(store, "canary", model="b")
    bluegreen = start(store, "bluegreen", model="c")
    assert (shadow.phase, shadow.weight, shadow.shadow_percent, shadow.step) == (
        "shadow", 0.0, 40.0, 0,
    )  # fmt: skip
    assert (canary.phase, canary.weight, canary.shadow_percent, canary.step) == (
        "canary", 5.0, 0.0, 0,
    )  # fmt: skip
    assert (bluegreen.phase, bluegreen.weight, bluegreen.shadow_percent) == ("bluegreen", 100, 0)
    for r in (shadow, canary, bluegreen):
        assert r.state == "running" and r.active and r.active_key == r.model_name
        assert r.step_started_at == r.created_at == clock.now and r.revision == 1
        assert r.started_by == "ana" and r.steps == [5.0, 25.0, 50.0, 100.0]
        assert (r.champion_version, r.challenger_bundle) == ("3", "/bundles/4")
    assert shadow.settings["shadow_percent"] == 40 and shadow.settings["bake"]["min_requests"]
    assert [e.action for e in store.history(rollout_id=canary.id)] == ["start"]


def test_an_unknown_mode_or_bad_settings_is_422(store: RolloutStore) -> None:
    with pytest.raises(RolloutError, match="mode must be one of") as err:
        start(store, "linear")
    assert err.value.status == 422
    with pytest.raises(RolloutError, match="steps must end at 100") as err:
        start(store, settings=RolloutSettings(steps=[5, 50]))
    assert err.value.status == 422
    assert store.active("churn") is None


def test_a_second_start_for_the_same_model_is_409_naming_the_active_one(
    store: RolloutStore,
) -> None:
    first = start(store, "canary")
    with pytest.raises(RolloutError) as err:
        start(store, "bluegreen")
    assert err.value.status == 409 and err.value.rollout == first
    message = str(err.value)
    assert f"rollout {first.id}" in message and "canary" in message and "5%" in message
    assert store.active("churn") == first
    other = start(store, "bluegreen", model="fraud")
    assert other.id != first.id and store.active("fraud") == other


def test_a_finished_rollout_frees_the_model_for_a_new_start(store: RolloutStore) -> None:
    first = start(store)
    done = store.rollback(first, who="ana", reason="bad")
    assert done is not None and not done.active and done.active_key is None
    assert store.active("churn") is None
    second = start(store, "bluegreen")
    assert second.id != first.id and store.active("churn") == second
    assert store.latest("churn") == second
    assert store.get(first.id).state == "rolled_back"


def test_get_of_an_unknown_id_is_404(store: RolloutStore) -> None:
    with pytest.raises(RolloutError, match="no rollout with id 99") as err:
        store.get(99)
    assert err.value.status == 404
    assert store.active("churn") is None and store.latest("churn") is None


# -- steps ------------------------------------------------------------------------------


def test_a_canary_walks_its_steps_then_is_promoted_with_one_event_each(
    store: RolloutStore, clock: Clock
) -> None:
    r = start(store)
    seen = [(r.weight, r.step, r.state)]
    while r.active:
        clock.now += 10
        r = step(store, r, reason=f"passed at {r.weight:g}")
        seen.append((r.weight, r.step, r.state))
        assert r.step_started_at == clock.now or r.state == "promoted"
    assert seen == [
        (5.0, 0, "running"),
        (25.0, 1, "running"),
        (50.0, 2, "running"),
        (100.0, 3, "running"),
        (100.0, 3, "promoted"),
    ]
    assert r.revision == 5 and r.active_key is None and r.updated_at == clock.now
    events = store.history(rollout_id=r.id)
    assert [e.action for e in events] == ["promote", "step", "step", "step", "start"]
    assert [(e.from_weight, e.to_weight) for e in events[:4]] == [
        (100, 100), (50, 100), (25, 50), (5, 25),
    ]  # fmt: skip
    assert events[0].to_state == "promoted" and events[0].from_state == "running"
    assert events[1].reason == "passed at 50"


@pytest.mark.parametrize(
    ("after", "phase", "state", "weight", "action"),
    [
        ("canary", "canary", "running", 5.0, "step"),
        ("bluegreen", "bluegreen", "running", 100.0, "step"),
        ("stop", "shadow", "completed", 0.0, "complete"),
    ],
)
def test_a_shadow_rollout_goes_on_as_its_after_shadow_says(
    store: RolloutStore,
    clock: Clock,
    after: str,
    phase: str,
    state: str,
    weight: float,
    action: str,
) -> None:
    r = start(store, "shadow", settings=RolloutSettings(after_shadow=after))
    clock.now += 60
    moved = step(store, r)
    assert (moved.phase, moved.state, moved.weight, moved.step) == (phase, state, weight, 0)
    assert moved.shadow_percent == 0 and moved.step_started_at == clock.now
    assert moved.mode == "shadow" and moved.active == (state == "running")
    event = store.history(rollout_id=r.id)[0]
    assert (event.action, event.from_phase, event.to_phase) == (action, "shadow", phase)


def test_shadow_then_canary_walks_the_canary_steps(store: RolloutStore) -> None:
    r = step(store, start(store, "shadow"))
    weights = [r.weight]
    while r.active:
        r = step(store, r)
        weights.append(r.weight)
    assert weights == [5, 25, 50, 100, 100] and r.state == "promoted"


def test_bluegreen_promote_step_promotes(store: RolloutStore) -> None:
    r = step(store, start(store, "bluegreen"))
    assert (r.state, r.weight, r.active) == ("promoted", 100, False)
    assert store.history(rollout_id=r.id)[0].action == "promote"


def test_promote_by_hand_goes_straight_to_promoted(store: RolloutStore) -> None:
    r = step(store, start(store))
    promoted = store.promote(r, who="ana", reason="looks fine", metrics={"errors": 0})
    assert promoted is not None
    assert (promoted.state, promoted.weight, promoted.active_key) == ("promoted", 100, None)
    event = store.history(rollout_id=r.id)[0]
    assert (event.action, event.who, event.metrics) == ("promote", "ana", {"errors": 0})


@pytest.mark.parametrize("steps_taken", [0, 1, 2, 3])
def test_rollback_from_any_running_step(store: RolloutStore, steps_taken: int) -> None:
    r = start(store)
    for _ in range(steps_taken):
        r = step(store, r)
    before = r.weight
    back = store.rollback(r, who="auto", reason="error rate", metrics={"error_rate": 0.2})
    assert back is not None
    assert (back.state, back.weight, back.shadow_percent, back.active) == (
        "rolled_back", 0, 0, False,
    )  # fmt: skip
    event = store.history(rollout_id=r.id)[0]
    assert (event.action, event.from_weight, event.to_weight) == ("rollback", before, 0)
    assert event.metrics == {"error_rate": 0.2}


def test_rollback_of_a_shadow_stops_the_mirroring(store: RolloutStore) -> None:
    back = store.rollback(start(store, "shadow"), who="auto", reason="disagrees")
    assert back is not None and (back.weight, back.shadow_percent) == (0, 0)


def test_anything_on_a_finished_rollout_is_409(store: RolloutStore) -> None:
    done = store.rollback(start(store), who="ana", reason="no")
    assert done is not None
    calls: list[Callable[[], object]] = [
        lambda: store.promote_step(done, who="x", reason=""),
        lambda: store.promote(done, who="x", reason=""),
        lambda: store.rollback(done, who="x", reason=""),
        lambda: store.pause(done, who="x", reason=""),
        lambda: store.resume(done, who="x", reason=""),
    ]
    for call in calls:
        with pytest.raises(RolloutError, match="finished") as err:
            call()
        assert err.value.status == 409
    assert store.get(done.id) == done and len(store.history(rollout_id=done.id)) == 2


# -- pause and resume -------------------------------------------------------------------


def test_pause_keeps_the_weights_and_resume_restarts_the_bake_window(
    store: RolloutStore, clock: Clock
) -> None:
    r = step(store, start(store))
    clock.now += 30
    paused = store.pause(r, who="ana", reason="investigating")
    assert paused is not None
    assert (paused.state, paused.weight, paused.step, paused.active) == ("paused", 25, 1, True)
    assert paused.step_started_at == r.step_started_at
    with pytest.raises(RolloutError, match="paused; resume it first") as err:
        store.promote_step(paused, who="auto", reason="")
    assert err.value.status == 409
    with pytest.raises(RolloutError) as err:
        store.pause(paused, who="ana", reason="again")
    assert err.value.status == 409
    clock.now += 30
    resumed = store.resume(paused, who="bo", reason="fixed")
    assert resumed is not None
    assert (resumed.state, resumed.weight, resumed.step) == ("running", 25, 1)
    assert resumed.step_started_at == clock.now
    with pytest.raises(RolloutError, match="only a paused rollout") as err:
        store.resume(resumed, who="bo", reason="again")
    assert err.value.status == 409
    events = store.history(rollout_id=r.id)
    assert [(e.action, e.who, e.reason) for e in events[:2]] == [
        ("resume", "bo", "fixed"), ("pause", "ana", "investigating"),
    ]  # fmt: skip


def test_a_paused_rollout_can_be_rolled_back_or_promoted(store: RolloutStore) -> None:
    paused = store.pause(start(store), who="ana", reason="")
    assert paused is not None
    back = store.rollback(paused, who="ana", reason="")
    assert back is not None and back.state == "rolled_back"
    paused = store.pause(start(store), who="ana", reason="")
    assert paused is not None
    promoted = store.promote(paused, who="ana", reason="")
    assert promoted is not None and promoted.state == "promoted"


# -- concurrency on one file ------------------------------------------------------------


def test_a_stale_rollout_gets_none_and_changes_nothing(
    store: RolloutStore, engine: sa.Engine
) -> None:
    seen = start(store)
    current = step(store, seen)
    events = count_events(engine)
    assert store.promote_step(seen, who="other", reason="") is None
    assert store.rollback(seen, who="other", reason="") is None
    assert store.pause(seen, who="other", reason="") is None
    assert store.get(seen.id) == current and count_events(engine) == events


def test_note_analysis_keeps_the_analysis_without_a_new_revision(store: RolloutStore) -> None:
    r = start(store)
    store.note_analysis(r, {"passed": True, "p99_ratio": float("nan"), "checks": [1, 2]})
    noted = store.get(r.id)
    assert noted.last_analysis == {"passed": True, "p99_ratio": None, "checks": [1, 2]}
    assert noted.revision == r.revision and len(store.history(rollout_id=r.id)) == 1
    assert step(store, r).last_analysis == noted.last_analysis  # r is not stale
    with pytest.raises(RolloutError) as err:
        store.note_analysis(dataclasses.replace(noted, id=999), {})
    assert err.value.status == 404


# -- reading ----------------------------------------------------------------------------


def test_history_is_newest_first_with_reasons_metrics_and_who(
    store: RolloutStore, clock: Clock
) -> None:
    a = start(store, model="a", who="ana", reason="try v4")
    clock.now += 1
    b = start(store, model="b", who="bo", reason="try v9")
    clock.now += 1
    step(store, a, reason="bake passed")
    clock.now += 1
    store.rollback(store.get(b.id), who="auto", reason="slow", metrics={"p99_ratio": 2.5})
    every = store.history()
    assert [(e.rollout_id, e.action) for e in every] == [
        (b.id, "rollback"), (a.id, "step"), (b.id, "start"), (a.id, "start"),
    ]  # fmt: skip
    assert [e.time for e in every] == [1003, 1002, 1001, 1000]
    assert every[0].metrics == {"p99_ratio": 2.5} and every[0].who == "auto"
    assert every[0].to_dict()["reason"] == "slow"
    assert [(e.action, e.reason, e.who) for e in store.history(model_name="a")] == [
        ("step", "bake passed", "auto"), ("start", "try v4", "ana"),
    ]  # fmt: skip
    assert len(store.history(limit=2)) == 2
    assert store.history(model_name="nobody") == []


def test_to_dict_is_json_ready(store: RolloutStore) -> None:
    r = start(store)
    text = json.dumps(r.to_dict())
    assert json.loads(text)["steps"] == [5.0, 25.0, 50.0, 100.0]
    assert json.loads(text)["active"] is True


def test_state_survives_a_new_engine_on_the_same_file(tmp_path: Path, clock: Clock) -> None:
    first = connect(tmp_path / "m.db")
    r = step(RolloutStore(first, clock=clock), start(RolloutStore(first, clock=clock)))
    first.dispose()
    again = connect(tmp_path / "m.db")
    try:
        store = RolloutStore(again, clock=clock)
        assert store.active("churn") == r and store.get(r.id) == r
        assert (r.weight, r.step) == (25, 1)
        assert [e.action for e in store.history(model_name="churn")] == ["step", "start"]
        assert step(store, r).weight == 50
    finally:
        again.dispose()


def test_the_tables_are_in_the_store_metadata(engine: sa.Engine) -> None:
    names = set(sa.inspect(engine).get_table_names())
    assert {ROLLOUTS.name, ROLLOUT_EVENTS.name} <= names


# -- two server processes on PostgreSQL -------------------------------------------------


@pytest.fixture()
def pg_engines(postgres_server: PostgresServer) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two engines (two servers' pools) on a new database of the session's server."""
    url = postgres_server.create_database()
    one, two = connect(url), connect(url)
    yield one, two
    one.dispose()
    two.dispose()


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released together; each result or raised exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_postgres_two_servers_starting_at_once_only_one_wins(
    pg_engines: tuple[sa.Engine, sa.Engine],
) -> None:
    stores = [RolloutStore(e) for e in pg_engines]
    for attempt in range(5):  # several rounds: the race is lost in different places
        model = f"m{attempt}"
        results = race(*(partial(start, s, model=model) for s in stores))
        won = [r for r in results if isinstance(r, Rollout)]
        lost = [r for r in results if isinstance(r, RolloutError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].status == 409 and f"rollout {won[0].id}" in str(lost[0])
        assert stores[0].active(model) == stores[1].active(model) == won[0]
        assert len(stores[0].history(model_name=model)) == 1


def test_postgres_two_servers_stepping_the_same_revision_only_one_moves(
    pg_engines: tuple[sa.Engine, sa.Engine],
) -> None:
    one, two = (RolloutStore(e) for e in pg_engines)
    r = start(one)
    for _ in range(3):  # 5 -> 25 -> 50 -> 100, each step raced by both servers
        seen_one, seen_two = one.get(r.id), two.get(r.id)
        assert seen_one == seen_two
        results = race(
            partial(one.promote_step, seen_one, who="server-1", reason="passed"),
            partial(two.promote_step, seen_two, who="server-2", reason="passed"),
        )
        moved = [x for x in results if isinstance(x, Rollout)]
        assert len(moved) == 1 and results.count(None) == 1, results
        r = moved[0]
        assert r.revision == seen_one.revision + 1 and r.step == seen_one.step + 1
        assert one.get(r.id) == two.get(r.id) == r
        events = one.history(rollout_id=r.id)
        assert len(events) == r.step + 1 and events[0].to_weight == r.weight
    assert (one.get(r.id).weight, two.get(r.id).step) == (100, 3)
