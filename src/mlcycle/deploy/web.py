"""A static web site that runs a bundle's model in the browser with onnxruntime-web.

The site needs no server code: any static host serves it, and the page fetches nothing
but the site's own files (no CDN). Its layout::

    index.html, app.js, style.css   the page (plain ES modules, no build step)
    model.onnx, signature.json      copied from the bundle
    site.json                       title, model name / version / digests, classes,
                                    features, onnxruntime-web version, build time
    README.txt                      how to serve it
    vendor/onnxruntime-web/         ort.wasm.min.mjs (the wasm-only ES module),
                                    ort-wasm-simd-threaded.mjs / .wasm, LICENSE.txt

onnxruntime-web is installed from the npm registry at build time (``npm install`` into
a temporary folder), or its ``dist/`` folder is given (``ort_dist``, for offline builds).
The page builds the model's inputs by the rules of
:meth:`mlcycle.bundle.Bundle.inputs_from_columns`, so it feeds the model the tensors the
server would; it runs on one thread unless the host makes the page cross-origin isolated.
The site is written to a temporary folder next to ``out`` and renamed at the end, so a
failed build leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlcycle import __version__
from mlcycle.bundle import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE, Bundle, image_shape
from mlcycle.exceptions import DeployError

__all__ = ["ORT_FILES", "ORT_WEB_VERSION", "VENDOR_DIR", "WebSite", "build_web_site"]

#: The onnxruntime-web version installed from the npm registry unless told otherwise.
ORT_WEB_VERSION = "1.30.0"
#: What the page loads from onnxruntime-web's ``dist/``: the wasm-only ES module and the
#: wasm runtime (its JS glue and binary) that module imports.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
#: Where the site keeps onnxruntime-web's files.
VENDOR_DIR = "vendor/onnxruntime-web"

_ASSETS = Path(__file__).with_name("web_assets")
_PAGE_FILES = ("index.html", "app.js", "style.css")
_NPM_TIMEOUT = 300.0
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")
_README = """\
{title}: a static site that runs the model in the browser with onnxruntime-web {ort}.

Serve this folder with any static web server, over http(s): the page does not work when
opened as a file (file://). For example:

    python -m http.server -d {folder} 8000 --bind 127.0.0.1

then open http://127.0.0.1:8000/. The server must send .mjs files as text/javascript and
.wasm files as application/wasm (Python's http.server, nginx and most hosts do). Nothing
is fetched from elsewhere, and the inputs never leave the browser. Threads are used only
when the host makes the page cross-origin isolated (COOP/COEP headers); one thread is
plenty for a model of this kind.

Files: index.html, app.js, style.css (the page), model.onnx and signature.json (from the
bundle), site.json (model, digests, versions, build time) and vendor/onnxruntime-web/.
Built by mlcycle {mlcycle} on {built}.
"""


@dataclass(frozen=True)
class WebSite:
    """A built site."""

    #: The site folder.
    out: Path
    #: Relative POSIX paths of the files written, sorted.
    files: list[str]
    #: The size of all files together.
    total_bytes: int
    #: The onnxruntime-web version the site loads.
    ort_version: str


def build_web_site(
    bundle: Path,
    out: Path,
    *,
    ort_version: str = ORT_WEB_VERSION,
    ort_dist: Path | None = None,
    title: str | None = None,
    model_name: str = "",
    model_version: str = "",
    force: bool = False,
    npm: str = "npm",
) -> WebSite:
    """Build a static site at ``out`` that predicts with ``bundle``'s model in the browser.

    Parameters
    ----------
    bundle
        The bundle folder; it is loaded and verified first, so a broken bundle fails
        before anything is written.
    out
        The site folder. It must not exist or be empty, unless ``force``.
    ort_version
        The onnxruntime-web version to install from the npm registry.
    ort_dist
        A folder holding onnxruntime-web's ``dist/`` files (:data:`ORT_FILES`), used
        instead of the npm registry; the version is read from ``ort.wasm.min.mjs``.
    title
        The page's title; default: the model's name.
    model_name
        The name shown on the page; default: the name in the bundle's signature.
    model_version
        The version shown on the page; default: the first 12 hex digits of the sha256 of
        ``MANIFEST.json``, as ``mlcycle serve`` reports it.
    force
        Replace an existing, non-empty ``out``.
    npm
        The npm command.

    Returns
    -------
    WebSite
        The folder, its files, their total size and the onnxruntime-web version.

    Raises
    ------
    BundleError
        The bundle is missing, incomplete or corrupted.
    DeployError
        ``out`` is not empty, onnxruntime-web could not be installed, or its dist folder
        lacks a file the page needs.

    Examples
    --------
    >>> site = build_web_site(Path("bundle"), Path("site"))  # doctest: +SKIP
    >>> site.files[:3]                                       # doctest: +SKIP
    ['README.txt', 'app.js', 'index.html']
    """
    loaded = Bundle.load(bundle)
    images = [str(s["features"][0]) for s in loaded.signature["inputs"] if image_shape(s)]
    if images:
        raise DeployError(
            f"the model in {loaded.path} takes the image feature {images[0]!r}; the web site "
            "has a form of numbers and text and cannot take images yet. Deploy it with "
            "`mlcycle deploy docker` or `mlcycle deploy lambda` (JSON images over HTTP)"
        )
    out = Path(out)
    _check_out(out, loaded.path, force)
    if ort_dist is None and not _VERSION.fullmatch(ort_version):
        raise DeployError(
            f"onnxruntime-web version {ort_version!r} is not a version such as "
            f"{ORT_WEB_VERSION}; pass --ort-version X.Y.Z"
        )
    with tempfile.TemporaryDirectory(prefix="mlcycle-ort-web-") as scratch:
        dist = Path(ort_dist) if ort_dist else _npm_install(npm, ort_version, Path(scratch))
        _check_dist(dist)
        # Every check passed: only now is anything written, into a folder renamed at the end.
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        try:
            ort_version = _copy_ort(dist, staging / VENDOR_DIR, ort_version)
            _write_site(loaded, staging, ort_version, title, model_name, model_version, out)
            files = sorted(
                p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()
            )
            total = sum((staging / f).stat().st_size for f in files)
            _swap(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return WebSite(out=out, files=files, total_bytes=total, ort_version=ort_version)


def _check_out(out: Path, bundle: Path, force: bool) -> None:
    if not out.exists() and not out.is_symlink():
        return
    if bundle.resolve().is_relative_to(out.resolve()):
        raise DeployError(f"the site folder {out} holds the bundle {bundle}; give another --out")
    if not force and (not out.is_dir() or any(out.iterdir())):
        raise DeployError(
            f"the site folder {out} already exists and is not empty; pass --force to "
            "replace it, or give another --out"
        )


def _npm_install(npm: str, version: str, prefix: Path) -> Path:
    """Install onnxruntime-web@version under ``prefix``; return its ``dist/`` folder."""
    spec = f"onnxruntime-web@{version}"
    step = f"installing {spec} from the npm registry"
    fixes = (
        "install Node.js and npm (e.g. apt-get install nodejs npm), or pass --ort-dist a "
        "folder holding onnxruntime-web's dist files"
    )
    exe = shutil.which(npm)
    if exe is None:
        raise DeployError(f"{step} failed: the command {npm!r} was not found. To fix: {fixes}")
    command = [exe, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-save",
               "--update-notifier=false", "--prefix", str(prefix), spec]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            cwd=prefix,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"{step} failed: npm did not finish within {_NPM_TIMEOUT:.0f} s. To fix: check "
            f"the network to the npm registry, or {fixes}"
        ) from None
    except OSError as exc:
        raise DeployError(
            f"{step} failed: {npm!r} could not run ({exc}). To fix: {fixes}"
        ) from None
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()[-8:]
        said = "\n  ".join(lines) or "(no output)"
        raise DeployError(
            f"{step} failed (npm exited with status {done.returncode}). npm said:\n  {said}\n"
            f"To fix: check the version and the network to the npm registry, or {fixes}"
        )
    return prefix / "node_modules" / "onnxruntime-web" / "dist"


def _check_dist(dist: Path) -> None:
    missing = [name for name in ORT_FILES if not (dist / name).is_file()]
    if missing:
        raise DeployError(
            f"the onnxruntime-web dist folder {dist} lacks {', '.join(missing)}; the page "
            f"needs {', '.join(ORT_FILES)} (onnxruntime-web {ORT_WEB_VERSION} has them)"
        )


def _copy_ort(dist: Path, dest: Path, version: str) -> str:
    """Copy :data:`ORT_FILES` and the license; return the version found in the files."""
    dest.mkdir(parents=True)
    for name in ORT_FILES:
        shutil.copyfile(dist / name, dest / name)
    with (dist / ORT_FILES[0]).open("rb") as fh:
        found = re.search(rb"ONNX Runtime Web v(\S+)", fh.read(512))
    licenses = [dist.parent / n for n in ("LICENSE", "LICENSE.txt", "LICENSE.md")]
    source = next((p for p in licenses if p.is_file()), _ASSETS / "onnxruntime-LICENSE.txt")
    shutil.copyfile(source, dest / "LICENSE.txt")
    return found.group(1).decode("ascii", "replace") if found else version


def _write_site(
    bundle: Bundle,
    site: Path,
    ort_version: str,
    title: str | None,
    model_name: str,
    model_version: str,
    out: Path,
) -> None:
    name = model_name or bundle.model_name
    title = title or name or "mlcycle model"
    manifest_sha = hashlib.sha256((bundle.path / MANIFEST_FILE).read_bytes()).hexdigest()
    built = datetime.now(UTC).replace(microsecond=0).isoformat()
    page = (_ASSETS / "index.html").read_text(encoding="utf-8")
    (site / "index.html").write_text(page.replace("__TITLE__", html.escape(title)), "utf-8")
    for asset in _PAGE_FILES[1:]:
        shutil.copyfile(_ASSETS / asset, site / asset)
    for name_ in (MODEL_FILE, SIGNATURE_FILE):
        shutil.copyfile(bundle.path / name_, site / name_)
    used = set(bundle.feature_names_used)
    doc: dict[str, Any] = {
        "format_version": 1,
        "title": title,
        "model": {
            "name": name,
            "version": model_version or manifest_sha[:12],
            "manifest_sha256": manifest_sha,
            "model_sha256": hashlib.sha256((site / MODEL_FILE).read_bytes()).hexdigest(),
        },
        "classes": bundle.classes,
        "features": [f for f in bundle.signature["features"] if f["name"] in used],
        "onnxruntime_web": {"version": ort_version, "path": f"{VENDOR_DIR}/"},
        "built_at": built,
        "built_by": f"mlcycle {__version__}",
    }
    (site / "site.json").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    readme = _README.format(
        title=title, ort=ort_version, folder=shlex.quote(str(out)), mlcycle=__version__, built=built
    )
    (site / "README.txt").write_text(readme, "utf-8")


def _swap(staging: Path, out: Path) -> None:
    """Put the finished site at ``out``, moving an old one aside first."""
    os.chmod(staging, 0o755)  # mkdtemp makes it private
    if not out.exists() and not out.is_symlink():
        staging.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent)) / "site"
    out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old.parent, ignore_errors=True)
