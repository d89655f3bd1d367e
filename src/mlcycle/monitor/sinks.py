"""Where alarms go: the log, a webhook, the monitoring store.

* :class:`LogSink` logs each alarm at a level set by its severity.
* :class:`WebhookSink` POSTs each alarm as JSON from its own daemon thread, through a
  bounded queue, so the monitor never waits on the network: connection errors,
  timeouts and 5xx answers are retried with exponential back-off; after ``retries``
  retries the alarm is logged and counted in :attr:`WebhookSink.failed`.
* :class:`StoreSink` writes the ``alarms`` table: a firing alarm inserts a row; a
  resolved one updates the newest open (firing) row of the same name, labels, stage and
  model to ``resolved``, with the resolution time and value in its ``details``, so one
  row is one incident; when no open row exists (the store was down when it fired) it
  inserts a ``resolved`` row. Labels are kept in ``details`` (``details["labels"]``).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import sqlalchemy as sa

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.alarms import Alarm, AlarmSink
from mlcycle.monitor.detectors import settings_kwargs
from mlcycle.monitor.store import ALARMS

__all__ = ["LogSink", "SinkSettings", "StoreSink", "WebhookSink", "make_sinks"]

log = logging.getLogger("mlcycle.monitor.sinks")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class LogSink:
    """Logs alarms: firing ones at their severity's level, resolved ones at INFO.

    Parameters
    ----------
    logger
        The logger (default ``mlcycle.monitor.alarms``).
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("mlcycle.monitor.alarms")

    def send(self, alarm: Alarm) -> None:
        """Log ``alarm``."""
        level = _LEVELS.get(alarm.severity, logging.WARNING)
        if alarm.state != "firing":
            level = logging.INFO
        self.logger.log(level, "alarm %s [%s]: %s", alarm.name, alarm.state, alarm.message)

    def close(self, timeout: float = 5.0) -> None:
        """Nothing to release."""


class _Stop:
    pass


_STOP = _Stop()


class WebhookSink:
    """POSTs alarms as JSON to a URL, from a background thread.

    Parameters
    ----------
    url
        ``http://`` or ``https://`` endpoint (Slack, PagerDuty, Alertmanager-style
        receivers, your own service).
    timeout
        Seconds to wait for each answer.
    retries
        Further attempts after a failed one (connection error, timeout, 5xx or 429);
        other 4xx answers are not retried.
    backoff
        Seconds before the first retry; doubled for each next one.
    headers
        Extra request headers (e.g. ``Authorization``).
    capacity
        Most alarms waiting; beyond it new alarms are dropped (and counted).
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        headers: Mapping[str, str] | None = None,
        *,
        capacity: int = 1000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must start with http:// or https://, not {url!r}")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        #: Alarms delivered, given up on, and dropped because the queue was full.
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[Alarm | _Stop] = queue.Queue(maxsize=capacity)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlcycle-webhook", daemon=True)
        self._thread.start()

    def send(self, alarm: Alarm) -> None:
        """Queue ``alarm`` for delivery; never blocks."""
        if self._closed:
            self.dropped += 1
            log.warning("webhook %s is closed; alarm %r dropped", self.url, alarm.name)
            return
        try:
            self._queue.put_nowait(alarm)
        except queue.Full:
            self.dropped += 1
            log.warning("webhook %s queue is full; alarm %r dropped", self.url, alarm.name)

    @property
    def pending(self) -> int:
        """Alarms waiting for delivery."""
        return self._queue.unfinished_tasks

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alarm is delivered or given up; ``True`` if so."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=max(timeout, 0.0))
        except queue.Full:
            log.warning("webhook %s: alarms still queued at close were not sent", self.url)
        self._thread.join(max(deadline - time.monotonic(), 0.0))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if isinstance(item, _Stop):
                    return
                self._deliver(item)
            finally:
                self._queue.task_done()

    def _deliver(self, alarm: Alarm) -> None:
        body = json.dumps(alarm.to_dict(), default=str).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.url, data=body, headers=self.headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                exc.close()
                problem = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break
            except (OSError, http.client.HTTPException) as exc:  # refused, timeout, reset
                problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
        self.failed += 1
        log.error(
            "webhook %s: giving up on alarm %r after %d attempt(s): %s",
            self.url,
            alarm.name,
            attempt + 1,
            problem,
        )


class StoreSink:
    """Writes alarms to the store's ``alarms`` table.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect`.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def send(self, alarm: Alarm) -> None:
        """Insert a firing alarm; close the open row of a resolved one."""
        details = {**alarm.details, "labels": dict(alarm.labels)}
        with self.engine.begin() as conn:
            if alarm.state == "resolved":
                row_id, open_details = self._open_row(conn, alarm)
                if row_id is not None:
                    open_details.update(resolved_at=alarm.time, resolved_value=alarm.value)
                    conn.execute(
                        ALARMS.update()
                        .where(ALARMS.c.id == row_id)
                        .values(state="resolved", details=json.dumps(open_details, default=str))
                    )
                    return
                details.update(resolved_at=alarm.time, resolved_value=alarm.value)
            conn.execute(
                ALARMS.insert().values(
                    time=alarm.time,
                    name=alarm.name,
                    metric=alarm.metric,
                    stage=alarm.stage,
                    model_name=alarm.model_name,
                    model_version=alarm.model_version,
                    severity=alarm.severity,
                    state=alarm.state,
                    value=alarm.value,
                    threshold=alarm.threshold,
                    message=alarm.message,
                    details=json.dumps(details, default=str),
                )
            )

    @staticmethod
    def _open_row(conn: sa.Connection, alarm: Alarm) -> tuple[int | None, dict[str, Any]]:
        rows = conn.execute(
            sa.select(ALARMS.c.id, ALARMS.c.details)
            .where(
                ALARMS.c.name == alarm.name,
                ALARMS.c.state == "firing",
                ALARMS.c.stage == alarm.stage,
                ALARMS.c.model_name == alarm.model_name,
                ALARMS.c.model_version == alarm.model_version,
            )
            .order_by(ALARMS.c.id.desc())
        )
        for row_id, text in rows:
            details = json.loads(text) if text else {}
            if details.get("labels", {}) == alarm.labels:
                return int(row_id), details
        return None, {}

    def close(self, timeout: float = 5.0) -> None:
        """Nothing to release (the engine belongs to the caller)."""


@dataclass(frozen=True)
class SinkSettings:
    """The ``monitor.sinks`` config section."""

    # Log every alarm (logger mlcycle.monitor.alarms).
    log: bool = True
    # POST every alarm as JSON to this URL; empty: no webhook.
    webhook_url: str = ""
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    webhook_backoff: float = 0.5
    webhook_headers: dict[str, str] = field(default_factory=dict)
    # Write alarms to the monitoring store (what `mlcycle monitor alarms` lists).
    store: bool = True

    def __post_init__(self) -> None:
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"monitor.sinks.webhook_url must start with http:// or https://, "
                f"not {self.webhook_url!r}"
            )
        if self.webhook_timeout <= 0 or self.webhook_retries < 0 or self.webhook_backoff < 0:
            raise ConfigError(
                "monitor.sinks: webhook_timeout must be > 0, webhook_retries and "
                "webhook_backoff >= 0"
            )
        bad = {k: v for k, v in self.webhook_headers.items() if not isinstance(v, str)}
        if bad or not all(isinstance(k, str) for k in self.webhook_headers):
            raise ConfigError(f"monitor.sinks.webhook_headers must map names to strings: {bad}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "monitor.sinks") -> Self:
        """Settings from the config section.

        Parameters
        ----------
        data
            E.g. ``{"webhook_url": "https://hooks.example.com/x", "store": true}``.
        where
            Its key path, for errors.

        Raises
        ------
        ConfigError
            An unknown key, a value of the wrong type or not allowed.
        """
        return cls(**settings_kwargs(cls, data, where))


def make_sinks(settings: SinkSettings, engine: sa.Engine | None = None) -> list[AlarmSink]:
    """The sinks ``settings`` ask for.

    Parameters
    ----------
    settings
        From :meth:`SinkSettings.from_mapping`.
    engine
        The monitoring store; the store sink is made only when given and
        ``settings.store`` is on.

    Returns
    -------
    list
        Log, webhook and store sinks, in that order (those that are on).
    """
    sinks: list[AlarmSink] = []
    if settings.log:
        sinks.append(LogSink())
    if settings.webhook_url:
        sinks.append(
            WebhookSink(
                settings.webhook_url,
                timeout=settings.webhook_timeout,
                retries=settings.webhook_retries,
                backoff=settings.webhook_backoff,
                headers=settings.webhook_headers,
            )
        )
    if settings.store and engine is not None:
        sinks.append(StoreSink(engine))
    return sinks
