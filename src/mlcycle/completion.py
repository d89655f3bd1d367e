"""Bash tab completion for ``mlcycle``: commands, and Hydra config groups and keys.

Install for the current shell (add the line to ``~/.bashrc`` to keep it)::

    eval "$(mlcycle completion bash)"

The script asks ``mlcycle __complete`` for candidates. The first word completes to a
command name; after a Hydra command (``train``, ``sanity``, ...) Hydra's own completion
engine answers, with this project's ``conf/`` on the search path, so ``model=`` offers
``model=gbdt model=logreg ...`` and ``model.`` offers the keys of the chosen model.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex

__all__ = ["bash_script", "candidates", "complete"]

_SCRIPT = r"""# mlcycle bash completion. Install: eval "$(mlcycle completion bash)"
_mlcycle_completion()
{
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local choices
    choices=$(COMP_LINE="${COMP_LINE:0:$COMP_POINT}" mlcycle __complete 2>/dev/null)
    COMPREPLY=($(compgen -W "$choices" -- "$cur"))
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _mlcycle_completion mlcycle
"""


def bash_script() -> str:
    """Return the bash completion script."""
    return _SCRIPT


def candidates(line: str) -> list[str]:
    """Completion candidates for the command line typed so far.

    Parameters
    ----------
    line
        The line up to the cursor, starting with ``mlcycle``.

    Returns
    -------
    list[str]
        Sorted candidates for the word under the cursor.
    """
    from mlcycle.cli import DATA_ACTIONS, HYDRA_COMMANDS, PLAIN_COMMANDS

    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    new_word = line.endswith(" ")
    args = words[1:]
    if not args or (len(args) == 1 and not new_word):
        prefix = args[0] if args else ""
        return sorted(c for c in [*PLAIN_COMMANDS, *HYDRA_COMMANDS] if c.startswith(prefix))
    command = args[0]
    if command == "data" and (len(args) == 1 or (len(args) == 2 and not new_word)):
        prefix = "" if len(args) == 1 else args[1]
        return sorted(a for a in DATA_ACTIONS if a.startswith(prefix))
    if command == "rollout" and (len(args) == 1 or (len(args) == 2 and not new_word)):
        from mlcycle.rollout.commands import ACTIONS as ROLLOUT_ACTIONS

        prefix = "" if len(args) == 1 else args[1]
        return sorted(a for a in ROLLOUT_ACTIONS if a.startswith(prefix))
    if command == "retrain" and (len(args) == 1 or (len(args) == 2 and not new_word)):
        prefix = "" if len(args) == 1 else args[1]
        return [a for a in ("history",) if a.startswith(prefix)]
    if command == "automation" and (len(args) == 1 or (len(args) == 2 and not new_word)):
        from mlcycle.review.commands import ACTIONS as AUTOMATION_ACTIONS

        prefix = "" if len(args) == 1 else args[1]
        return sorted(a for a in AUTOMATION_ACTIONS if a.startswith(prefix))
    if command == "deploy" and (len(args) == 1 or (len(args) == 2 and not new_word)):
        prefix = "" if len(args) == 1 else args[1]
        return [a for a in ("docker", "lambda", "web") if a.startswith(prefix)]
    if command == "augment" and (len(args) == 1 or (len(args) == 2 and not new_word)):
        prefix = "" if len(args) == 1 else args[1]
        return [a for a in ("compare",) if a.startswith(prefix)]
    if command == "analyze" and len(args) >= 2:
        from mlcycle.analyze_command import OPTIONS, SPLITS

        current = "" if new_word else args[-1]
        previous = args[-1] if new_word else args[-2]
        if previous == "--split":
            return [s for s in SPLITS if s.startswith(current)]
        if current.startswith("-"):
            return sorted(o for o in OPTIONS if o.startswith(current))
        return []
    if command == "completion":
        return ["bash"]
    if command in HYDRA_COMMANDS:
        return _hydra_candidates(command, " ".join(args[1:]) + (" " if new_word else ""))
    return []


def _hydra_candidates(command: str, rest: str) -> list[str]:
    from mlcycle.config.hydra_app import run

    saved = os.environ.get("COMP_LINE")
    os.environ["COMP_LINE"] = f"mlcycle {rest}"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            run(command, _never_called, ["-sc", "query=bash"])
    finally:
        if saved is None:
            os.environ.pop("COMP_LINE", None)
        else:
            os.environ["COMP_LINE"] = saved
    # The structured-config schemas live in the group "schema"; they are not user options.
    return sorted({w for w in out.getvalue().split() if not w.startswith("schema")})


def _never_called(*_: object) -> None:  # pragma: no cover - Hydra does not run the task
    raise AssertionError("shell completion must not run the task")


def complete() -> None:
    """Print candidates for ``$COMP_LINE`` (what the bash script calls)."""
    print(" ".join(candidates(os.environ.get("COMP_LINE", "mlcycle "))))
