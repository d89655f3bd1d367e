"""``mlcycle rollout``: the CLI against a real server's admin API.

One server (cancer bundle, admin token set, a short bake window) serves the module; the
CLI runs in-process through :func:`mlcycle.cli.main`. Every test leaves no rollout active.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mlcycle.cli import main
from mlcycle.completion import candidates
from mlcycle.rollout import commands
from mlcycle.rollout.client import AdminClient, RolloutClientError
from mlcycle.serve.settings import ServeSettings
from tests._bundles import build_bundle
from tests.conftest import free_port
from tests.serve.conftest import RunningServer, _stop, _wait_ready

TOKEN = "test-admin-token-4711"
USER = "alice"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The champion's bundle and a copy of it as the challenger (same signature)."""
    folder = tmp_path_factory.mktemp("rollout-bundles")
    champion = build_bundle("cancer", folder / "champion")
    challenger = folder / "challenger"
    shutil.copytree(champion, challenger)
    return champion, challenger


def _start_server(folder: Path, bundle: Path, token: str | None) -> RunningServer:
    port = free_port()
    log = folder / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if k != commands.TOKEN_ENV}
    if token is not None:
        env[commands.TOKEN_ENV] = token
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle),
             "--port", str(port), "--monitor-store", str(folder / "m.db"),
             "serve.rollout.bake.min_requests=20", "serve.rollout.bake.min_seconds=0.5"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=env,
            start_new_session=True,
        )  # fmt: skip
    server = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    _wait_ready(server)
    return server


@pytest.fixture(scope="module")
def server(
    bundles: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server of the champion with the admin API enabled (token :data:`TOKEN`)."""
    running = _start_server(tmp_path_factory.mktemp("rollout-server"), bundles[0], TOKEN)
    yield running
    _stop(running)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The token in the environment, a known login name, wide output, outside a project."""
    monkeypatch.setenv(commands.TOKEN_ENV, TOKEN)
    monkeypatch.setenv("LOGNAME", USER)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("MLCYCLE_PROJECT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def url(server: RunningServer) -> Iterator[str]:
    """The server's URL; after the test, whatever rollout is still active is rolled back."""
    yield server.url
    try:
        AdminClient(server.url, TOKEN, "cleanup").post("/admin/rollout/rollback", {})
    except RolloutClientError as exc:
        assert exc.status == 404, exc


def run_ok(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    """``mlcycle rollout ARGS --url URL``; its standard output."""
    capsys.readouterr()
    main(["rollout", *args, "--url", url])
    return capsys.readouterr().out


def run_json(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> dict[str, Any]:
    """The same with ``--json``: the server's document."""
    doc = json.loads(run_ok(capsys, url, *args, "--json"))
    assert isinstance(doc, dict)
    return doc


def run_fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``mlcycle ARGS``, which must exit with status 2; its standard error."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def _wait_for_analysis(capsys: pytest.CaptureFixture[str], url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        rollout = run_json(capsys, url, "status")["rollout"]
        if rollout["last_analysis"] is not None:
            return dict(rollout)
        assert time.monotonic() < deadline, "the server never analysed the rollout"
        time.sleep(0.2)


def test_a_canary_is_started_followed_paused_resumed_and_rolled_back(
    capsys: pytest.CaptureFixture[str], url: str, bundles: tuple[Path, Path]
) -> None:
    challenger = bundles[1]
    out = run_ok(
        capsys, url, "start", "--mode", "canary", "--challenger", str(challenger),
        "--steps", "10,50,100", "--bake-requests", "1000", "--reason", "first try",
    )  # fmt: skip
    assert "started: canary, canary phase, step 1/3, challenger at 10% of traffic" in out
    rollout = _wait_for_analysis(capsys, url)
    rid = rollout["id"]
    assert rollout["challenger_bundle"] == str(challenger)
    assert rollout["started_by"] == USER and rollout["steps"] == [10.0, 50.0, 100.0]
    assert rollout["settings"]["bake"]["min_requests"] == 1000

    status = run_ok(capsys, url, "status")
    assert f"rollout {rid} of 'breast_cancer'" in status
    assert "running" in status and "1/3 (10%, 50%, 100%)" in status
    assert "challenger 10%, champion 90%" in status
    assert str(challenger) in status and str(bundles[0]) in status
    assert "last analysis: hold" in status
    assert "error_rate" in status and "latency" in status and "wait" in status
    assert f"by {USER}" in status

    assert f"rollout {rid} paused" in run_ok(capsys, url, "pause", "--reason", "reading logs")
    paused = run_ok(capsys, url, "status")
    assert "paused" in paused and "running" not in paused
    assert f"rollout {rid} resumed" in run_ok(capsys, url, "resume", "--reason", "logs fine")
    out = run_ok(capsys, url, "rollback", "--reason", "not convinced")
    assert f"rollout {rid} rolled back" in out and "challenger at 0%" in out
    assert "rolled_back" in run_ok(capsys, url, "status")

    events = run_json(capsys, url, "history", "--rollout", str(rid))["events"]
    seen = [(e["action"], e["who"], e["reason"]) for e in events]
    assert seen == [
        ("rollback", USER, "not convinced"),
        ("resume", USER, "logs fine"),
        ("pause", USER, "reading logs"),
        ("start", USER, "first try"),
    ]
    table = run_ok(capsys, url, "history", "--rollout", str(rid))
    for text in ("rollback", "resume", "pause", "start", "not convinced", "reading logs",
                 "first try", "10% -> 0%", "canary/paused", "canary/running",
                 "canary/rolled_back", USER):  # fmt: skip
        assert text in table, text
    lines = [line for line in table.splitlines() if "not convinced" in line]
    assert len(lines) == 1 and lines[0].index("rollback") < lines[0].index("not convinced")
    assert len(run_json(capsys, url, "history", "--limit", "2")["events"]) == 2


def test_a_manual_rollout_is_promoted_by_hand(
    capsys: pytest.CaptureFixture[str], url: str, bundles: tuple[Path, Path]
) -> None:
    doc = run_json(
        capsys, url, "start", "--mode", "canary", "--challenger", str(bundles[1]),
        "--version", "7", "--manual", "--key", "header:X-User", "--reason", "by hand",
    )  # fmt: skip
    rollout = doc["rollout"]
    assert rollout["challenger_version"] == "7" and rollout["state"] == "running"
    assert rollout["settings"]["auto"] is False
    assert rollout["settings"]["key"] == "header:X-User"
    assert "manual (promote or roll back by hand)" in run_ok(capsys, url, "status")

    out = run_ok(capsys, url, "promote", "--reason", "looks good")
    assert f"rollout {rollout['id']} promoted" in out and "challenger 7" in out
    status = run_ok(capsys, url, "status")
    assert "promoted" in status and "challenger 100%, champion 0%" in status
    assert "no analysis yet" in status
    latest = run_json(capsys, url, "history", "--limit", "1")["events"][0]
    assert (latest["action"], latest["who"], latest["reason"]) == ("promote", USER, "looks good")


def test_shadow_settings_and_a_registry_reference_reach_the_server(
    capsys: pytest.CaptureFixture[str],
    url: str,
    bundles: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str | None] = []

    def resolve(ref: str | None, overrides: list[str] | None = None) -> tuple[Any, ...]:
        asked.append(ref)
        return bundles[1], "breast_cancer", "12", ServeSettings()

    monkeypatch.setattr("mlcycle.serve_commands.resolve_model", resolve)
    doc = run_json(
        capsys, url, "start", "--mode", "shadow", "--challenger", "@challenger",
        "--shadow-percent", "50", "--after-shadow", "stop", "--bake-requests", "5",
        "--bake-seconds", "2",
    )  # fmt: skip
    assert asked == ["@challenger"]
    rollout = doc["rollout"]
    assert rollout["challenger_version"] == "12"
    assert rollout["challenger_bundle"] == str(bundles[1])
    assert (rollout["phase"], rollout["weight"], rollout["shadow_percent"]) == ("shadow", 0, 50)
    settings = rollout["settings"]
    assert settings["after_shadow"] == "stop" and settings["auto"] is True
    assert settings["bake"] == {"min_requests": 5, "min_seconds": 2.0}
    status = run_ok(capsys, url, "status")
    assert "50% of requests mirrored to the challenger" in status and "shadow" in status


def test_server_errors_are_shown_with_their_message(
    capsys: pytest.CaptureFixture[str], url: str, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-bundle"
    err = run_fails(
        capsys, "rollout", "start", "--mode", "canary", "--challenger", str(missing), "--url", url
    )
    assert err.startswith("error: the challenger cannot be loaded")
    assert str(missing) in err and "(HTTP 422)" in err

    err = run_fails(capsys, "rollout", "pause", "--url", url)
    assert "no rollout of 'breast_cancer' is running" in err and "(HTTP 404)" in err

    run_ok(capsys, url, "start", "--mode", "bluegreen", "--challenger", str(bundles[1]))
    err = run_fails(
        capsys, "rollout", "start", "--mode", "canary", "--challenger", str(bundles[1]),
        "--url", url,
    )  # fmt: skip
    assert "already running" in err and "(HTTP 409)" in err
    err = run_fails(capsys, "rollout", "resume", "--url", url)
    assert "cannot resume" in err and "(HTTP 409)" in err


def test_invalid_settings_are_refused_by_the_server(
    capsys: pytest.CaptureFixture[str], url: str, bundles: tuple[Path, Path]
) -> None:
    err = run_fails(
        capsys, "rollout", "start", "--mode", "canary", "--challenger", str(bundles[1]),
        "--steps", "50,20", "--url", url,
    )  # fmt: skip
    assert "steps must be increasing" in err and "(HTTP 422)" in err


def test_a_wrong_token_is_refused(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(commands.TOKEN_ENV, "not-the-token")
    err = run_fails(capsys, "rollout", "status", "--url", url)
    assert err == (
        f"error: the server at {url} refused the admin token: set MLCYCLE_ADMIN_TOKEN to the "
        "server's token or pass --token-file"
    )


def test_a_token_file_wins_over_the_environment(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(commands.TOKEN_ENV, "not-the-token")
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    doc = run_json(capsys, url, "status", "--token-file", str(token_file))
    assert doc["arms"]["champion"]["name"] == "breast_cancer"

    token_file.write_text("  \n")
    err = run_fails(capsys, "rollout", "status", "--url", url, "--token-file", str(token_file))
    assert "is empty" in err
    err = run_fails(
        capsys, "rollout", "status", "--url", url, "--token-file", str(tmp_path / "nope")
    )
    assert "cannot be read" in err


def test_no_token_fails_before_any_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(commands.TOKEN_ENV)
    # Nothing listens there: the error must be about the token, not the server.
    err = run_fails(capsys, "rollout", "status", "--url", f"http://127.0.0.1:{free_port()}")
    assert err.startswith("error: no admin token: set MLCYCLE_ADMIN_TOKEN")
    assert "--token-file" in err


def test_no_server_at_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = run_fails(capsys, "rollout", "history", "--url", url)
    assert err.startswith(f"error: no mlcycle server at {url}")
    assert "start one with `mlcycle serve` or pass --url" in err
    err = run_fails(capsys, "rollout", "status", "--url", "localhost:8080")
    assert "is not a server URL" in err


def test_argument_mistakes_are_caught_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_fails(capsys, "rollout", "start", "--mode", "linear", "--challenger", "x")
    assert "invalid choice: 'linear'" in err
    err = run_fails(capsys, "rollout", "start", "--mode", "canary", "--challenger", "x",
                    "--steps", "five")  # fmt: skip
    assert "not a comma-separated list of percentages" in err
    err = run_fails(capsys, "rollout", "start", "--mode", "canary", "--challenger", "x",
                    "--key", "cookie:id")  # fmt: skip
    assert "not header:NAME or feature:NAME" in err
    assert "invalid choice: 'launch'" in run_fails(capsys, "rollout", "launch")


def test_a_server_without_a_token_says_how_to_enable_the_admin_api(
    capsys: pytest.CaptureFixture[str], bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    running = _start_server(tmp_path, bundles[0], None)
    try:
        err = run_fails(capsys, "rollout", "status", "--url", running.url)
    finally:
        _stop(running)
    assert f"the admin API of the server at {running.url} is disabled" in err
    assert "restart it with MLCYCLE_ADMIN_TOKEN set" in err


def test_the_url_defaults_to_the_projects_host_and_port() -> None:
    assert commands.server_url(None) == "http://127.0.0.1:8080"
    assert commands.server_url(None, ServeSettings(host="0.0.0.0", port=9123)) == (
        "http://127.0.0.1:9123"
    )
    assert commands.server_url(None, ServeSettings(host="::", port=80)) == "http://[::1]:80"
    assert commands.server_url(None, ServeSettings(host="models", port=81)) == "http://models:81"
    assert commands.server_url("http://x:1/", ServeSettings(port=2)) == "http://x:1"


def test_a_bundle_folder_is_sent_as_an_absolute_path(tmp_path: Path) -> None:
    assert commands.challenger_of("bundles/v2") == (str(tmp_path / "bundles" / "v2"), "")
    assert commands.challenger_of("bundles/v2", "4") == (str(tmp_path / "bundles" / "v2"), "4")


def test_status_without_a_rollout_names_the_champion(capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"rollout": None, "arms": {"champion": {"name": "m", "version": "3"}}}
    Console(width=200).print(commands.render_status(doc))
    out = capsys.readouterr().out
    assert "no rollout yet on this server (model 'm', champion version 3)" in out


def test_completion_offers_the_rollout_actions() -> None:
    assert candidates("mlcycle rollout p") == ["pause", "promote"]
    assert set(candidates("mlcycle rollout ")) == set(commands.ACTIONS)
    assert "rollout" in candidates("mlcycle ro")
