"""What to fix first: short sentences drawn from the report's sections, ranked.

Each finding has a ``severity`` (``high``: labels that are wrong or contradict each
other, a class too rare to learn; ``warning``: worth fixing before the next training;
``info``: worth knowing), the ``section`` it comes from, and a ``text`` that says what
was found and what to do. They are ranked by severity, then by a fixed order of
sections: consistency of the labels first, then coverage, size and timeliness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SEVERITIES", "findings"]

#: Severities, most urgent first.
SEVERITIES = ("high", "warning", "info")

_SHOWN = 3  # examples named in a sentence
_LABEL_ISSUE_HIGH_SHARE = 0.01  # label issues in more rows than this are "high"
_DUPLICATE_WARNING_SHARE = 0.01


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rows(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN])
    return shown + (", ..." if len(rows) > _SHOWN else "")


def _label_findings(doc: Mapping[str, Any], out: list[tuple[str, str, str]]) -> None:
    dup = doc["duplicates"]
    if dup["conflicting_groups"]:
        first = dup["conflicting"][0]
        labels = " vs ".join(f"{k!r}" for k in first["labels"])
        out.append(
            (
                "high",
                "duplicates",
                f"{dup['conflicting_groups']} group(s) of rows ({dup['conflicting_rows']} rows) "
                f"have identical features but different labels (e.g. rows {_rows(first['rows'])}: "
                f"{labels}); decide the right label, or add the feature that tells them apart",
            )
        )
    issues = doc["label_issues"]
    if issues["found"]:
        worst = issues["issues"][:_SHOWN]
        examples = "; ".join(f"row {i['row']}: {i['given']!r} -> {i['suggested']!r}" for i in worst)
        severity = "high" if issues["share"] >= _LABEL_ISSUE_HIGH_SHARE else "warning"
        out.append(
            (
                severity,
                "label_issues",
                f"{issues['found']} row(s) ({_pct(issues['share'])}) are likely mislabelled; "
                f"review them worst first ({examples})",
            )
        )


def _coverage_findings(doc: Mapping[str, Any], out: list[tuple[str, str, str]]) -> None:
    cov = doc["coverage"]
    classes = cov["classes"]
    for name in classes["rare"]:
        out.append(
            (
                "high"
                if classes["counts"][name] < doc["settings"]["min_slice_rows"]
                else "warning",
                "coverage",
                f"class {name!r} has only {classes['counts'][name]} rows "
                f"({_pct(classes['shares'][name])}; imbalance ratio "
                f"{classes['imbalance_ratio']:g}); "
                "collect more of it, or rebalance (train.augment.rebalance) or weight the classes",
            )
        )
    constant = [f["name"] for f in cov["features"] if f["constant"]]
    if constant:
        out.append(
            (
                "warning",
                "coverage",
                f"{len(constant)} feature(s) are constant and carry no information "
                f"({', '.join(constant[:_SHOWN])}{', ...' if len(constant) > _SHOWN else ''}); "
                "drop them from the schema or find out why they do not vary",
            )
        )
    for f in cov["features"]:
        if f["too_many_missing"] and not f["constant"]:
            out.append(
                (
                    "warning",
                    "coverage",
                    f"feature {f['name']!r} is missing in {_pct(f['missing_rate'])} of the rows; "
                    "find out why, or fill it in at the source",
                )
            )
    dup = doc["duplicates"]
    if dup["exact_extra_rows"]:
        share = dup["exact_extra_rows"] / max(doc["dataset"]["rows"], 1)
        out.append(
            (
                "warning" if share >= _DUPLICATE_WARNING_SHARE else "info",
                "duplicates",
                f"{dup['exact_extra_rows']} row(s) repeat another row exactly "
                f"({dup['exact_groups']} group(s), e.g. rows {_rows(dup['exact'][0]['rows'])}); "
                "they weigh their class twice and leak between folds: drop them unless they are "
                "real repeats",
            )
        )
    slices = cov["small_slices"]
    if slices:
        first = slices[0]
        out.append(
            (
                "info",
                "coverage",
                f"{len(slices)} slice(s) have fewer than {doc['settings']['min_slice_rows']} rows "
                f"(smallest: {first['feature']} {first['slice']}: {first['rows']}); a model's "
                "quality on them cannot be measured well: collect more of them",
            )
        )
    rare = cov["rare_categories"]
    if rare:
        first = rare[0]
        out.append(
            (
                "info",
                "coverage",
                f"{len(rare)} categorical value(s) appear in fewer than "
                f"{doc['settings']['rare_count']} rows (e.g. "
                f"{first['feature']}={first['value']!r}: {first['rows']}); the model learns "
                "little about them",
            )
        )


def _size_findings(doc: Mapping[str, Any], out: list[tuple[str, str, str]]) -> None:
    size = doc["size"]
    gain, metric = size["gain_if_doubled"], size["metric"]
    if size["more_data_helps"]:
        out.append(
            (
                "warning",
                "size",
                f"more data would likely help: doubling the rows should improve {metric} by about "
                f"{gain:.3f} (more than the spread between folds, {size['threshold']:.3f})",
            )
        )
    elif size["verdict"] != "not measured":
        out.append(
            (
                "info",
                "size",
                f"the learning curve has flattened: doubling the rows would improve {metric} by "
                f"about {gain:.3f}; better labels or features will help more than more rows",
            )
        )


def _time_findings(doc: Mapping[str, Any], out: list[tuple[str, str, str]]) -> None:
    t = doc["timeliness"]
    limit = doc["settings"]["max_age_days"]
    newest = t["time_column"] or t["data_file"]
    what = (
        f"its newest {t['time_column']['column']!r} is {t['time_column']['newest']}"
        if t["time_column"]
        else f"the data file was last changed {t['data_file']['modified_at']}"
    )
    if newest["age_days"] > limit:
        out.append(
            (
                "warning",
                "timeliness",
                f"the newest labelled data is {newest['age_days']:.0f} days old ({what}); label "
                "recent rows so the data reflects today's traffic",
            )
        )
    if t["time_column"] and t["time_column"].get("is_feature"):
        column = t["time_column"]["column"]
        out.append(
            (
                "warning",
                "timeliness",
                f"the time column {column!r} (data.time_column) is also a feature of the schema, "
                "so the model learns from when a row was recorded; remove it from the schema "
                "file's features unless that is intended",
            )
        )
    fb = t["feedback"]
    if not fb["available"]:
        out.append(("info", "timeliness", f"production feedback not counted: {fb['reason']}"))
    elif fb["labels"]:
        champion = fb["champion"]
        since = (
            f"since the champion (version {champion['version']}) was trained at "
            f"{champion['trained_at']}"
            if champion.get("version")
            else "in the monitoring store (no champion to compare with)"
        )
        out.append(
            (
                "warning" if fb["with_features"] >= fb["min_new_rows"] else "info",
                "timeliness",
                f"{fb['labels']} production label(s) arrived {since}, {fb['with_features']} with "
                "logged features; export them (`mlcycle data feedback`) and retrain "
                "(`mlcycle retrain`)",
            )
        )


def findings(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ranked findings of a report document (without its ``findings``).

    Parameters
    ----------
    doc
        The report as plain data (see :func:`mlcycle.data.check.report.build_report`).

    Returns
    -------
    list of dict
        ``rank``, ``severity``, ``section``, ``text``; most urgent first.
    """
    found: list[tuple[str, str, str]] = []
    for part in (_label_findings, _coverage_findings, _size_findings, _time_findings):
        part(doc, found)
    ordered = sorted(enumerate(found), key=lambda p: (SEVERITIES.index(p[1][0]), p[0]))
    return [
        {"rank": k + 1, "severity": sev, "section": section, "text": text}
        for k, (_, (sev, section, text)) in enumerate(ordered)
    ]
