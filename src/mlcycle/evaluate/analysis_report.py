"""The error analysis for people: a rich table, a YAML snippet of slices, an HTML page.

The input is the ``analysis.json`` document (:func:`mlcycle.evaluate.analysis.analyze`
plus the model, data and split the command adds). The HTML page is self-contained: inline
CSS and the two plots (potential gain per slice, the confusion matrix) as embedded PNGs.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.evaluate.plots import _confusion, _figure, _save
from mlcycle.html_page import BASE_CSS, png, table

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["per_class_table", "render_html", "render_table", "save_plots", "slice_snippet"]

#: Slices in the potential-gain plot (the top ranked).
_PLOT_SLICES = 15


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.4f}"


def _table_rows(doc: Mapping[str, Any], top: int | None) -> list[dict[str, Any]]:
    slices = list(doc["slices"])
    ranked = [s for s in slices if s["status"] == "ranked"]
    shown = ranked if top is None else ranked[:top]
    # declared slices are always shown (after the top ones); unranked automatic ones never
    rest = [s for s in slices if s["source"] != "auto" and not any(s is t for t in shown)]
    return [*shown, *rest]


def render_table(doc: Mapping[str, Any], *, top: int | None = 20) -> Table:
    """The slices as a rich table, ranked by potential gain.

    Parameters
    ----------
    doc
        The analysis document.
    top
        Ranked slices shown (``None``: all); the declared slices not among them follow
        (those not ranked, as too small, empty or undefined, dimmed).

    Returns
    -------
    rich.table.Table
        Print it with ``rich.console.Console().print(table)``.
    """
    table_mod = require("rich.table", "train")
    text_mod = require("rich.text", "train")
    metric = str(doc["metric"])
    model = doc.get("model") or {}
    what = f"v{model['version']}" if model.get("version") else model.get("ref") or "model"
    title = (
        f"Error analysis of {what} on the {doc.get('split', '')} split "
        f"({doc['rows']} rows), ranked by potential gain = gap x share"
    )
    box = require("rich.box", "train")
    table: Table = table_mod.Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, caption_justify="left"
    )
    headers = (
        "#", "slice", "rows", "share", metric, "accuracy", "baseline", "gap", "potential gain",
    )  # fmt: skip
    for h in headers:
        table.add_column(h, justify="left" if h == "slice" else "right")
    overall = doc["overall"]
    table.add_row(
        "",
        text_mod.Text("all rows", style="bold"),
        str(overall["rows"]),
        "1.00",
        _fmt(overall["score"]),
        _fmt(overall["accuracy"]),
        _fmt(overall["baseline"]) + _source_tag(overall["baseline_source"]),
        _signed(overall["gap"]),
        "",
        end_section=True,
    )
    for s in _table_rows(doc, top):
        ranked = s["status"] == "ranked"
        name = text_mod.Text(s["name"] + ("" if s["source"] == "auto" else " *"))
        if s.get("similar_to"):
            name.append(f"  ~ {s['similar_to']}", style="dim")
        if not ranked:
            name.append(f"  ({s['note']})", style="dim")
        gap = text_mod.Text(_signed(s["gap"]))
        if s["gap"] is not None:
            gap.stylize("red" if s["gap"] > 0 else "green")
        cells = [
            str(s["rank"] or "-"),
            name,
            str(s["rows"]),
            _fmt(s["share"], ".2f"),
            _fmt(s["score"]),
            _fmt(s["accuracy"]),
            _fmt(s["baseline"]) + _source_tag(s["baseline_source"]),
            gap,
            _signed(s["potential_gain"]),
        ]
        table.add_row(*cells, style=None if ranked else "dim")
    table.caption = (
        "* declared in analyze.slices; baseline: h = human-level value, m = older model, "
        "s = the slice's own, avg = the model on all rows; gap > 0: below the baseline"
    )
    return table


def _source_tag(source: str) -> str:
    if source == "slice":
        return " s"
    if source.startswith("value:"):
        return " h"
    if source.startswith("model:"):
        return " m"
    return " avg"


def per_class_table(doc: Mapping[str, Any]) -> Table:
    """Precision, recall, F1 and support of each class, with the confusion matrix."""
    table_mod = require("rich.table", "train")
    labels = list(doc["confusion"]["labels"])
    matrix = doc["confusion"]["matrix"]
    box = require("rich.box", "train")
    table: Table = table_mod.Table(
        title="Per class (rows: true class; columns: predicted as)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("class")
    for h in ("precision", "recall", "F1", "support", *(f"-> {c}" for c in labels)):
        table.add_column(h, justify="right")
    for i, c in enumerate(labels):
        pc = doc["per_class"][c]
        table.add_row(
            c,
            _fmt(pc["precision"]),
            _fmt(pc["recall"]),
            _fmt(pc["f1"]),
            str(pc["support"]),
            *(str(v) for v in matrix[i]),
        )
    return table


def slice_snippet(doc: Mapping[str, Any], *, top: int = 5) -> str:
    """YAML to paste under ``conf/config.yaml``: the best-ranked automatic slices.

    Parameters
    ----------
    doc
        The analysis document; its ``suggested`` entries are the config forms of the
        automatic slices, in rank order.
    top
        How many to include.

    Returns
    -------
    str
        ``analyze:\\n  slices:\\n  - name: ...`` or ``""`` when there is none.

    Examples
    --------
    >>> doc = {"suggested": [{"name": "x < 3", "where": {"x": {"max": 3.0}}}]}
    >>> print(slice_snippet(doc), end="")
    analyze:
      slices:
      - name: x < 3
        where:
          x: {max: 3.0}
    """
    entries = list(doc.get("suggested", []))[:top]
    if not entries:
        return ""
    import yaml

    text: str = yaml.safe_dump(
        {"analyze": {"slices": entries}}, sort_keys=False, default_flow_style=None, width=100
    )
    return text


def save_plots(doc: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``potential_gain.png`` (top ranked slices) and ``confusion_matrix.png``.

    Parameters
    ----------
    doc
        The analysis document.
    out_dir
        Folder for the PNG files; created when missing.

    Returns
    -------
    dict
        ``potential_gain`` and ``confusion_matrix`` mapped to their files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [str(c) for c in doc["confusion"]["labels"]]
    cm = np.asarray(doc["confusion"]["matrix"], dtype=np.int64)
    return {
        "potential_gain": _gain_plot(doc, out_dir / "potential_gain.png"),
        "confusion_matrix": _confusion(cm, labels, out_dir / "confusion_matrix.png"),
    }


def _gain_plot(doc: Mapping[str, Any], path: Path) -> Path:
    ranked = [s for s in doc["slices"] if s["status"] == "ranked"][:_PLOT_SLICES]
    fig = _figure(8.0, 1.2 + 0.35 * max(len(ranked), 1))
    ax = fig.add_subplot(1, 1, 1)
    if ranked:
        names = [s["name"] for s in reversed(ranked)]
        gains = [float(s["potential_gain"]) for s in reversed(ranked)]
        colours = ["tab:red" if g > 0 else "tab:green" for g in gains]
        ax.barh(range(len(names)), gains, color=colours)
        ax.set_yticks(range(len(names)), labels=names, fontsize="small")
        ax.axvline(0.0, color="grey", linewidth=1)
    else:
        ax.text(0.5, 0.5, "no ranked slice", ha="center", va="center")
        ax.set_yticks([])
    ax.set_xlabel(f"potential gain of {doc['metric']} (gap x share)")
    ax.set_title("What to work on next")
    fig.tight_layout()
    saved: Path = _save(fig, path)
    return saved


_CSS = (
    BASE_CSS
    + """
.worse{color:#c44e52}.better{color:#2a7d2a}.dim{color:#888}
.warn{color:#a15c00}img{max-width:100%}pre{background:#f6f6f6;padding:.8em}
"""
)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 2) -> str:
    return table(headers, rows, left)


def _img(path: Path | None, alt: str) -> str:
    return "" if path is None else png(path, alt)


def render_html(doc: Mapping[str, Any], plots: Mapping[str, Path] | None = None) -> str:
    """The analysis as one self-contained HTML page.

    Parameters
    ----------
    doc
        The analysis document.
    plots
        From :func:`save_plots`; ``None`` draws them in a temporary folder.

    Returns
    -------
    str
        The HTML text (inline CSS, embedded PNGs, no script).
    """
    if plots is None:
        with tempfile.TemporaryDirectory(prefix="mlcycle-analysis-") as tmp:
            return render_html(doc, save_plots(doc, Path(tmp)))
    metric = html.escape(str(doc["metric"]))
    model = doc.get("model") or {}
    data = doc.get("data") or {}
    title = f"Error analysis: {model.get('name') or model.get('ref', 'model')}"
    if model.get("version"):
        title += f" v{model['version']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(str(data.get("name", "")))} '
        f"({html.escape(str(data.get('path', '')))}), {html.escape(str(doc.get('split', '')))} "
        f"split, {doc['rows']} rows; metric {metric}; ranked by potential gain = gap x share "
        "(gap &gt; 0: the model is below the baseline on the slice).</p>",
    ]
    for w in doc.get("warnings", []):
        parts.append(f'<p class="warn">warning: {html.escape(str(w))}</p>')
    headers = [
        "#", "slice", "where", "rows", "share", str(doc["metric"]), "accuracy", "baseline",
        "baseline from", "gap", "potential gain", "note",
    ]  # fmt: skip
    o = doc["overall"]
    rows = [
        [
            "",
            "<b>all rows</b>",
            "",
            str(o["rows"]),
            "1.0000",
            _cell(o["score"]),
            _cell(o["accuracy"]),
            _cell(o["baseline"]),
            html.escape(o["baseline_source"]),
            _cell(o["gap"]),
            "",
            "",
        ]
    ]
    for s in doc["slices"]:
        gap_cls = "" if s["gap"] is None else ("worse" if s["gap"] > 0 else "better")
        note = s["note"] + (f" similar to '{s['similar_to']}'" if s.get("similar_to") else "")
        rows.append(
            [
                str(s["rank"] or "-"),
                html.escape(s["name"]) + ("" if s["source"] == "auto" else " *"),
                html.escape(s["where"]),
                str(s["rows"]),
                _cell(s["share"]),
                _cell(s["score"]),
                _cell(s["accuracy"]),
                _cell(s["baseline"]),
                html.escape(s["baseline_source"]),
                f'<span class="{gap_cls}">{_cell(s["gap"])}</span>',
                _cell(s["potential_gain"]),
                f'<span class="note">{html.escape(note)}</span>',
            ]
        )
    parts += [
        "<h2>Slices</h2>",
        _html_table(headers, rows, left=3),
        '<p class="note">* declared in analyze.slices; the others were found automatically.</p>',
        _img(plots.get("potential_gain"), "potential gain per slice"),
        "<h2>Per class</h2>",
    ]
    labels = [str(c) for c in doc["confusion"]["labels"]]
    pc_rows = []
    for i, c in enumerate(labels):
        pc = doc["per_class"][c]
        pc_rows.append(
            [
                html.escape(c),
                _cell(pc["precision"]),
                _cell(pc["recall"]),
                _cell(pc["f1"]),
                str(pc["support"]),
                *(str(v) for v in doc["confusion"]["matrix"][i]),
            ]
        )
    parts += [
        _html_table(
            ["class", "precision", "recall", "F1", "support", *(f"pred. {c}" for c in labels)],
            pc_rows,
            left=1,
        ),
        _img(plots.get("confusion_matrix"), "confusion matrix"),
    ]
    if doc.get("notes"):
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{html.escape(str(n))}</li>" for n in doc["notes"]]
        parts.append("</ul>")
    snippet = slice_snippet(doc)
    if snippet:
        parts += [
            "<h2>Slices to declare</h2>",
            "<p>Paste under <code>conf/config.yaml</code> to track these slices (and let "
            "<code>train.augment.target_slices</code> target them):</p>",
            f"<pre>{html.escape(snippet)}</pre>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
