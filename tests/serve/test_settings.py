"""mlcycle.serve.settings: defaults, JSON round trip, and clear errors for bad values."""

from __future__ import annotations

import pytest

from mlcycle.exceptions import ConfigError
from mlcycle.serve.settings import ENV_VAR, ServeSettings


def test_settings_survive_the_trip_to_a_worker_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = ServeSettings.from_mapping(
        {"port": 9001, "workers": 3, "batching": {"max_batch_rows": 64, "max_wait_ms": 2}}
    )
    monkeypatch.setenv(ENV_VAR, s.to_json())
    back = ServeSettings.from_env()
    assert back == s
    assert back.batching.max_wait_ms == 2.0 and back.workers == 3


def test_defaults_listen_on_loopback_with_a_10_mb_body_limit() -> None:
    s = ServeSettings()
    assert s.host == "127.0.0.1"
    assert s.validation.max_body_bytes == 10 * 1024 * 1024
    assert s.ort.intra_op_threads == 1


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"prot": 1}, "unknown setting(s) ['prot']"),
        ({"port": "80"}, "serve.port must be a int"),
        ({"workers": 0}, "serve.workers must be at least 1"),
        ({"validation": {"unseen_category": "drop"}}, "unseen_category must be one of"),
        ({"ort": {"graph_optimization": "max"}}, "graph_optimization must be one of"),
        ({"batching": {"enabled": "yes"}}, "serve.batching.enabled must be a bool"),
        ({"batching": 3}, "serve.batching must be a mapping"),
        ({"monitor": {"expand_after": "soon"}}, "serve.monitor.expand_after must be a float"),
        ({"monitor": {"expand_after": -1}}, "serve.monitor.expand_after must be >= 0 seconds"),
        (
            {"monitor": {"handover_interval": 0}},
            "serve.monitor.handover_interval must be positive seconds",
        ),
    ],
)
def test_bad_settings_name_the_key_and_the_allowed_values(data: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=None) as info:
        ServeSettings.from_mapping(data)
    assert needle in str(info.value)


def test_an_optional_number_takes_null_or_a_number() -> None:
    assert ServeSettings().monitor.expand_after is None  # the server does not expand
    assert (
        ServeSettings.from_mapping({"monitor": {"expand_after": None}}).monitor.expand_after is None
    )
    assert ServeSettings.from_mapping({"monitor": {"expand_after": 5}}).monitor.expand_after == 5.0


def test_from_env_without_the_variable_says_how_to_start_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ConfigError, match="mlcycle serve"):
        ServeSettings.from_env()
