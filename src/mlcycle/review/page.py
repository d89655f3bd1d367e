"""The reviewer's web page, served by ``mlcycle serve`` at ``GET /review``.

One self-contained HTML document (``review.html``, package data beside this module): inline
CSS and plain JavaScript, no external asset, no build step. It works the review queue
through the JSON API next to it (``/review/api/...``): it asks once for the reviewer's
name (kept in ``localStorage``) and, when the API answers 401, for a token (kept in
``sessionStorage`` and sent as ``Authorization: Bearer``). See ``docs/review.md``.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["review_page"]


@cache
def review_page() -> bytes:
    """The review page's HTML (UTF-8), read once from the package and then cached.

    Returns
    -------
    bytes
        A complete ``text/html; charset=utf-8`` document that loads nothing else.

    Examples
    --------
    >>> page = review_page()
    >>> page.startswith(b"<!doctype html>"), b"<script src" in page, page is review_page()
    (True, False, True)
    """
    return files("mlcycle.review").joinpath("review.html").read_bytes()
