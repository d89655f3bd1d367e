"""The system Chromium for the browser tests, driven through Playwright for Python.

Playwright's own browser download is never used: the tests launch the apt package's
``/usr/bin/chromium`` headless. A module that needs it sets
``pytestmark = needs_chromium("...")`` (a plain, visible skip when it is absent) and
imports the module-scoped :func:`browser` fixture.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Chromium must not reach out on its own: this network is closed, and refused connections
# from background services only add noise.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


CHROMIUM = _chromium()


def needs_chromium(what: str) -> pytest.MarkDecorator:
    """Skip, saying so, when Chromium is not installed; ``what`` names the tests."""
    return pytest.mark.skipif(
        CHROMIUM is None,
        reason=f"Chromium is not installed (apt-get install chromium); {what} need it",
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless system Chromium, shared by the module."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
