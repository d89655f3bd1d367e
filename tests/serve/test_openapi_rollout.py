"""The OpenAPI document of a rollout-capable server: the admin routes behind ``bearerAuth``,
the ``X-Model-Arm`` headers and the answering arm in ``/predict``'s ``model``.

The document is checked with openapi-spec-validator, against the routes the app really
has, and by schemathesis against a real server holding an admin token.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis import checks as schema_checks
from starlette.routing import Route

from mlcycle.rollout.controller import ACTIONS
from mlcycle.rollout.router import ARMS
from mlcycle.serve.admin import admin_routes
from mlcycle.serve.openapi import ADMIN_ACTIONS
from tests.serve.conftest import RunningServer
from tests.serve.test_app import MIXED_ROWS

TOKEN = "openapi-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREDICTION_POSTS = (
    "/predict",
    "/invocations",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
)


def _admin_operations() -> set[tuple[str, str]]:
    """(method, path) of every route :func:`admin_routes` makes."""

    def fake(path: str, handler: Any, method: str) -> Route:
        return Route(path, handler, methods=[method])

    return {
        (method, route.path)
        for route in admin_routes(fake)
        for method in (route.methods or set()) - {"HEAD"}
    }


@pytest.fixture(scope="module")
def admin_server(
    mixed_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A mixed-bundle server with an admin token and its own store."""
    import subprocess
    import sys

    from tests.conftest import free_port
    from tests.serve.conftest import _stop, _wait_ready

    folder = tmp_path_factory.mktemp("openapi-admin")
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(mixed_bundle),
             "--port", str(port), "--monitor-store", str(folder / "monitor.db")],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder,
            env={**os.environ, "MLCYCLE_ADMIN_TOKEN": TOKEN}, start_new_session=True,
        )  # fmt: skip
    server = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    _wait_ready(server)
    yield server
    _stop(server)


@pytest.fixture(scope="module")
def document(admin_server: RunningServer) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{admin_server.url}/openapi.json", timeout=30).json()
    return doc


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_admin_route_is_documented_behind_bearer_auth(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/admin/")
        for method in item
    }
    assert documented == _admin_operations()
    assert ("POST", "/admin/feedback") in documented
    for method, path in documented:
        op = document["paths"][path][method.lower()]
        assert op["security"] == [{"bearerAuth": []}], (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    # Nothing else asks for the token.
    for path, item in document["paths"].items():
        if not path.startswith("/admin/"):
            assert all("security" not in op for op in item.values()), path


def test_admin_route_parameters_and_bodies(document: dict[str, Any]) -> None:
    paths = document["paths"]
    action = paths["/admin/rollout/{action}"]["post"]["parameters"][0]
    assert action["in"] == "path" and action["schema"]["enum"] == list(ADMIN_ACTIONS)
    assert tuple(ADMIN_ACTIONS) == tuple(ACTIONS)  # the controller's actions
    start = document["components"]["schemas"]["RolloutStart"]
    assert set(start["required"]) == {"mode", "challenger"}
    assert start["properties"]["mode"]["enum"] == ["shadow", "bluegreen", "canary"]
    assert "201" in paths["/admin/rollout"]["post"]["responses"]
    history = {p["name"]: p for p in paths["/admin/rollout/history"]["get"]["parameters"]}
    assert history["limit"]["schema"]["type"] == history["rollout"]["schema"]["type"] == "integer"
    feedback = paths["/admin/feedback"]["post"]
    assert list(feedback["requestBody"]["content"]) == ["text/csv"]
    assert {p["name"] for p in feedback["parameters"]} == {"overwrite", "skip_invalid"}
    assert {"400", "404", "409", "413", "415", "422"} <= set(feedback["responses"])
    result = feedback["responses"]["200"]["content"]["application/json"]["schema"]
    assert (
        result
        == paths["/feedback"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        == {"$ref": "#/components/schemas/FeedbackResult"}
    )


def test_prediction_routes_document_the_arm_headers(document: dict[str, Any]) -> None:
    for path in PREDICTION_POSTS:
        op = document["paths"][path]["post"]
        header = next(p for p in op["parameters"] if p["in"] == "header")
        assert header["name"] == "X-Model-Arm" and header["required"] is False
        assert header["schema"]["enum"] == list(ARMS) == ["champion", "challenger"]
        answer = op["responses"]["200"]["headers"]
        assert answer["X-Model-Arm"]["schema"]["enum"] == list(ARMS)
        assert {"X-Model-Version", "X-Request-ID"} <= set(answer)
        assert "409" in op["responses"]  # the challenger forced without a rollout
    model = document["paths"]["/predict"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["properties"]["model"]
    assert model["required"] == ["name", "version", "arm"]
    assert model["properties"]["arm"]["enum"] == ["champion", "challenger"]


def test_the_answers_carry_what_the_document_says(admin_server: RunningServer) -> None:
    url = admin_server.url
    answer = httpx.post(f"{url}/predict", json={"records": MIXED_ROWS}, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["model"]["arm"] == answer.headers["x-model-arm"] == "champion"
    forced = httpx.post(
        f"{url}/predict",
        json={"records": MIXED_ROWS},
        headers={"X-Model-Arm": "challenger"},
        timeout=30,
    )
    assert forced.status_code == 409 and forced.json()["code"] == "no_challenger"
    denied = httpx.post(f"{url}/admin/feedback", content=b"request_id,label\n", timeout=30)
    assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
    history = f"{url}/admin/rollout/history"
    none = httpx.get(history, params={"rollout": "12345"}, headers=AUTH, timeout=30)
    assert none.status_code == 200 and none.json() == {"events": []}
    for rollout in ("0", str(2**63), "-1", "x"):  # 2**63 once overflowed SQLite: a 500
        bad = httpx.get(history, params={"rollout": rollout}, headers=AUTH, timeout=30)
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_query", rollout


_SETTINGS = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CHECKS = [
    schema_checks.not_a_server_error,
    schema_checks.status_code_conformance,
    schema_checks.content_type_conformance,
    schema_checks.response_schema_conformance,
]


def _fuzz(operation: Any, headers: dict[str, str] | None) -> None:
    """Schema-valid requests; ``headers`` (the token) replace the generated ones."""
    strategy = operation.as_strategy(GenerationMode.POSITIVE)
    with requests.Session() as session:

        @hypothesis.given(case=strategy)
        @_SETTINGS
        def run(case: Any) -> None:
            case.call_and_validate(session=session, headers=headers, checks=CHECKS)

        run()


ADMIN_OPERATIONS = sorted(_admin_operations())


@pytest.mark.parametrize(
    ("method", "path"), ADMIN_OPERATIONS, ids=[f"{m} {p}" for m, p in ADMIN_OPERATIONS]
)
@pytest.mark.parametrize("auth", ["token", "none"])
def test_admin_answers_conform_to_the_document(
    admin_server: RunningServer, method: str, path: str, auth: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{admin_server.url}/openapi.json")
    # Without the token, schemathesis makes up bearer tokens: every answer is a 401.
    _fuzz(schema[path][method], AUTH if auth == "token" else None)
    assert admin_server.process.poll() is None
    assert "unexpected error" not in admin_server.output()


def test_the_admin_api_disabled_answers_403_as_documented(
    start_server: Callable[..., RunningServer],
    mixed_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("MLCYCLE_ADMIN_TOKEN", raising=False)
    server = start_server(mixed_bundle, "--monitor-store", str(tmp_path / "m.db"))
    for method, path in ADMIN_OPERATIONS:
        concrete = path.replace("{action}", "pause")
        answer = httpx.request(method, f"{server.url}{concrete}", headers=AUTH, timeout=30)
        assert answer.status_code == 403 and answer.json()["code"] == "admin_disabled"
