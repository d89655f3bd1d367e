"""``build_web_site`` without a browser: the files of the site, ``site.json``, offline
builds from a dist folder, and every way a build fails without leaving a half-written site.

onnxruntime-web is really installed from the npm registry, once for the module (about
6 s); the other builds copy its files from that site (``ort_dist``), so they run offline.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlcycle.bundle import Bundle
from mlcycle.deploy.web import ORT_FILES, ORT_WEB_VERSION, VENDOR_DIR, WebSite, build_web_site
from mlcycle.exceptions import BundleError, DeployError
from tests._bundles import build_bundle

PAGE = ["README.txt", "app.js", "index.html", "model.onnx", "signature.json", "site.json"]
VENDOR = [f"{VENDOR_DIR}/{name}" for name in ("LICENSE.txt", *ORT_FILES)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed bundle: numeric and categorical features, three classes."""
    return build_bundle("mixed", tmp_path_factory.mktemp("mixed") / "bundle")


@pytest.fixture(scope="module")
def site(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> WebSite:
    """A site built with onnxruntime-web from the npm registry."""
    return build_web_site(bundle, tmp_path_factory.mktemp("web") / "site")


@pytest.fixture()
def dist(site: WebSite, tmp_path: Path) -> Path:
    """A copy of onnxruntime-web's files, as a dist folder for offline builds."""
    return Path(shutil.copytree(site.out / VENDOR_DIR, tmp_path / "dist"))


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` a build may have left (its staging folders start with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_site_holds_the_page_the_model_and_onnxruntime_web(site: WebSite, bundle: Path) -> None:
    assert site.files == sorted([*PAGE, "style.css", *VENDOR])
    on_disk = sorted(p.relative_to(site.out).as_posix() for p in site.out.rglob("*"))
    assert on_disk == sorted([*site.files, "vendor", VENDOR_DIR])
    assert site.total_bytes == sum((site.out / f).stat().st_size for f in site.files)
    assert site.ort_version == ORT_WEB_VERSION
    sizes = {f: (site.out / f).stat().st_size for f in site.files}
    # ort.wasm.min.mjs ~50 KB, the wasm runtime ~14 MB: the wasm-only build, nothing else.
    assert 20_000 < sizes[f"{VENDOR_DIR}/ort.wasm.min.mjs"] < 200_000
    assert 5_000_000 < sizes[f"{VENDOR_DIR}/ort-wasm-simd-threaded.wasm"] < 30_000_000
    assert site.total_bytes < 20_000_000
    for name in ("model.onnx", "signature.json"):
        assert (site.out / name).read_bytes() == (bundle / name).read_bytes()
    assert "MIT License" in (site.out / VENDOR_DIR / "LICENSE.txt").read_text()
    assert "python -m http.server -d" in (site.out / "README.txt").read_text()
    assert oct(site.out.stat().st_mode & 0o777) == oct(0o755)
    assert leftovers(site.out.parent) == []


def test_the_page_loads_onnxruntime_web_from_the_site_only(site: WebSite) -> None:
    page = (site.out / "index.html").read_text()
    app = (site.out / "app.js").read_text()
    assert "<title>mixed</title>" in page and "__TITLE__" not in page
    assert "from './vendor/onnxruntime-web/ort.wasm.min.mjs'" in app
    assert "executionProviders: ['wasm']" in app
    # The module imports the wasm runtime's glue by this name, from env.wasm.wasmPaths.
    ort = (site.out / VENDOR_DIR / "ort.wasm.min.mjs").read_text()
    assert "ort-wasm-simd-threaded.mjs" in ort
    for text in (page, app):
        assert "https://" not in text and "http://" not in text.replace("http://127.0.0.1", "")


def test_site_json_names_the_model_its_digests_and_features(site: WebSite, bundle: Path) -> None:
    doc = json.loads((site.out / "site.json").read_text())
    loaded = Bundle.load(bundle)
    manifest = hashlib.sha256((bundle / "MANIFEST.json").read_bytes()).hexdigest()
    assert doc["title"] == "mixed"
    assert doc["model"] == {
        "name": "mixed",
        "version": manifest[:12],
        "manifest_sha256": manifest,
        "model_sha256": hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest(),
    }
    assert doc["classes"] == loaded.classes == ["high", "low", "mid"]
    assert [f["name"] for f in doc["features"]] == ["x0", "color", "x1", "size", "x2"]
    assert doc["features"][1]["categories"] == ["blue", "green", "red"]
    assert doc["onnxruntime_web"] == {"version": ORT_WEB_VERSION, "path": f"{VENDOR_DIR}/"}
    built = datetime.fromisoformat(doc["built_at"])
    assert timedelta(0) <= datetime.now(UTC) - built < timedelta(hours=1)
    assert doc["built_by"].startswith("mlcycle ")


def test_a_dist_folder_builds_offline_with_the_given_title_and_names(
    bundle: Path, dist: Path, tmp_path: Path
) -> None:
    site = build_web_site(
        bundle,
        tmp_path / "site",
        ort_dist=dist,
        title="Colours & <sizes>",
        model_name="shop",
        model_version="7",
        npm="/nonexistent/npm",  # never called
    )
    assert site.ort_version == ORT_WEB_VERSION  # read from ort.wasm.min.mjs
    assert "<title>Colours &amp; &lt;sizes&gt;</title>" in (site.out / "index.html").read_text()
    doc = json.loads((site.out / "site.json").read_text())
    assert (doc["title"], doc["model"]["name"], doc["model"]["version"]) == (
        "Colours & <sizes>",
        "shop",
        "7",
    )
    for name in ORT_FILES:
        assert (site.out / VENDOR_DIR / name).read_bytes() == (dist / name).read_bytes()


def test_an_existing_non_empty_out_needs_force(bundle: Path, dist: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DeployError, match=r"already exists and is not empty; pass --force .*--out"):
        build_web_site(bundle, out, ort_dist=dist)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    site = build_web_site(bundle, out, ort_dist=dist, force=True)
    assert not (out / "notes.txt").exists() and "index.html" in site.files
    assert leftovers(tmp_path) == []


def test_an_empty_out_folder_is_used(bundle: Path, dist: Path, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    assert (build_web_site(bundle, tmp_path / "site", ort_dist=dist).out / "index.html").is_file()


def test_force_never_replaces_the_folder_holding_the_bundle(bundle: Path, dist: Path) -> None:
    with pytest.raises(DeployError, match="holds the bundle"):
        build_web_site(bundle, bundle.parent, ort_dist=dist, force=True)
    assert (bundle / "model.onnx").is_file()


def test_a_bundle_without_model_onnx_fails_before_anything_is_written(
    bundle: Path, tmp_path: Path
) -> None:
    broken = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    (broken / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"lacks model\.onnx"):
        build_web_site(broken, tmp_path / "out" / "site")
    assert not (tmp_path / "out").exists()


def test_a_dist_folder_without_the_wasm_file_is_named(
    bundle: Path, dist: Path, tmp_path: Path
) -> None:
    (dist / "ort-wasm-simd-threaded.wasm").unlink()
    with pytest.raises(DeployError, match=r"lacks ort-wasm-simd-threaded\.wasm"):
        build_web_site(bundle, tmp_path / "sites" / "site", ort_dist=dist)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"]  # not even "sites"


def test_without_npm_the_error_names_npm_and_the_ort_dist_fix(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError) as info:
        build_web_site(bundle, tmp_path / "sites" / "site", npm="/nonexistent/npm")
    message = str(info.value)
    assert f"installing onnxruntime-web@{ORT_WEB_VERSION} from the npm registry" in message
    assert "'/nonexistent/npm' was not found" in message
    assert "apt-get install nodejs npm" in message and "--ort-dist" in message
    assert list(tmp_path.iterdir()) == []


def test_a_failed_npm_install_shows_what_npm_said(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError) as info:
        build_web_site(bundle, tmp_path / "site", ort_version="999.0.0")
    message = str(info.value)
    assert "installing onnxruntime-web@999.0.0 from the npm registry failed" in message
    assert "npm said:" in message and "999.0.0" in message.split("npm said:")[1]
    assert "--ort-dist" in message
    assert list(tmp_path.iterdir()) == []


def test_a_build_failing_midway_keeps_the_old_site(
    bundle: Path, dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    build_web_site(bundle, out, ort_dist=dist)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    doomed = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    load = Bundle.load

    def load_then_lose_the_model(path: Path) -> Bundle:
        loaded = load(path)
        (doomed / "model.onnx").unlink()  # gone after the checks, before the copy
        return loaded

    monkeypatch.setattr(Bundle, "load", load_then_lose_the_model)
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        build_web_site(doomed, out, ort_dist=dist, force=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("version", ["latest", "1.30", "1.30.0 --global", "file:../x"])
def test_an_ort_version_must_be_a_version(bundle: Path, tmp_path: Path, version: str) -> None:
    with pytest.raises(DeployError, match=r"is not a version such as \d+\.\d+\.\d+"):
        build_web_site(bundle, tmp_path / "site", ort_version=version)
    assert list(tmp_path.iterdir()) == []
