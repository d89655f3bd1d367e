"""Automation settings: the ``serve.automation`` section, standard library only.

How much a deployment trusts its model, from ``human_only`` (a person decides every case,
the model is not consulted) to ``full`` (every prediction is answered automatically):

=============  ================================================================
``human_only`` every row is queued for a person; the model is not consulted
``shadow``     the model predicts (logged, not shown); a person decides every row
``assist``     a person decides every row, seeing the model's suggestion
``partial``    rows at or above ``threshold`` confidence are answered; the rest wait
``full``       every row is answered by the model
=============  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUTOMATION_MODES", "AutomationSettings", "check_automation_settings"]

#: The degrees of automation, from least to most automatic.
AUTOMATION_MODES = ("human_only", "shadow", "assist", "partial", "full")


@dataclass
class AutomationSettings:
    """How far the deployment's answers are left to the model.

    Examples
    --------
    >>> AutomationSettings().mode
    'full'
    >>> check_automation_settings(AutomationSettings(mode="partial", threshold=1.5))
    ['serve.automation.threshold must be in [0, 1], not 1.5']
    """

    # One of AUTOMATION_MODES; the admin API can change it while the server runs.
    mode: str = "full"
    # partial: rows whose top probability is at or above this are answered automatically
    # (pick it with `mlcycle automation calibrate --target-precision 0.99`).
    threshold: float = 0.9
    # POSTed (JSON) when a review is decided, for callers that did not give their own
    # X-Callback-URL; empty: nobody is told (callers poll GET /reviews/{id}).
    webhook: str = ""
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    # Bearer token file for the review API and page; empty: the admin token (if any) is
    # used, and with neither the review API is open to anyone who can reach the server.
    reviewer_token_file: str = ""


def check_automation_settings(s: AutomationSettings, where: str = "serve.automation") -> list[str]:
    """Problems with ``s`` (empty when it is fine), each naming the setting."""
    problems: list[str] = []
    if s.mode not in AUTOMATION_MODES:
        problems.append(f"{where}.mode must be one of {AUTOMATION_MODES}, not {s.mode!r}")
    if not 0.0 <= s.threshold <= 1.0:
        problems.append(f"{where}.threshold must be in [0, 1], not {s.threshold}")
    if s.webhook and not s.webhook.startswith(("http://", "https://")):
        problems.append(f"{where}.webhook must be an http(s) URL, not {s.webhook!r}")
    if s.webhook_timeout <= 0:
        problems.append(f"{where}.webhook_timeout must be positive, not {s.webhook_timeout}")
    if s.webhook_retries < 0:
        problems.append(f"{where}.webhook_retries must be >= 0, not {s.webhook_retries}")
    return problems
