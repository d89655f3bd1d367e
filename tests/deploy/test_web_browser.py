"""The site of ``mlcycle deploy web`` in a real browser, against a real ``mlcycle serve``.

The system Chromium (apt ``chromium``) is driven through Playwright for Python; Playwright's
own browser download is never used. Without Chromium the tests are skipped, and say so.
Sites for the mixed and the cancer bundle are built (onnxruntime-web from the npm registry)
and served by a real HTTP server on 127.0.0.1. The form and the CSV batch mode must give
the probabilities a real ``mlcycle serve`` answers for the same rows (within 1e-5), numbers
must be read as the server reads them, and bad CSV must show an error on the page and leave
it working. The page must fetch nothing but the site's own files and log no error.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle.bundle import Bundle, BundleInputError
from mlcycle.deploy.web import VENDOR_DIR, build_web_site
from tests._bundles import build_bundle
from tests._chromium import browser, needs_chromium
from tests.serve.conftest import (
    RunningServer,
    cancer_bundle,
    mixed_bundle,
    start_server,
)

__all__ = ["browser", "cancer_bundle", "mixed_bundle", "start_server"]

MIXED_ROWS: list[dict[str, Any]] = [
    {"x0": 0.5, "x1": -1.0, "x2": None, "color": "red", "size": "S"},
    {"x0": None, "x1": 2.0, "x2": 0.1, "color": None, "size": "L"},
    {"x0": 1.5, "x1": 0.0, "x2": -0.3, "color": "blue", "size": None},
    {"x0": None, "x1": None, "x2": None, "color": None, "size": None},
    {"x0": -1.2, "x1": 0.4, "x2": 0.9, "color": "green", "size": "M"},
]
CATEGORICAL = {"color", "size"}
# A plain, visible skip (pytest -ra lists it) before any bundle is built or server started.
pytestmark = needs_chromium("the web site browser tests")


class _StaticFiles(http.server.SimpleHTTPRequestHandler):
    """A static file server that names the types module scripts and wasm need."""

    extensions_map = {
        ".html": "text/html",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".css": "text/css",
    }

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request on stderr."""


@pytest.fixture(scope="module")
def tickets_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text model: TF-IDF of a message + channel + account age (logistic regression)."""
    return build_bundle("tickets", tmp_path_factory.mktemp("tickets") / "bundle")


@pytest.fixture(scope="module")
def site_url(
    mixed_bundle: Path,
    cancer_bundle: Path,
    tickets_bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The sites (``/mixed/``, ``/cancer/``, ``/tickets/``) served on 127.0.0.1; the base URL."""
    root = tmp_path_factory.mktemp("sites")
    build_web_site(mixed_bundle, root / "mixed")
    build_web_site(cancer_bundle, root / "cancer", ort_dist=root / "mixed" / VENDOR_DIR)
    build_web_site(tickets_bundle, root / "tickets", ort_dist=root / "mixed" / VENDOR_DIR)
    handler = functools.partial(_StaticFiles, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@dataclass
class Site:
    """An open page of a site, with what went wrong on it."""

    page: Any
    url: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def run(self, button: str) -> list[dict[str, Any]]:
        """Click ``button``; the new ``window.mlcycleResults``."""
        self.page.evaluate("window.mlcycleResults = null")
        self.page.get_by_role("button", name=button, exact=True).click()
        self.page.wait_for_function("window.mlcycleResults !== null")
        return list(self.page.evaluate("window.mlcycleResults"))

    def batch(self, text: str) -> list[dict[str, Any]]:
        """Paste ``text`` as the CSV and predict all rows."""
        self.page.get_by_label("CSV: a header row").fill(text)
        return self.run("Predict all")

    def check_clean(self) -> None:
        """No page or console error, and nothing fetched from beyond the site."""
        assert self.errors == []
        assert self.foreign == []


@pytest.fixture()
def open_site(browser: Any, site_url: str) -> Iterator[Callable[[str], Site]]:
    """Factory: ``open_site("mixed")`` -> the page, once the model is loaded."""
    pages: list[Any] = []

    def open_(name: str) -> Site:
        from playwright.sync_api import expect

        page = browser.new_page()
        pages.append(page)
        site = Site(page, f"{site_url}/{name}/")
        page.on("pageerror", lambda exc: site.errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: site.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on(
            "request",
            lambda req: None if req.url.startswith(site_url) else site.foreign.append(req.url),
        )
        # Generous for a loaded CI machine; loading takes about a second on a quiet one.
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        page.goto(site.url)
        expect(page.locator("#status")).to_have_attribute("data-state", "ready")
        return site

    yield open_
    for page in pages:
        page.close()


def served(server: RunningServer, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``/predict`` of the real server: one {label, probabilities: {class: p}} per row."""
    request = urllib.request.Request(
        f"{server.url}/predict",
        data=json.dumps({"records": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.loads(response.read())["predictions"])


def assert_same(
    page: list[dict[str, Any]], server: list[dict[str, Any]], classes: list[str]
) -> None:
    """Same labels, and probabilities within 1e-5, row by row."""
    assert [r["label"] for r in page] == [r["label"] for r in server]
    got = np.array([r["probabilities"] for r in page])
    want = np.array([[r["probabilities"][c] for c in classes] for r in server])
    assert got.shape == want.shape == (len(server), len(classes))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: "" if r[c] is None else r[c] for c in columns} for r in rows)
    return out.getvalue()


def test_the_form_and_a_csv_predict_as_the_server_does(
    open_site: Callable[[str], Site],
    start_server: Callable[..., RunningServer],
    mixed_bundle: Path,
) -> None:
    server = start_server(mixed_bundle)
    classes = Bundle.load(mixed_bundle).classes
    want = served(server, MIXED_ROWS)
    site = open_site("mixed")
    page = site.page

    got = []
    for row in MIXED_ROWS:
        for name, value in row.items():
            field_ = page.get_by_label(name, exact=True)
            if name in CATEGORICAL:
                field_.select_option("" if value is None else value)
            else:
                field_.fill("" if value is None else repr(value))
        (result,) = site.run("Predict")
        got.append(result)
        assert page.locator("#label").inner_text() == result["label"]
        shown = page.locator("#row-probabilities td").evaluate_all(
            "cells => cells.map(c => Number(c.dataset.value))"
        )
        assert shown == result["probabilities"]
        assert json.loads(page.locator("#results-json").text_content() or "") == [result]
    assert_same(got, want, classes)
    assert page.get_by_role("option", name="(missing)").count() == len(CATEGORICAL)

    # The same rows as CSV: other column order, an extra column, empty cells for missing.
    columns = ["size", "x2", "note", "color", "x0", "x1"]
    rows = [{**r, "note": f'row "{i}", checked'} for i, r in enumerate(MIXED_ROWS)]
    assert_same(site.batch(to_csv(rows, columns)), want, classes)
    table = page.locator("#batch-results tbody tr")
    assert table.count() == len(MIXED_ROWS)
    assert table.nth(3).locator("td").first.inner_text() == want[3]["label"]

    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    downloaded = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [d["label"] for d in downloaded] == [w["label"] for w in want]
    assert [d["row"] for d in downloaded] == [str(i + 1) for i in range(len(want))]
    from_file = [
        {"label": d["label"], "probabilities": [float(d[f"p_{c}"]) for c in classes]}
        for d in downloaded
    ]
    assert_same(from_file, want, classes)
    site.check_clean()


def test_a_text_model_predicts_in_the_browser_as_the_server_does(
    open_site: Callable[[str], Site],
    start_server: Callable[..., RunningServer],
    tickets_bundle: Path,
) -> None:
    rows: list[dict[str, Any]] = [
        {"message": "Refund, refund! my invoice:wrong", "channel": "email", "account_age_days": 3},
        {"message": "\u00c9CRAN noir; the app crashes", "channel": "chat", "account_age_days": 40},
        {"message": "parcel parcel late, tracking?", "channel": "phone", "account_age_days": 1e3},
        {"message": "x", "channel": "email", "account_age_days": 7},
    ]
    server = start_server(tickets_bundle)
    classes = Bundle.load(tickets_bundle).classes
    want = served(server, rows)
    site = open_site("tickets")
    page = site.page
    assert page.locator("textarea#feature-2, textarea[data-feature=message]").count() == 1
    got = []
    for row in rows:
        page.get_by_label("message", exact=True).fill(row["message"])
        page.get_by_label("channel", exact=True).select_option(row["channel"])
        page.get_by_label("account_age_days", exact=True).fill(str(row["account_age_days"]))
        (result,) = site.run("Predict")
        got.append(result)
    assert_same(got, want, classes)
    columns = ["message", "channel", "account_age_days"]
    assert_same(site.batch(to_csv(rows, columns)), want, classes)
    site.check_clean()


def test_a_csv_of_cancer_rows_predicts_every_row_as_the_server_does(
    open_site: Callable[[str], Site],
    start_server: Callable[..., RunningServer],
    cancer_bundle: Path,
) -> None:
    bundle = Bundle.load(cancer_bundle)
    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    assert names == bundle.feature_names_used  # names with spaces, e.g. "mean radius"
    picked = data.data[::29][:20]
    rows = [dict(zip(names, map(float, values), strict=True)) for values in picked]
    server = start_server(cancer_bundle)
    want = served(server, rows)
    assert len({w["label"] for w in want}) == 2  # both classes among the rows

    site = open_site("cancer")
    columns = [*reversed(names), "id"]
    text = to_csv([{**r, "id": f"patient {i}"} for i, r in enumerate(rows)], columns)
    assert_same(site.batch(text), want, bundle.classes)
    assert site.page.locator("#batch-results tbody tr").count() == len(rows)
    site.check_clean()


def test_bad_csv_shows_an_error_naming_it_and_the_page_keeps_working(
    open_site: Callable[[str], Site], cancer_bundle: Path
) -> None:
    from playwright.sync_api import expect

    names = Bundle.load(cancer_bundle).feature_names_used
    rows = [dict(zip(names, map(float, v), strict=True)) for v in load_breast_cancer().data[:3]]
    good = to_csv(rows, names)
    site = open_site("cancer")
    alert = site.page.get_by_role("alert")
    first = site.batch(good)

    bad = to_csv([rows[0], {**rows[1], "mean radius": "twelve"}, rows[2]], names)
    site.page.get_by_label("CSV: a header row").fill(bad)
    site.page.get_by_role("button", name="Predict all").click()
    expect(alert).to_contain_text("row 2, column 'mean radius' has the value \"twelve\"")
    expect(alert).to_contain_text("which is not a number")

    site.page.get_by_label("CSV: a header row").fill(to_csv(rows, names[:-1]))
    site.page.get_by_role("button", name="Predict all").click()
    expect(alert).to_contain_text(f"the CSV has no column '{names[-1]}'")

    site.page.get_by_label("CSV: a header row").fill(good + "1,2\n")
    site.page.get_by_role("button", name="Predict all").click()
    expect(alert).to_contain_text("row 4 has 2 field(s) but the header has 30")

    assert site.batch(good) == first  # still working, and the error is gone
    expect(alert).to_be_hidden()
    expect(site.page.locator("#status")).to_have_attribute("data-state", "ready")
    site.check_clean()


# Texts as Python's float() and numpy read them, including what float() refuses.
NUMBER_TEXTS = [
    "1.5", " 1.5 ", "\t2\n", "-.5e-3", "+1.5", ".5", "1.", "1_000", "1_0.0_1e1_0",
    "nan", "NaN", "-nan", "inf", "-Infinity", "+inf", "INFINITY", "1e400", "1e39", "1e-50",
    "3.4028235e38", "0.1", "16777217", "\u00a01\u3000", "\u0085-2\u2028",
    "\uff11\uff12", "\u0661.\u0662", "\U0001d7cf\U0001d7d0",
    "  ", "abc", "1,5", "0x10", "5e", "1_", "_1", "1__0", "1_.5", ".", "infinit",
    "nan(1)", "\ufeff1", "\x1c1", "1 2", "--1", "1e5.5", "e1", "+-1",
]  # fmt: skip


def test_numbers_are_read_as_the_server_reads_them(
    open_site: Callable[[str], Site], mixed_bundle: Path
) -> None:
    bundle = Bundle.load(mixed_bundle)

    def server(text: str) -> np.float32 | None:
        columns: dict[str, list[Any]] = {f: [None] for f in bundle.feature_names_used}
        try:
            with np.errstate(over="ignore"):
                return np.float32(
                    bundle.inputs_from_columns({**columns, "x0": [text]})["numeric"][0, 0]
                )
        except BundleInputError:
            return None

    site = open_site("mixed")
    page = site.page.evaluate(
        """async (texts) => {
            const { parseNumber } = await import('./app.js');
            return texts.map((t) => {
                const x = parseNumber(t);
                return x === null ? null : String(x);
            });
        }""",
        NUMBER_TEXTS,
    )
    with np.errstate(over="ignore"):
        got = [None if x is None else np.float32(float(x)) for x in page]
    want = [server(text) for text in NUMBER_TEXTS]
    mismatched = [
        (text, g, w)
        for text, g, w in zip(NUMBER_TEXTS, got, want, strict=True)
        if (g is None) != (w is None)
        or (g is not None and w is not None and not np.array_equal(g, w, equal_nan=True))
    ]
    assert mismatched == []
    assert sum(w is None for w in want) == 19  # the texts float() refuses
    site.check_clean()
