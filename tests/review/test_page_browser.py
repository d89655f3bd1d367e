"""The review page in a real browser, against a real ``mlcycle serve``.

The system Chromium (apt ``chromium``) is driven through Playwright for Python; Playwright's
own browser download is never used. Without Chromium the test is skipped, and says so.
A server in assist mode with a token queues five rows; a reviewer opens ``/review``, gives
the token and her name, and works the queue with the keyboard. Then the JSON API is asked
what was recorded.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests._chromium import browser, needs_chromium
from tests.serve.conftest import RunningServer, mixed_bundle, start_server

__all__ = ["browser", "mixed_bundle", "start_server"]

TOKEN = "review-page-token"
ROWS = [
    {"x0": 0.5, "x1": -1.0, "x2": None, "color": "red", "size": "S"},
    {"x0": None, "x1": 2.0, "x2": 0.1, "color": None, "size": "L"},
    {"x0": 1.5, "x1": 0.0, "x2": -0.3, "color": "blue", "size": None},
    {"x0": -1.2, "x1": 0.4, "x2": 0.9, "color": "green", "size": "M"},
    {"x0": 0.1, "x1": 1.1, "x2": -2.0, "color": "red", "size": "L"},
]
# A plain, visible skip (pytest -ra lists it) before any bundle is built or server started.
pytestmark = needs_chromium("the review page's browser tests")


def api(server: RunningServer, path: str, doc: Any = None) -> tuple[int, Any]:
    """Call the server with the token; (status, decoded JSON or None)."""
    request = urllib.request.Request(
        server.url + path,
        data=None if doc is None else json.dumps(doc).encode(),
        method="GET" if doc is None else "POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()
            return exc.code, json.loads(body) if body else None


def actions(item: dict[str, Any]) -> set[tuple[str, str, str]]:
    """The (action, who, note) of an item's events."""
    return {(e["action"], e["who"], e["note"] or "") for e in item["events"]}


def test_a_reviewer_works_the_queue_with_the_keyboard(
    browser: Any,
    start_server: Callable[..., RunningServer],
    mixed_bundle: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    server = start_server(
        mixed_bundle,
        "--monitor-store",
        str(tmp_path / "monitor.db"),
        "serve.automation.mode=assist",
        env={"MLCYCLE_ADMIN_TOKEN": TOKEN},
    )
    status, _ = api(server, "/predict", {"records": ROWS})
    assert status in (200, 202)
    status, listing = api(server, "/review/api/items?state=pending")
    assert status == 200 and listing["counts"]["pending"] == len(ROWS), listing
    queued = {item["review_id"] for item in listing["items"]}

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Generous for a loaded CI machine; on a quiet one each step takes well under a second.
    page.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)
    page.goto(f"{server.url}/review")

    # Once: the name (localStorage), then the token the API asks for (401).
    page.get_by_label("Your name").fill("alice")
    page.keyboard.press("Enter")
    page.get_by_label("Reviewer token", exact=True).fill(TOKEN)
    page.keyboard.press("Enter")
    current = page.locator("#item-id")
    expect(page.locator("#count-pending")).to_have_text(str(len(ROWS)))
    expect(page.get_by_text("The model suggests")).to_be_visible()  # assist mode shows it

    def shown() -> str:
        expect(current).not_to_be_empty()
        text = str(current.inner_text())
        assert text in queued
        return text

    def press_and_move(key: str) -> str:
        before = shown()
        page.keyboard.press(key)
        expect(current).not_to_have_text(before)
        return before

    labels = api(server, f"/review/api/items/{shown()}")[1]["classes"]
    buttons = page.locator("#classes button").evaluate_all("bs => bs.map(b => b.dataset.label)")
    assert buttons == labels and len(labels) == 3
    first = press_and_move("1")
    skipped = press_and_move("s")
    page.locator("#note").fill("colour looks wrong")
    page.keyboard.press("Escape")  # leaves the note field, so that "e" is a shortcut
    escalated = press_and_move("e")

    # Someone else labels the item on screen meanwhile: the 409 shows, the item stays.
    taken = shown()
    bob = {"action": "label", "label": labels[0], "reviewer": "bob"}
    assert api(server, f"/review/api/items/{taken}", bob)[0] == 200
    page.keyboard.press("2")
    expect(page.get_by_role("alert")).to_contain_text("HTTP 409")
    expect(page.get_by_role("alert")).to_contain_text("bob")
    expect(current).to_have_text(taken)

    press_and_move("n")  # on to the next pending item, past the one bob took
    last = shown()
    page.keyboard.press("3")
    # Only the skipped item is left; the page offers it back, then the queue is empty.
    expect(page.get_by_role("heading", name="Nothing new to review")).to_be_visible()
    page.get_by_role("button", name="Review the 1 skipped item").click()
    expect(current).to_have_text(skipped)
    page.keyboard.press("2")
    expect(page.get_by_role("heading", name="The queue is empty")).to_be_visible()
    expect(page.locator("#count-pending")).to_have_text("0")

    # Shadow mode hides the model's answer; the name and the token are remembered.
    assert api(server, "/admin/automation", {"mode": "shadow"})[0] == 200
    assert api(server, "/predict", {"records": ROWS[:1]})[0] in (200, 202)
    page.reload()
    expect(page.locator("#mode-note")).to_contain_text("the model's answer is hidden")
    expect(page.locator("#suggestion")).to_be_hidden()
    expect(page.locator("#reviewer-name")).to_have_text("alice")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("2")
    expect(page.get_by_role("heading", name="The queue is empty")).to_be_visible()
    assert errors == []

    def item(review_id: str) -> dict[str, Any]:
        status, doc = api(server, f"/review/api/items/{review_id}")
        assert status == 200, doc
        return dict(doc)

    done = {rid: item(rid) for rid in queued}
    assert (done[first]["label"], done[first]["decided_by"]) == (labels[0], "alice")
    assert (done[last]["label"], done[last]["decided_by"]) == (labels[2], "alice")
    assert (done[taken]["label"], done[taken]["decided_by"]) == (labels[0], "bob")
    assert (done[skipped]["label"], done[skipped]["skips"]) == (labels[1], 1)
    assert done[escalated]["state"] == "escalated"
    assert ("escalate", "alice", "colour looks wrong") in actions(done[escalated])
    assert ("skip", "alice", "") in actions(done[skipped])
    status, listing = api(server, "/review/api/items?state=labelled")
    counts = {k: listing["counts"][k] for k in ("pending", "escalated", "labelled")}
    assert counts == {"pending": 0, "escalated": 1, "labelled": 5}
    shadow = [i for i in listing["items"] if i["review_id"] not in queued]
    assert [(i["mode"], i["label"], i["decided_by"]) for i in shadow] == [
        ("shadow", labels[1], "alice")
    ]
    page.close()
