"""The pieces every self-contained HTML report of mlcycle shares: style, numbers, tables.

The monitoring report, the data check and the error analysis each write one HTML file
with everything inlined (no scripts, no external files). They share the base style sheet,
how a value is shown, how a table is built and how a PNG is embedded, so the reports look
and read alike.

Examples
--------
>>> fmt(0.123456), fmt(None), fmt(True), fmt(3), fmt("<b>")
('0.1235', '-', 'yes', '3', '&lt;b&gt;')
>>> table(["name", "value"], [["a", "1"]]).split("<tbody>")[1]
'<tr><td class="l">a</td><td class="">1</td></tr></tbody></table>'
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["BASE_CSS", "fmt", "png", "table"]

#: The style every report starts from; each adds its own classes after it.
BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.note{color:#666}
"""


def fmt(v: Any, spec: str = ".4g") -> str:
    """A value as a report shows it: ``-`` for none, yes/no, numbers by ``spec``, text escaped.

    Parameters
    ----------
    v
        The value.
    spec
        Format of floats (``format(v, spec)``).

    Returns
    -------
    str
        HTML-safe text.
    """
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format(v, spec)
    return html.escape(str(v))


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    left: int = 1,
    *,
    max_rows: int | None = None,
    more: str = "...",
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned, the rest right-aligned.

    Parameters
    ----------
    headers
        Column titles (escaped here).
    rows
        Cells, already HTML (escape text with :func:`fmt`).
    left
        How many leading columns hold text.
    max_rows
        Show at most this many rows, then one row saying ``more``; ``None``: all.
    more
        The text of that last row.

    Returns
    -------
    str
        The ``<table>`` element.
    """
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = []
    for k, row in enumerate(rows):
        if max_rows is not None and k == max_rows:
            body.append(
                f'<tr><td class="l note" colspan="{len(headers)}">{html.escape(more)}</td></tr>'
            )
            break
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png(path: Path, alt: str) -> str:
    """An ``<img>`` holding the PNG file at ``path`` inline (base64), so the page stands alone.

    Parameters
    ----------
    path
        A PNG file.
    alt
        Its text alternative (escaped here).

    Returns
    -------
    str
        The ``<img>`` element.
    """
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
