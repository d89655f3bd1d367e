"""``mlcycle data check``: is the data good enough to train on? (docs/data-check.md)

Four questions, one module each, and a report:

* defined consistently: :mod:`~mlcycle.data.check.label_issues` (confident learning on
  cross-validated probabilities) and :mod:`~mlcycle.data.check.duplicates`;
* covers important cases: :mod:`~mlcycle.data.check.coverage`;
* sized appropriately: :mod:`~mlcycle.data.check.learning_curve`;
* timely feedback: :mod:`~mlcycle.data.check.timeliness`;

then :mod:`~mlcycle.data.check.findings` (what to fix first), :mod:`~.report` (JSON),
:mod:`~.plots` and :mod:`~.html`, and :mod:`~.command` (the CLI glue). Importing this
package is light: scikit-learn, pandas, cleanlab and matplotlib load when a check runs.
"""

from __future__ import annotations

from mlcycle.data.check.command import CheckResult, run_check, summary_lines

__all__ = ["CheckResult", "run_check", "summary_lines"]
