"""``mlcycle monitor alarms`` / ``ack``: list open alarms newest first (table or JSON),
filter them, and acknowledge them, with clear errors for bad ids, stores and times."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcycle.exceptions import ConfigError, DataError, MlcycleError
from mlcycle.monitor.alarm_commands import (
    add_ack_arguments,
    add_alarms_arguments,
    parse_since,
    run_ack,
    run_alarms,
)
from mlcycle.monitor.alarm_store import AlarmStoreError, acknowledge, list_alarms
from mlcycle.monitor.alarms import AlarmManager, AlarmRule
from mlcycle.monitor.sinks import StoreSink
from mlcycle.monitor.store import ALARMS, connect

NOW = time.time()


def alarms_ns(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlcycle monitor alarms")
    add_alarms_arguments(parser)
    return parser.parse_args(list(args))


def ack_ns(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlcycle monitor ack")
    add_ack_arguments(parser)
    return parser.parse_args(list(args))


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A store with three alarms: errors (2 h ago, resolved), age (1 h ago), latency (now)."""
    path = tmp_path / "monitor.db"
    engine = connect(path)
    rules = [
        AlarmRule(name="high_error_rate", metric="error_rate", threshold=0.05),
        AlarmRule(name="missing", metric="input.missing_rate", threshold=0.2),
        AlarmRule(name="latency", metric="latency_p99_ms", threshold=500, severity="critical"),
    ]
    manager = AlarmManager([*rules], [StoreSink(engine)], model_name="churn", model_version="3")
    manager.observe("error_rate", 0.2, samples=100, now=NOW - 7200)
    manager.observe("error_rate", 0.0, samples=100, now=NOW - 7000)
    manager.observe(
        "input.missing_rate", 0.5, samples=100, labels={"feature": "age"}, now=NOW - 3600
    )
    manager.observe("latency_p99_ms", 900, samples=100, now=NOW)
    engine.dispose()
    return str(path)


def ids_by_name(store: str) -> dict[str, int]:
    engine = connect(store)
    with engine.connect() as conn:
        out = {r.name: r.id for r in conn.execute(sa.select(ALARMS.c.id, ALARMS.c.name))}
    engine.dispose()
    return out


def json_output(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    run_alarms(alarms_ns(*args, "--json"))
    data: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return data


def test_alarms_lists_unacknowledged_alarms_newest_first_as_json(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = json_output(capsys, "--store", store)
    assert [r["name"] for r in rows] == ["latency", "missing", "high_error_rate"]
    assert [r["state"] for r in rows] == ["firing", "firing", "resolved"]
    assert rows[1]["labels"] == {"feature": "age"}
    assert rows[0]["severity"] == "critical" and rows[0]["value"] == 900
    assert rows[0]["model_name"] == "churn" and rows[0]["acknowledged_at"] is None
    assert datetime.fromisoformat(rows[0]["time_iso"]).timestamp() == pytest.approx(NOW, abs=1)


def test_alarms_prints_a_table(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    run_alarms(alarms_ns("--store", store))
    out = capsys.readouterr().out
    assert "unacknowledged alarms (newest first), model churn v3" in out
    for text in ("input.missing_rate{feature=age}", "900 > 500", "critical", "resolved"):
        assert text in out
    assert out.index("latency") < out.index("missing") < out.index("high_error_rate")
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal folds, but shows every alarm
    run_alarms(alarms_ns("--store", store))
    narrow = capsys.readouterr().out
    assert all(len(line) <= 60 for line in narrow.splitlines())
    assert "900 >" in narrow and "0.2 >" in narrow


def test_alarms_filters_by_state_and_since(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert [r["name"] for r in json_output(capsys, "--store", store, "--state", "resolved")] == [
        "high_error_rate"
    ]
    assert [r["name"] for r in json_output(capsys, "--store", store, "--since", "90m")] == [
        "latency",
        "missing",
    ]
    since = datetime.fromtimestamp(NOW - 60).isoformat()
    assert [r["name"] for r in json_output(capsys, "--store", store, "--since", since)] == [
        "latency"
    ]
    assert json_output(capsys, "--store", store, "--since", "2099-01-01T00:00+00:00") == []
    run_alarms(alarms_ns("--store", store, "--since", "2099-01-01"))
    assert "no unacknowledged alarms since 2099-01-01" in capsys.readouterr().out


def test_ack_hides_alarms_unless_all_is_given(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ids_by_name(store)
    run_ack(ack_ns(str(ids["latency"]), str(ids["missing"]), "--by", "alice", "--store", store))
    assert "acknowledged 2 alarm(s)" in capsys.readouterr().out
    assert [r["name"] for r in json_output(capsys, "--store", store)] == ["high_error_rate"]
    everything = json_output(capsys, "--store", store, "--all")
    assert [r["name"] for r in everything] == ["latency", "missing", "high_error_rate"]
    assert everything[0]["acknowledged_by"] == "alice"
    assert everything[0]["acknowledged_at"] == pytest.approx(time.time(), abs=60)
    monkeypatch.setenv("COLUMNS", "160")
    run_alarms(alarms_ns("--store", store, "--all"))
    assert "alice" in capsys.readouterr().out


def test_ack_of_an_unknown_id_names_it_and_acknowledges_nothing(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ids_by_name(store)
    with pytest.raises(MlcycleError, match="no alarm with id 999") as info:
        run_ack(ack_ns(str(ids["latency"]), "999", "--store", store))
    assert isinstance(info.value, AlarmStoreError)
    assert len(json_output(capsys, "--store", store)) == 3


def test_ack_of_an_acknowledged_alarm_says_who_did_it(store: str) -> None:
    alarm_id = ids_by_name(store)["missing"]
    run_ack(ack_ns(str(alarm_id), "--by", "bob", "--store", store))
    with pytest.raises(AlarmStoreError, match=f"alarm {alarm_id} was acknowledged by bob"):
        run_ack(ack_ns(str(alarm_id), "--store", store))


def test_ack_defaults_to_the_user_name(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "carol")
    monkeypatch.setenv("USER", "carol")
    run_ack(ack_ns(str(ids_by_name(store)["latency"]), "--store", store))
    engine = connect(store)
    assert list_alarms(engine, include_acknowledged=True)[0]["acknowledged_by"] == "carol"
    engine.dispose()


def test_a_missing_store_file_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(DataError, match="no monitoring store at"):
        run_alarms(alarms_ns("--store", str(missing)))
    with pytest.raises(DataError, match="no monitoring store at"):
        run_ack(ack_ns("1", "--store", str(missing)))
    assert not missing.exists()


def test_an_empty_store_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "monitor.db"
    connect(path).dispose()
    run_alarms(alarms_ns("--store", str(path)))
    assert capsys.readouterr().out.strip() == "no unacknowledged alarms"
    assert json_output(capsys, "--store", str(path)) == []


def test_since_accepts_durations_and_iso_times() -> None:
    assert parse_since("30m", now=10_000.0) == 10_000.0 - 1800
    assert parse_since("1h", now=10_000.0) == 10_000.0 - 3600
    assert parse_since("7d", now=1e6) == 1e6 - 7 * 86400
    assert parse_since("90s", now=100.0) == 10.0
    assert parse_since("2024-05-01T12:00:00+00:00") == 1714564800.0
    assert parse_since("2024-05-01T12:00:00Z") == 1714564800.0
    with pytest.raises(ConfigError, match="--since must be a duration"):
        parse_since("yesterday")
    with pytest.raises(ConfigError):
        run_alarms(alarms_ns("--since", "3 fortnights"))


def test_acknowledge_is_all_or_nothing_at_the_store_level(tmp_path: Path) -> None:
    engine = connect(tmp_path / "monitor.db")
    sink = StoreSink(engine)
    manager = AlarmManager([AlarmRule(name="e", metric="error_rate", threshold=0.1)], [sink])
    manager.observe("error_rate", 0.5, samples=10, now=1)
    (only,) = list_alarms(engine)
    with pytest.raises(AlarmStoreError, match="no alarm id given"):
        acknowledge(engine, [], "x")
    with pytest.raises(AlarmStoreError, match="no alarm with id 5, 6"):
        acknowledge(engine, [only["id"], 6, 5], "x")
    assert acknowledge(engine, [only["id"], only["id"]], "x", now=5.0) == 1
    assert list_alarms(engine) == []
    assert list_alarms(engine, include_acknowledged=True)[0]["acknowledged_at"] == 5.0
    with pytest.raises(AlarmStoreError, match="state must be one of"):
        list_alarms(engine, state="open")
