"""Monitoring reports as one self-contained HTML file (the documents of :mod:`report`).

:func:`render_html` draws the plots with matplotlib (Agg, one
:class:`matplotlib.figure.Figure` per plot, no pyplot) as inline SVG, with inline CSS: the
file opens offline, with no script and no external resource.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlcycle._optional import require
from mlcycle.html_page import BASE_CSS, fmt, table

__all__ = ["render_html"]

_MAX_METRIC_PLOTS = 12
_REF, _CUR, _BAD = "#4c72b0", "#dd8452", "#c44e52"  # reference, current, drifted


_CSS = (
    BASE_CSS
    + """
.drift{color:#c44e52;font-weight:bold}.ok{color:#2a7d2a}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{margin:0}
figcaption{font-size:.85em;text-align:center}
svg{max-width:100%;height:auto}
"""
)
#: A number as the report shows it (also used by the tests to match the JSON).
_fmt = fmt
_table = table


class _Svg:
    """Figures rendered to inline SVG, with ids made unique across the page."""

    def __init__(self) -> None:
        self.count = 0
        self._mpl = require("matplotlib", "train")
        self._figure = require("matplotlib.figure", "train")
        require("matplotlib.backends.backend_svg", "train")

    def figure(self, width: float, height: float) -> Any:
        fig = self._figure.Figure(figsize=(width, height), dpi=100)
        fig.subplots_adjust(left=0.15, right=0.97, top=0.88, bottom=0.22)
        return fig

    def render(self, fig: Any) -> str:
        self.count += 1
        buf = io.StringIO()
        with self._mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mlcycle"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        fig.clear()
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
        text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
        prefix = f"f{self.count}-"
        text = re.sub(r'\bid="', f'id="{prefix}', text)
        text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
        return text.replace("<svg ", '<svg role="img" ', 1)


def render_html(doc: Mapping[str, Any]) -> str:
    """The document as one self-contained HTML page: inline CSS, inline SVG plots, no JS.

    Parameters
    ----------
    doc
        A report document (:func:`drift_document` or :func:`store_document`).

    Returns
    -------
    str
        The HTML text.
    """
    svg = _Svg()
    title = html.escape(str(doc.get("title", "Report")))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="note">generated {_fmt(doc.get("generated_at"))} by mlcycle</p>',
    ]
    if doc.get("kind") == "monitor":
        parts.append(_monitor_html(doc, svg))
    elif doc.get("kind") == "drift":
        parts.append(
            f"<p>reference <code>{_fmt(doc.get('reference'))}</code>, current "
            f"<code>{_fmt(doc.get('current'))}</code></p>"
        )
    if doc.get("drift"):
        parts.append(_drift_html(doc["drift"], svg))
    elif doc.get("drift_note"):
        parts.append(f'<h2>Data drift</h2><p class="note">{_fmt(doc["drift_note"])}</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _drift_html(section: Mapping[str, Any], svg: _Svg) -> str:
    ds = section["dataset"]
    features = section["features"]
    n_drifted = len(ds["drifted_features"])
    verdict = (
        '<span class="drift">DRIFT</span>' if ds["drifted"] else '<span class="ok">no drift</span>'
    )
    out = [
        "<h2>Data drift</h2>",
        f"<p>Compared with <code>{_fmt(section['reference'])}</code>: {verdict} -- "
        f"{n_drifted} of {len(features)} features drifted (share {_fmt(ds['share'])}, "
        f"threshold {_fmt(ds['threshold'])}).</p>",
    ]
    if features:
        out.append(_scores_svg(features, svg))
    rows = [
        [
            _fmt(f["feature"]),
            _fmt(f["kind"]),
            _fmt(f["test"]),
            _fmt(f["statistic"]),
            _fmt(f["p_value"]),
            _fmt(f["threshold"]),
            _fmt(f["psi"]),
            '<span class="drift">yes</span>' if f["drifted"] else "no",
            _fmt(f["n_reference"]),
            _fmt(f["n_current"]),
        ]
        for f in features
    ]
    headers = ["feature", "kind", "test", "statistic", "p-value", "threshold", "PSI", "drifted",
               "n reference", "n current"]  # fmt: skip
    out.append(_table(headers, rows, left=3))
    if section.get("skipped"):
        skipped = [[_fmt(k), _fmt(v)] for k, v in section["skipped"].items()]
        out.append("<p>Not tested:</p>" + _table(["feature", "why"], skipped, left=2))
    out.append('<h2>Reference vs current, per feature</h2><div class="grid">')
    for f in features:
        hist = section["histograms"].get(f["feature"])
        if hist is None:
            continue
        caption = f"{_fmt(f['feature'])}: {_fmt(f['test'])} {_fmt(f['statistic'])}" + (
            " (drifted)" if f["drifted"] else ""
        )
        out.append(f"<figure>{_histogram_svg(f['feature'], hist, svg)}"
                   f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip
    out.append("</div>")
    return "\n".join(out)


def _scores_svg(features: Sequence[Mapping[str, Any]], svg: _Svg) -> str:
    names = [str(f["feature"]) for f in features]
    values = [f["psi"] or 0.0 for f in features]
    fig = svg.figure(max(4.0, 0.35 * len(names) + 1.5), 3.0)
    ax = fig.add_subplot(1, 1, 1)
    colors = [_BAD if f["drifted"] else _REF for f in features]
    ax.bar(range(len(names)), values, color=colors)
    for level in (0.1, 0.2):
        ax.axhline(level, color="#888", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(names)), labels=names, rotation=60 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center", fontsize=8)  # fmt: skip
    ax.set_ylabel("PSI")
    ax.set_title("PSI per feature (red: drifted by its test)", fontsize=9)
    return svg.render(fig)


def _histogram_svg(name: str, hist: Mapping[str, Any], svg: _Svg) -> str:
    fig = svg.figure(3.6, 2.4)
    ax = fig.add_subplot(1, 1, 1)
    if hist["type"] == "numeric":
        edges = np.asarray(hist["edges"], dtype=np.float64)
        ax.stairs(hist["reference"], edges, fill=True, color=_REF, alpha=0.55, label="reference")
        ax.stairs(hist["current"], edges, fill=True, color=_CUR, alpha=0.55, label="current")
    else:
        cats = [str(c) for c in hist["categories"]]
        x = np.arange(len(cats))
        ax.bar(x - 0.2, hist["reference"], width=0.4, color=_REF, label="reference")
        ax.bar(x + 0.2, hist["current"], width=0.4, color=_CUR, label="current")
        short = [c if len(c) <= 12 else c[:11] + "..." for c in cats]
        ax.set_xticks(x, labels=short, rotation=45 if len(cats) > 3 else 0,
                      ha="right" if len(cats) > 3 else "center", fontsize=7)  # fmt: skip
    ax.set_ylabel("share", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return svg.render(fig)


def _monitor_html(doc: Mapping[str, Any], svg: _Svg) -> str:
    w, s, tl = doc["window"], doc["summary"], doc["timeline"]
    scope = ", ".join(
        x for x in (f"model {w['model']}" if w.get("model") else "",
                    f"stage {w['stage']}" if w.get("stage") else "") if x
    )  # fmt: skip
    out = [
        f"<p>Window {_fmt(w['since'])} to {_fmt(w['until'])}"
        f"{' (' + html.escape(scope) + ')' if scope else ''}; store "
        f"<code>{_fmt(w['store'])}</code>. Predictions from {_fmt(s['first'])} to "
        f"{_fmt(s['last'])}; model versions {_fmt(', '.join(s['model_versions']))}.</p>",
        "<h2>Summary</h2>",
    ]
    low = tl["low_confidence_below"]
    summary_rows = [
        ["rows", _fmt(s["rows"])],
        ["requests", _fmt(s["requests"])],
        ["errors", _fmt(s["errors"])],
        ["error rate", _fmt(s["error_rate"])],
        ["latency p50 (ms)", _fmt(s["latency_p50_ms"])],
        ["latency p99 (ms)", _fmt(s["latency_p99_ms"])],
        ["mean confidence", _fmt(s["mean_confidence"])],
        [f"low-confidence rate (&lt; {_fmt(low)})", _fmt(s["low_confidence_rate"])],
        ["rows with feedback", _fmt(s["feedback"])],
        ["accuracy (rows with feedback)", _fmt(s["accuracy"])],
    ]
    summary_rows += [[f"class mix: {_fmt(c)}", _fmt(v)] for c, v in s["class_mix"].items()]
    out.append(_table(["metric", "value"], summary_rows))
    out.append(f"<h2>Timelines</h2><p class=\"note\">buckets of {_fmt(tl['bucket_seconds'])} s"
               "; latency over requests</p>")  # fmt: skip
    out.append(_timeline_html(tl, svg))
    if doc.get("pipeline"):
        out.append(_pipeline_html(doc["pipeline"]))
    out.append("<h2>Monitor metrics</h2>")
    if doc["metric_points"]:
        out.append(_metric_points_html(doc["metric_points"], svg))
    else:
        out.append('<p class="note">no metric points in the window</p>')
    out.append("<h2>Alarms</h2>")
    if doc["alarms"]:
        rows = [
            [_fmt(a["time"]), _fmt(a["name"]), _fmt(a["metric"]), _fmt(a["severity"]),
             _fmt(a["state"]), _fmt(a["value"]), _fmt(a["threshold"]), _fmt(a["model_version"]),
             _fmt(a["message"]), _fmt(a["acknowledged_by"])]
            for a in doc["alarms"]
        ]  # fmt: skip
        headers = ["time", "name", "metric", "severity", "state", "value", "threshold",
                   "version", "message", "acknowledged by"]  # fmt: skip
        out.append(_table(headers, rows, left=5))
    else:
        out.append('<p class="note">no alarms in the window</p>')
    return "\n".join(out)


def _pipeline_html(pipe: Mapping[str, Any]) -> str:
    rows = [
        [_fmt(st["stage"]), _fmt(st["requests"]), _fmt(st["error_rate"]),
         _fmt(st["latency_p50_ms"]), _fmt(st["latency_p99_ms"])]
        for st in pipe["stages"]
    ]  # fmt: skip
    rows.append(
        ["end to end", _fmt(pipe["complete_runs"]), "", _fmt(pipe["latency_p50_ms"]),
         _fmt(pipe["latency_p99_ms"])]
    )  # fmt: skip
    return (
        "<h2>Pipeline</h2>"
        f'<p class="note">{_fmt(pipe["runs"])} runs, {_fmt(pipe["complete_runs"])} through '
        "every stage; end to end: from the first stage's request to the last stage's "
        "answer</p>"
        + _table(["stage", "requests", "error rate", "latency p50 (ms)", "latency p99 (ms)"], rows)
    )


def _times(stamps: Sequence[str]) -> list[datetime]:
    return [datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for t in stamps]


def _nan(values: Iterable[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _timeline_html(tl: Mapping[str, Any], svg: _Svg) -> str:
    buckets = tl["buckets"]
    x = _times([b["start"] for b in buckets])
    panels: list[tuple[str, list[tuple[str, str]]]] = [
        ("volume", [("requests", "requests"), ("rows", "rows")]),
        ("error rate", [("error_rate", "error rate")]),
        ("latency (ms)", [("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")]),
        ("confidence", [("mean_confidence", "mean confidence"),
                        ("low_confidence_rate", "low-confidence rate")]),
        ("accuracy (feedback)", [("accuracy", "accuracy")]),
    ]  # fmt: skip
    out = ['<div class="grid">']
    for title, series in panels:
        fig = svg.figure(4.2, 2.4)
        ax = fig.add_subplot(1, 1, 1)
        for key, label in series:
            ax.plot(x, _nan(b[key] for b in buckets), marker="o", markersize=3, label=label)
        _time_axis(ax)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        out.append(f"<figure>{svg.render(fig)}</figure>")
    classes = [*tl["classes"]]
    if buckets and "(other)" in buckets[0]["class_mix"]:
        classes.append("(other)")
    if classes:
        fig = svg.figure(4.2, 2.4)
        ax = fig.add_subplot(1, 1, 1)
        for c in classes:
            ax.plot(x, _nan(b["class_mix"].get(c) for b in buckets), marker="o",
                    markersize=3, label=str(c))  # fmt: skip
        _time_axis(ax)
        ax.set_title("class mix (share of predicted labels)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        out.append(f"<figure>{svg.render(fig)}</figure>")
    out.append("</div>")
    return "\n".join(out)


def _time_axis(ax: Any) -> None:
    dates = require("matplotlib.dates", "train")
    locator = dates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=UTC))
    ax.tick_params(labelsize=7)


def _metric_points_html(series: Sequence[Mapping[str, Any]], svg: _Svg) -> str:
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for s in series:
        by_name.setdefault(str(s["name"]), []).append(s)
    out = ['<div class="grid">']
    for name, group in list(by_name.items())[:_MAX_METRIC_PLOTS]:
        fig = svg.figure(4.2, 2.4)
        ax = fig.add_subplot(1, 1, 1)
        for s in group[:10]:
            label = ", ".join(
                x for x in (
                    *(f"{k}={v}" for k, v in s["labels"].items()),
                    s["stage"], f"v{s['model_version']}" if s["model_version"] else "",
                ) if x
            ) or name  # fmt: skip
            ax.plot(_times([p[0] for p in s["points"]]), _nan(p[1] for p in s["points"]),
                    marker="o", markersize=3, label=label)  # fmt: skip
        _time_axis(ax)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        out.append(f"<figure>{svg.render(fig)}</figure>")
    out.append("</div>")
    if len(by_name) > _MAX_METRIC_PLOTS:
        out.append(f'<p class="note">{len(by_name) - _MAX_METRIC_PLOTS} more metrics in the '
                   "JSON report</p>")  # fmt: skip
    rows = [[_fmt(s["name"]), _fmt(json.dumps(s["labels"]) if s["labels"] else ""),
             _fmt(s["stage"]), _fmt(s["model_version"]), _fmt(len(s["points"])),
             _fmt(s["points"][-1][1])] for s in series]  # fmt: skip
    headers = ["metric", "labels", "stage", "version", "points", "last value"]
    return "\n".join(out) + _table(headers, rows, left=4)
