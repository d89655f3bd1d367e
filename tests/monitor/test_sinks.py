"""mlcycle.monitor.sinks: alarms reach a real webhook (with retries), the log and the
store; a webhook that is slow, failing or refused never blocks the caller."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.alarm_store import list_alarms
from mlcycle.monitor.alarms import Alarm, AlarmManager, AlarmRule
from mlcycle.monitor.sinks import LogSink, SinkSettings, StoreSink, WebhookSink, make_sinks
from mlcycle.monitor.store import ALARMS, connect
from tests._webhook import Receiver


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int], **kw: Any) -> Receiver:
        made.append(Receiver(statuses, **kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def an_alarm(name: str = "errors", state: str = "firing", **kw: Any) -> Alarm:
    values: dict[str, Any] = {
        "name": name,
        "metric": "error_rate",
        "value": 0.2,
        "threshold": 0.05,
        "message": "error_rate is 0.2, above the threshold 0.05; window of 100 samples",
        "state": state,
        "model_name": "churn",
        "model_version": "3",
        "time": 1000.0,
        **kw,
    }
    return Alarm(**values)


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_webhook_receives_the_alarm_as_json_with_its_headers(
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver([200])
    sink = WebhookSink(hook.url, headers={"Authorization": "Bearer t0ken"})
    sink.send(an_alarm(labels={"feature": "age"}))
    sink.close(10)
    assert sink.sent == 1 and sink.failed == 0
    body = hook.bodies[0]
    assert body["name"] == "errors" and body["labels"] == {"feature": "age"}
    assert body["value"] == 0.2 and body["state"] == "firing" and body["model_version"] == "3"
    assert hook.headers[0]["Authorization"] == "Bearer t0ken"
    assert hook.headers[0]["Content-Type"] == "application/json"


def test_a_webhook_answering_500_twice_is_retried_until_delivered(
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver([500, 500, 200])
    sink = WebhookSink(hook.url, retries=3, backoff=0.01)
    sink.send(an_alarm())
    assert sink.flush(10)
    sink.close()
    assert hook.attempts == 3 and len(hook.bodies) == 1
    assert sink.sent == 1 and sink.failed == 0


def test_a_client_error_is_not_retried(
    receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    hook = receiver([404])
    sink = WebhookSink(hook.url, retries=3, backoff=0.01)
    with caplog.at_level(logging.ERROR, logger="mlcycle.monitor.sinks"):
        sink.send(an_alarm())
        sink.close(10)
    assert hook.attempts == 1 and sink.failed == 1
    assert "HTTP 404" in caplog.text


def test_a_webhook_that_never_answers_in_time_is_given_up_without_blocking_the_caller(
    receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    hook = receiver([200], delay=30.0)
    sink = WebhookSink(hook.url, timeout=0.2, retries=1, backoff=0.01)
    with caplog.at_level(logging.ERROR, logger="mlcycle.monitor.sinks"):
        start = time.perf_counter()
        for i in range(5):
            sink.send(an_alarm(name=f"a{i}"))
        assert time.perf_counter() - start < 0.1  # queued, not sent
        assert sink.flush(20)
        sink.close()
    assert sink.failed == 5 and sink.sent == 0
    assert hook.attempts == 10  # each alarm: the attempt and one retry
    assert "giving up on alarm 'a0' after 2 attempt(s)" in caplog.text


def test_a_refused_port_is_retried_then_counted_as_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = WebhookSink(f"http://127.0.0.1:{refused_port()}/hook", retries=2, backoff=0.01)
    with caplog.at_level(logging.ERROR, logger="mlcycle.monitor.sinks"):
        sink.send(an_alarm())
        sink.close(10)
    assert sink.failed == 1 and sink.sent == 0
    assert "after 3 attempt(s)" in caplog.text and "refused" in caplog.text.lower()


def test_a_full_webhook_queue_drops_new_alarms_instead_of_waiting(
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver([200], delay=30.0)
    sink = WebhookSink(hook.url, timeout=0.5, retries=0, capacity=2)
    start = time.perf_counter()
    for i in range(10):
        sink.send(an_alarm(name=f"a{i}"))
    assert time.perf_counter() - start < 0.1
    assert sink.dropped >= 7
    hook.release.set()
    sink.close(10)
    assert sink.sent + sink.failed + sink.dropped == 10
    sink.send(an_alarm())  # after close: dropped, no error
    assert sink.sent + sink.failed + sink.dropped == 11


def test_the_log_sink_logs_at_the_alarm_s_severity(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSink()
    with caplog.at_level(logging.INFO, logger="mlcycle.monitor.alarms"):
        sink.send(an_alarm(severity="critical"))
        sink.send(an_alarm(severity="info"))
        sink.send(an_alarm(severity="critical", state="resolved"))
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL, logging.INFO, logging.INFO]
    assert "alarm errors [firing]: error_rate is 0.2" in caplog.records[0].getMessage()


def test_the_store_sink_keeps_one_row_per_incident(tmp_path: Path) -> None:
    engine = connect(tmp_path / "monitor.db")
    rule = AlarmRule(name="missing", metric="input.missing_rate", threshold=0.2, cooldown_seconds=0)
    manager = AlarmManager(
        [rule], [StoreSink(engine)], stage="s1", model_name="churn", model_version="3"
    )
    age, city = {"feature": "age"}, {"feature": "city"}
    manager.observe("input.missing_rate", 0.5, samples=100, labels=age, now=10)
    manager.observe("input.missing_rate", 0.6, samples=100, labels=city, now=20)
    manager.observe("input.missing_rate", 0.0, samples=100, labels=age, now=30)
    manager.observe("input.missing_rate", 0.7, samples=100, labels=age, now=40)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(ALARMS).order_by(ALARMS.c.id)))
    assert [(r.time, r.state) for r in rows] == [(10, "resolved"), (20, "firing"), (40, "firing")]
    first = json.loads(rows[0].details)
    assert first["labels"] == age and first["resolved_at"] == 30 and first["resolved_value"] == 0
    assert (rows[0].stage, rows[0].model_name, rows[0].model_version) == ("s1", "churn", "3")
    assert rows[0].message.startswith("input.missing_rate{feature=age} for model churn v3")
    listed = list_alarms(engine)
    assert [a["labels"] for a in listed] == [age, city, age]


def test_a_resolved_alarm_without_an_open_row_is_inserted_as_resolved(tmp_path: Path) -> None:
    engine = connect(tmp_path / "monitor.db")
    StoreSink(engine).send(an_alarm(state="resolved", labels={"arm": "b"}))
    rows = list_alarms(engine)
    assert [(r["state"], r["labels"]) for r in rows] == [("resolved", {"arm": "b"})]
    assert rows[0]["details"]["resolved_at"] == 1000.0


def test_sink_settings_from_a_mapping_make_the_sinks(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver([200])
    settings = SinkSettings.from_mapping(
        {"webhook_url": hook.url, "webhook_timeout": 2, "webhook_retries": 0, "log": False}
    )
    assert settings.webhook_timeout == 2.0
    engine = connect(tmp_path / "monitor.db")
    sinks = make_sinks(settings, engine)
    assert [type(s) for s in sinks] == [WebhookSink, StoreSink]
    manager = AlarmManager([AlarmRule(name="e", metric="error_rate", threshold=0.1)], sinks)
    manager.observe("error_rate", 0.5, samples=10, now=1)
    manager.close(10)
    assert len(hook.bodies) == 1 and len(list_alarms(engine)) == 1
    assert [type(s) for s in make_sinks(SinkSettings())] == [LogSink]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"webhook": "http://x"}, "unknown setting(s) ['webhook']"),
        ({"webhook_url": "ftp://x"}, "must start with http"),
        ({"webhook_retries": "3"}, "monitor.sinks.webhook_retries must be a int"),
        ({"log": "yes"}, "monitor.sinks.log must be a bool"),
        ({"webhook_timeout": 0}, "webhook_timeout must be > 0"),
        ({"webhook_headers": {"X-Token": 5}}, "webhook_headers must map names to strings"),
    ],
)
def test_bad_sink_settings_are_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SinkSettings.from_mapping(data)
    assert message in str(info.value)


def test_a_webhook_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        WebhookSink("hooks.example.com/x")
