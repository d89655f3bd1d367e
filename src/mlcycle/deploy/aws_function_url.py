"""The function URL step of ``mlcycle deploy lambda``: create it, fix its auth type.

A public URL (auth type ``NONE``) needs two resource-policy statements, which the Lambda
console also adds; they are added once, and removed when the URL goes back to ``AWS_IAM``.
moto's AddPermission accepts a duplicate statement id, so the policy is read first.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from mlcycle.deploy.aws_errors import Progress

__all__ = ["ensure_function_url"]

# The statements the Lambda console adds for a public (AuthType NONE) function URL; since
# October 2025 a new URL needs both lambda:InvokeFunctionUrl and lambda:InvokeFunction.
_PUBLIC_URL_STATEMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "FunctionURLAllowPublicAccess",
        {"Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"},
    ),
    (
        "FunctionURLAllowInvokeAction",
        {"Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": True},
    ),
)


def _sync_public_access(lam: Any, function: str, public: bool, progress: Progress) -> None:
    with progress.step(f"reading the policy of the function {function!r}", ["lambda:GetPolicy"]):
        try:
            policy = json.loads(lam.get_policy(FunctionName=function)["Policy"])
        except lam.exceptions.ResourceNotFoundException:
            policy = {}
    sids = {statement.get("Sid") for statement in policy.get("Statement", [])}
    for sid, grant in _PUBLIC_URL_STATEMENTS:
        if public and sid not in sids:
            step = f"allowing public calls to the URL of {function!r} ({grant['Action']})"
            conflict = lam.exceptions.ResourceConflictException  # added meanwhile
            with progress.step(step, ["lambda:AddPermission"]), contextlib.suppress(conflict):
                lam.add_permission(FunctionName=function, StatementId=sid, Principal="*", **grant)
            progress.record(f"public access granted: {sid}", lambda_change=True)
        elif not public and sid in sids:
            step = f"removing public access to the URL of {function!r}"
            with progress.step(step, ["lambda:RemovePermission"]):
                lam.remove_permission(FunctionName=function, StatementId=sid)
            progress.record(f"public access removed: {sid}", lambda_change=True)


def ensure_function_url(lam: Any, function: str, auth: str, progress: Progress) -> str:
    """Create the function URL of ``function`` (or fix its auth type); return the URL.

    Parameters
    ----------
    lam
        A boto3 Lambda client.
    function
        The function's name.
    auth
        ``AWS_IAM`` or ``NONE`` (public: the two permissions that allow it are added, and
        removed again when the URL goes back to ``AWS_IAM``).
    progress
        Records each change, for the log and for any error's "done so far".

    Returns
    -------
    str
        The function URL.
    """
    step = f"setting up the function URL of {function!r}"
    actions = [
        "lambda:GetFunctionUrlConfig",
        "lambda:CreateFunctionUrlConfig",
        "lambda:UpdateFunctionUrlConfig",
    ]
    with progress.step(step, actions):
        try:
            config = lam.get_function_url_config(FunctionName=function)
        except lam.exceptions.ResourceNotFoundException:
            config = lam.create_function_url_config(FunctionName=function, AuthType=auth)
            progress.record(
                f"function URL created ({auth}): {config['FunctionUrl']}", lambda_change=True
            )
        else:
            if config.get("AuthType") != auth:
                config = lam.update_function_url_config(FunctionName=function, AuthType=auth)
                progress.record(f"function URL auth set to {auth}", lambda_change=True)
            else:
                progress.note(f"function URL exists ({auth}): {config['FunctionUrl']}")
    _sync_public_access(lam, function, auth == "NONE", progress)
    return str(config["FunctionUrl"])
