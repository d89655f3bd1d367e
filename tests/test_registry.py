"""MLflow model registry: register, aliases, promote/rollback history, listing, bundles."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from mlcycle.config.project import Project
from mlcycle.config.structured import TrackingConfig
from mlcycle.exceptions import RegistryError
from mlcycle.registry import (
    EVENT_TAG_PREFIX,
    Event,
    ModelRef,
    history,
    list_models,
    list_versions,
    lookup_version,
    parse_model_ref,
    promote,
    register_bundle,
    render_history_table,
    render_versions_table,
    resolve_bundle,
    rollback,
)
from mlcycle.registry.events import _next_key
from mlcycle.tracking import (
    TrackingContext,
    configure_tracking,
    log_artifacts,
    log_metrics,
    start_run,
)

NAME = "wine"

pytestmark = pytest.mark.usefixtures("isolated_mlflow_globals")

# -- fixtures -------------------------------------------------------------------------------


def _context(tmp_path: Path, template_db: Path, **cfg: object) -> TrackingContext:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(template_db, root / "mlflow.db")
    tracking = TrackingConfig(experiment="exp", registered_model=NAME, **cfg)  # type: ignore[arg-type]
    return configure_tracking(tracking, Project(root))


@pytest.fixture()
def ctx(tmp_path: Path, template_db: Path) -> TrackingContext:
    """A tracking context on a fresh ``sqlite:///{tmp_path}/proj/mlflow.db`` store."""
    return _context(tmp_path, template_db)


Register = Callable[..., str]


@pytest.fixture()
def register(ctx: TrackingContext, tmp_path: Path) -> Register:
    """Factory: train-like run that logs a bundle and registers it; returns the version."""
    counter = iter(range(1, 1000))

    def make(f1: float = 0.9, *, context: TrackingContext = ctx, name: str = NAME) -> str:
        n = next(counter)
        folder = tmp_path / f"bundle-{n}"
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"onnx")
        (folder / "signature.json").write_text(json.dumps({"made": n}))
        with start_run(context, git_commit=f"commit{n}", data_md5=f"md5{n}") as run:
            log_metrics({"f1_macro": f1, "accuracy": f1 - 0.05}, "test")
            uri = log_artifacts(folder, "bundle")
        return register_bundle(context, name, run.info.run_id, uri)

    return make


def _champion(ctx: TrackingContext, name: str = NAME) -> str | None:
    return lookup_version(ctx, ModelRef(name, alias="champion"))


def _made(folder: Path) -> int:
    return int(json.loads((folder / "signature.json").read_text())["made"])


# -- register -------------------------------------------------------------------------------


def test_register_creates_the_model_and_sets_the_challenger_alias(
    ctx: TrackingContext, register: Register
) -> None:
    assert register() == "1"
    model = ctx.client.get_registered_model(NAME)
    assert {k: str(v) for k, v in model.aliases.items()} == {"challenger": "1"}
    mv = ctx.client.get_model_version(NAME, "1")
    assert mv.status == "READY"
    assert str(mv.source).endswith("/artifacts/bundle")
    assert mv.tags["mlcycle.data_md5"] == "md51"
    assert mv.tags["mlcycle.git_commit"] == "commit1"
    [event] = history(ctx, NAME)
    assert (event.action, event.from_version, event.to_version) == ("register", None, "1")


def test_a_second_registration_moves_the_challenger(
    ctx: TrackingContext, register: Register
) -> None:
    register()
    assert register() == "2"
    assert lookup_version(ctx, "@challenger", default_name=NAME) == "2"
    assert history(ctx, NAME)[-1].from_version == "1"


# -- promote / rollback ---------------------------------------------------------------------


def test_promote_moves_champion_and_removes_challenger_from_that_version(
    ctx: TrackingContext, register: Register
) -> None:
    register()
    event = promote(ctx, NAME, "1", reason="beats baseline", user="alice")
    assert _champion(ctx) == "1"
    assert lookup_version(ctx, "@challenger", default_name=NAME) is None
    assert (event.action, event.from_version, event.to_version) == ("promote", None, "1")
    assert (event.user, event.reason) == ("alice", "beats baseline")
    assert datetime.fromisoformat(event.time).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_promote_then_rollback_sequence_is_recorded_in_history(
    ctx: TrackingContext, register: Register
) -> None:
    register()
    register()
    promote(ctx, NAME, 1)
    promote(ctx, NAME, "v2", reason="better f1")
    back = rollback(ctx, NAME, reason="latency regression")
    assert _champion(ctx) == "1"
    assert (back.from_version, back.to_version) == ("2", "1")
    with pytest.raises(RegistryError, match="nothing to roll back to: version 1 is the first"):
        rollback(ctx, NAME)
    assert _champion(ctx) == "1"
    events = history(ctx, NAME)
    assert [(e.action, e.from_version, e.to_version) for e in events] == [
        ("register", None, "1"),
        ("register", "1", "2"),
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert [e.key for e in events] == sorted(e.key for e in events)
    assert all(e.key.startswith(EVENT_TAG_PREFIX) for e in events)
    assert events[-1].reason == "latency regression"


def test_rollback_twice_walks_back_two_promotions(ctx: TrackingContext, register: Register) -> None:
    for _ in range(3):
        register()
    for v in ("1", "2", "3"):
        promote(ctx, NAME, v)
    assert rollback(ctx, NAME).to_version == "2"
    assert rollback(ctx, NAME).to_version == "1"
    assert _champion(ctx) == "1"


def test_rollback_after_a_new_promotion_returns_to_the_champion_before_it(
    ctx: TrackingContext, register: Register
) -> None:
    for _ in range(3):
        register()
    promote(ctx, NAME, "1")
    promote(ctx, NAME, "2")
    rollback(ctx, NAME)  # -> 1
    promote(ctx, NAME, "3")
    assert rollback(ctx, NAME).to_version == "1"


def test_rollback_from_a_champion_set_outside_mlcycle_goes_to_the_last_recorded_one(
    ctx: TrackingContext, register: Register
) -> None:
    for _ in range(3):
        register()
    promote(ctx, NAME, "1")
    ctx.client.set_registered_model_alias(NAME, "champion", "3")  # e.g. in the MLflow UI
    assert rollback(ctx, NAME).to_version == "1"


def test_promote_unknown_version_is_an_error_naming_existing_versions(
    ctx: TrackingContext, register: Register
) -> None:
    register()
    register()
    with pytest.raises(RegistryError, match=r"no version 7 \(versions: 1, 2\).*mlcycle models"):
        promote(ctx, NAME, "7")
    with pytest.raises(RegistryError, match="must be a number"):
        promote(ctx, NAME, "latest")


def test_promoting_the_champion_again_is_an_error(ctx: TrackingContext, register: Register) -> None:
    register()
    promote(ctx, NAME, "1")
    with pytest.raises(RegistryError, match="already is the champion"):
        promote(ctx, NAME, "1")


def test_unknown_model_is_a_registry_error_listing_models(
    ctx: TrackingContext, register: Register
) -> None:
    register()
    with pytest.raises(RegistryError, match=r"no registered model 'nope'.*registered models: wine"):
        promote(ctx, "nope", "1")
    with pytest.raises(RegistryError, match="no registered model"):
        history(ctx, "nope")


def test_rollback_without_a_champion_is_an_error(ctx: TrackingContext, register: Register) -> None:
    register()
    with pytest.raises(RegistryError, match="has no champion"):
        rollback(ctx, NAME)


def test_events_default_to_the_login_name(
    ctx: TrackingContext, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "bob")
    register()
    assert promote(ctx, NAME, "1").user == "bob"


def test_event_keys_stay_ordered_within_a_millisecond_and_against_clock_skew() -> None:
    def ev(key: str) -> Event:
        return Event("promote", None, "1", "u", "", "", key=key)

    first = _next_key([], 1000)
    assert first == f"{EVENT_TAG_PREFIX}000000000001000-000"
    same_ms = _next_key([ev(first)], 1000)
    assert same_ms == f"{EVENT_TAG_PREFIX}000000000001000-001"
    skewed = _next_key([ev(first), ev(same_ms)], 900)
    assert first < same_ms < skewed


# -- listing --------------------------------------------------------------------------------


def test_list_versions_shows_aliases_metrics_and_lineage_newest_first(
    ctx: TrackingContext, register: Register
) -> None:
    register(0.8)
    register(0.9)
    promote(ctx, NAME, "1")
    v2, v1 = list_versions(ctx, NAME)
    assert (v2.version, v1.version) == ("2", "1")
    assert v1.aliases == ["champion"] and v2.aliases == ["challenger"]
    assert v2.metrics == pytest.approx({"test.f1_macro": 0.9, "test.accuracy": 0.85})
    assert (v2.data_md5, v2.git_commit) == ("md52", "commit2")
    assert v2.run_id and v2.source.endswith("/bundle")
    assert list_models(ctx) == [NAME]

    console = Console(record=True, width=200, color_system=None)
    console.print(render_versions_table([v2, v1], name=NAME, title="registered model 'wine'"))
    console.print(render_history_table(history(ctx, NAME), name=NAME))
    text = console.export_text()
    assert "registered model 'wine'" in text
    assert "champion" in text and "f1_macro" in text and "0.9000" in text and "md52" in text
    assert "promote" in text


def test_an_empty_registry_lists_no_versions_and_renders_a_friendly_message(
    ctx: TrackingContext,
) -> None:
    assert list_versions(ctx, NAME) == []
    assert list_models(ctx) == []
    console = Console(record=True, width=200, color_system=None)
    console.print(render_versions_table([], name=NAME))
    assert "No registered versions of model 'wine' yet" in console.export_text()


# -- references and bundles -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("models:/wine@champion", ModelRef("wine", alias="champion")),
        ("models:/wine/3", ModelRef("wine", version="3")),
        ("@challenger", ModelRef("wine", alias="challenger")),
        ("3", ModelRef("wine", version="3")),
        ("v3", ModelRef("wine", version="3")),
    ],
)
def test_parse_model_ref_reads_every_form(ref: str, expected: ModelRef) -> None:
    assert parse_model_ref(ref, default_name="wine") == expected


@pytest.mark.parametrize("ref", ["models:/", "models:/wine/x", "wine", "@"])
def test_parse_model_ref_rejects_other_forms(ref: str) -> None:
    with pytest.raises(RegistryError):
        parse_model_ref(ref, default_name="wine")


def test_an_alias_without_a_model_name_is_an_error() -> None:
    with pytest.raises(RegistryError, match=r"needs a model name.*models:/NAME@champion"):
        parse_model_ref("@champion")


@pytest.mark.parametrize(
    "ref", ["models:/wine@champion", "models:/wine/2", "@champion", "2", "v2", "local"]
)
def test_resolve_bundle_downloads_version_2_for_each_reference_form(
    ctx: TrackingContext, register: Register, tmp_path: Path, ref: str
) -> None:
    register()
    register()
    promote(ctx, NAME, "2")
    if ref == "local":
        ref = str(tmp_path / "bundle-2")
    folder = resolve_bundle(ctx, ref)
    assert _made(folder) == 2
    assert (folder / "model.onnx").read_bytes() == b"onnx"
    if not ref.startswith(str(tmp_path)):
        assert folder.is_relative_to(ctx.cache_dir)


def test_resolve_bundle_reuses_the_cache_and_downloads_into_dst(
    ctx: TrackingContext, register: Register, tmp_path: Path
) -> None:
    register()
    first = resolve_bundle(ctx, "1")
    (first / "marker").write_text("cached")
    assert resolve_bundle(ctx, "models:/wine/1") == first
    assert (first / "marker").exists()
    dst = resolve_bundle(ctx, "@challenger", tmp_path / "dst")
    assert dst == tmp_path / "dst" and _made(dst) == 1
    with pytest.raises(RegistryError, match="not empty"):
        resolve_bundle(ctx, "1", tmp_path / "dst")


def test_resolve_bundle_errors_name_the_fix(ctx: TrackingContext, register: Register) -> None:
    register()
    with pytest.raises(RegistryError, match=r"no alias @champion \(aliases: @challenger -> v1\)"):
        resolve_bundle(ctx, "@champion")
    with pytest.raises(RegistryError, match=r"no version 9 \(versions: 1\).*mlcycle models"):
        resolve_bundle(ctx, "models:/wine/9")
    with pytest.raises(RegistryError, match="no registered model 'other'"):
        resolve_bundle(ctx, "models:/other@champion")
    with pytest.raises(RegistryError, match="neither a bundle folder nor a model reference"):
        resolve_bundle(ctx, "no/such/folder")


def test_lookup_version_is_none_when_there_is_no_champion_yet(
    ctx: TrackingContext, register: Register
) -> None:
    assert lookup_version(ctx, "@champion", default_name=NAME) is None  # no model at all
    register()
    assert lookup_version(ctx, "@champion", default_name=NAME) is None
    assert lookup_version(ctx, "models:/wine/1") == "1"
    assert lookup_version(ctx, "models:/wine/5") is None


def test_bundle_registered_with_s3_artifacts_resolves_from_moto(
    tmp_path: Path, template_db: Path, moto_endpoint: str, s3_bucket: str
) -> None:
    s3ctx = _context(
        tmp_path,
        template_db,
        artifact_location=f"s3://{s3_bucket}/mlflow",
        s3_endpoint_url=moto_endpoint,
    )
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "signature.json").write_text(json.dumps({"made": 7}))
    with start_run(s3ctx) as run:
        uri = log_artifacts(folder, "bundle")
    assert uri.startswith(f"s3://{s3_bucket}/")
    version = register_bundle(s3ctx, NAME, run.info.run_id, uri)
    promote(s3ctx, NAME, version)
    assert _made(resolve_bundle(s3ctx, "@champion")) == 7
