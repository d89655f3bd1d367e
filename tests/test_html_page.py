"""mlcycle.html_page: the shared pieces of the HTML reports."""

from __future__ import annotations

import base64
from pathlib import Path

from mlcycle.html_page import fmt, png, table


def test_a_long_table_stops_at_max_rows_with_a_row_saying_so() -> None:
    page = table(["a", "b"], ([str(i), str(i)] for i in range(10)), max_rows=3, more="<more>")
    assert page.count("<tr>") == 1 + 3 + 1
    assert 'colspan="2">&lt;more&gt;</td>' in page
    assert '<td class="l">2</td>' in page and '<td class="l">3</td>' not in page


def test_headers_are_escaped_and_only_the_first_columns_are_left_aligned() -> None:
    page = table(["<x>", "n", "m"], [["t", "1", "2"]], left=2)
    assert '<th class="l">&lt;x&gt;</th><th class="l">n</th><th class="">m</th>' in page


def test_numbers_and_text_are_shown_alike_in_every_report() -> None:
    assert [fmt(1.0 / 3), fmt(1.0 / 3, ".2f"), fmt(False), fmt(7), fmt(None)] == [
        "0.3333",
        "0.33",
        "no",
        "7",
        "-",
    ]
    assert fmt('a"&') == "a&quot;&amp;"


def test_png_is_inlined_so_the_page_stands_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(b"\x89PNG fake")
    tag = png(path, 'a "plot"')
    assert tag.startswith('<img alt="a &quot;plot&quot;" src="data:image/png;base64,')
    assert base64.b64decode(tag.split(",", 1)[1].rstrip('">')) == b"\x89PNG fake"
