"""The data check as one self-contained HTML page: inline CSS, PNG plots embedded, no JS.

:func:`render_html` reads only the JSON document and the PNG files it names, so the page
shows exactly what ``report.json`` holds and opens offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcycle.html_page import BASE_CSS, fmt, png, table

__all__ = ["render_html"]

_CSS = (
    BASE_CSS
    + """
.high{color:#c44e52;font-weight:bold}.warning{color:#b8860b;font-weight:bold}
.info{color:#4c72b0}img{max-width:100%;height:auto}
"""
)
_MAX_ROWS = 200  # table rows shown per list (the JSON has them all)
_fmt = fmt


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    return table(headers, rows, left, max_rows=_MAX_ROWS, more="... (see report.json)")


def _img(folder: Path, plots: Mapping[str, str], name: str, alt: str) -> str:
    rel = plots.get(name)
    if not rel:
        return ""
    return f"<p>{png(folder / rel, alt)}</p>"


def _rows(rows: Sequence[int]) -> str:
    return ", ".join(str(r) for r in rows)


def _findings(doc: Mapping[str, Any]) -> str:
    items = doc["findings"]
    if not items:
        return "<h2>What to fix first</h2><p>Nothing found.</p>"
    lines = "".join(
        f'<li><span class="{f["severity"]}">{_fmt(f["severity"])}</span> '
        f"[{_fmt(f['section'])}] {_fmt(f['text'])}</li>"
        for f in items
    )
    return f"<h2>What to fix first</h2><ol>{lines}</ol>"


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "".join(f'<p class="note">{_fmt(n)}</p>' for n in notes)


def _consistency(doc: Mapping[str, Any], folder: Path) -> str:
    li, dup, plots = doc["label_issues"], doc["duplicates"], doc["plots"]
    s = doc["settings"]
    parts = [
        "<h2>Defined consistently: label issues</h2>",
        f"<p>{li['found']} of {li['rows']} rows ({100 * li['share']:.1f}%) are likely "
        f"mislabelled (confident learning on {s['folds']}-fold out-of-sample probabilities "
        f"of the <code>{_fmt(s['model'])}</code> pipeline; out-of-sample accuracy "
        f"{_fmt(li['out_of_sample_accuracy'])}). Rows are positions in the data file "
        "(0 = first data row).</p>",
        _img(folder, plots, "label_quality", "label quality histogram"),
    ]
    if li["issues"]:
        parts.append(
            _table(
                ["rank", "row", "given", "suggested", "label quality", "p(suggested)"],
                (
                    [
                        i["rank"],
                        i["row"],
                        _fmt(i["given"]),
                        _fmt(i["suggested"]),
                        _fmt(i["quality"]),
                        _fmt(i["suggested_probability"]),
                    ]
                    for i in li["issues"]
                ),
            )
        )
    parts.append(_notes(li["notes"]))
    parts.append("<h2>Defined consistently: duplicates</h2>")
    parts.append(
        f"<p>{dup['conflicting_groups']} group(s) with identical features and different "
        f"labels ({dup['conflicting_rows']} rows); {dup['exact_groups']} group(s) of exact "
        f"duplicates ({dup['exact_extra_rows']} extra rows).</p>"
    )
    if dup["conflicting"]:
        parts.append(
            _table(
                ["rows", "labels"],
                (
                    [
                        _rows(g["rows"]),
                        _fmt("; ".join(f"{k}: {_rows(v)}" for k, v in g["labels"].items())),
                    ]
                    for g in dup["conflicting"]
                ),
            )
        )
    if dup["exact"]:
        parts.append(
            _table(["rows", "label"], ([_rows(g["rows"]), _fmt(g["label"])] for g in dup["exact"]))
        )
    return "\n".join(parts)


def _coverage(doc: Mapping[str, Any], folder: Path) -> str:
    cov, s, plots = doc["coverage"], doc["settings"], doc["plots"]
    cl = cov["classes"]
    parts = [
        "<h2>Covers important cases: classes</h2>",
        f"<p>Imbalance ratio {_fmt(cl['imbalance_ratio'])} (largest / smallest class); rare "
        f"(share below {_fmt(cl['rare_class_share'])}): "
        f"{_fmt(', '.join(cl['rare']) or 'none')}.</p>",
        _img(folder, plots, "class_balance", "rows per class"),
        _table(
            ["class", "rows", "share"],
            ([_fmt(c), n, _fmt(cl["shares"][c])] for c, n in cl["counts"].items()),
        ),
        "<h2>Covers important cases: features</h2>",
        _img(folder, plots, "missing_values", "missing values per feature"),
        _table(
            ["feature", "kind", "missing", "missing rate", "distinct", "constant"],
            (
                [
                    _fmt(f["name"]),
                    _fmt(f["kind"]),
                    f["missing"],
                    _fmt(f["missing_rate"]),
                    _fmt(f["distinct"]),
                    _fmt(f["constant"]),
                ]
                for f in cov["features"]
            ),
            left=2,
        ),
        f"<h2>Covers important cases: slices with fewer than {s['min_slice_rows']} rows</h2>",
    ]
    if cov["small_slices"]:
        parts.append(
            _table(
                ["feature", "kind", "slice", "rows"],
                (
                    [_fmt(r["feature"]), _fmt(r["kind"]), _fmt(r["slice"]), r["rows"]]
                    for r in cov["small_slices"]
                ),
                left=3,
            )
        )
    else:
        parts.append("<p>None.</p>")
    parts.append(
        f"<h2>Covers important cases: categories in fewer than {s['rare_count']} rows</h2>"
    )
    if cov["rare_categories"]:
        parts.append(
            _table(
                ["feature", "value", "rows"],
                ([_fmt(r["feature"]), _fmt(r["value"]), r["rows"]] for r in cov["rare_categories"]),
                left=2,
            )
        )
    else:
        parts.append("<p>None.</p>")
    return "\n".join(parts)


def _size(doc: Mapping[str, Any], folder: Path) -> str:
    size = doc["size"]
    fit = size["fit"]
    if fit["method"] == "power_law":
        how = "a saturating power law fitted to the curve"
    elif fit["method"] == "last_slope":
        how = "the slope of the last two points"
    else:
        how = "nothing: too few sizes"
    if fit["reason"]:
        how += f"; {_fmt(fit['reason'])}"
    parts = [
        "<h2>Sized appropriately: learning curve</h2>",
        f"<p><b>{_fmt(size['verdict'])}</b>: doubling the data would improve "
        f"{_fmt(size['metric'])} by about {_fmt(size['gain_if_doubled'], '.3f')} (estimated "
        f"from {how}); the spread between folds at the largest size is "
        f"{_fmt(size['spread'], '.3f')} and the gain must beat {_fmt(size['threshold'], '.3f')}."
        "</p>",
        _img(folder, doc["plots"], "learning_curve", "learning curve"),
        _table(
            ["training rows", "training score", "held-out score", "held-out std"],
            (
                [n, _fmt(tm), _fmt(vm), _fmt(vs)]
                for n, tm, vm, vs in zip(
                    size["sizes"],
                    size["train_mean"],
                    size["test_mean"],
                    size["test_std"],
                    strict=True,
                )
            ),
        ),
        _notes(size["notes"]),
    ]
    return "\n".join(parts)


def _timeliness(doc: Mapping[str, Any]) -> str:
    t = doc["timeliness"]
    df, tc, fb = t["data_file"], t["time_column"], t["feedback"]
    rows = [["data file last modified", _fmt(df["modified_at"]), _fmt(df["age_days"], ".1f")]]
    if tc:
        rows.append(
            [f"newest {_fmt(tc['column'])}", _fmt(tc["newest"]), _fmt(tc["age_days"], ".1f")]
        )
        rows.append([f"oldest {_fmt(tc['column'])}", _fmt(tc["oldest"]), "-"])
    parts = ["<h2>Timely feedback</h2>", _table(["", "when", "age (days)"], rows)]
    if not fb["available"]:
        parts.append(f"<p>Production feedback: {_fmt(fb['reason'])}.</p>")
    else:
        champion = fb["champion"]
        since = (
            f"since the champion (version {_fmt(champion['version'])}) was trained at "
            f"{_fmt(champion['trained_at'])}"
            if champion.get("version")
            else f"in all ({_fmt(champion.get('reason'))})"
        )
        parts.append(
            f"<p>Monitoring store <code>{_fmt(fb['store'])}</code>: {fb['labels']} label(s) "
            f"{since}, {fb['with_features']} with logged features (usable by "
            f"<code>mlcycle data feedback</code>); newest {_fmt(fb['newest'])}. All models: "
            f"{fb['labels_all_models']}.</p>"
        )
    return "\n".join(parts)


def render_html(doc: Mapping[str, Any], folder: Path) -> str:
    """The report document as one self-contained HTML page.

    Parameters
    ----------
    doc
        The document (:func:`mlcycle.data.check.report.build_report`).
    folder
        The report's folder: ``doc["plots"]`` paths are relative to it.

    Returns
    -------
    str
        The HTML text.
    """
    ds = doc["dataset"]
    title = f"Data check: {ds['name']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_fmt(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_fmt(title)}</h1>",
        f'<p class="note">{_fmt(ds["path"])}: {ds["rows"]} rows, {len(ds["features"])} '
        f"features, classes {_fmt(', '.join(ds['classes']))}; md5 {_fmt(ds['md5'])}. "
        f"Generated {_fmt(doc['created_at'])} by mlcycle (report version {doc['version']}).</p>",
        _findings(doc),
        _consistency(doc, folder),
        _coverage(doc, folder),
        _size(doc, folder),
        _timeliness(doc),
        "</body></html>\n",
    ]
    return "\n".join(parts)
