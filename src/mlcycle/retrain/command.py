"""``mlcycle retrain``: retrain on the feedback data, and list past retrainings.

::

    mlcycle retrain [--trigger manual|alarm] [--alarm-ids 3,4] [--who NAME]
                    [--rollout-url URL [--token-file FILE]] [--store URL_OR_PATH] [--json]
                    [KEY=VALUE ...]
    mlcycle retrain history [--limit N] [--store URL_OR_PATH] [--json] [KEY=VALUE ...]

Exit codes of a retraining: 0 it passed (a new challenger), 1 the gate said no (the
reason is printed), 2 nothing to retrain, another retraining of the model is running
(the message names it), or an error. ``python -m mlcycle.retrain`` takes the same
arguments (a server runs it that way, off its request path).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlcycle.exceptions import MlcycleError
from mlcycle.retrain.store import TRIGGERS, Retrain, RetrainStore

if TYPE_CHECKING:
    from rich.table import Table

    from mlcycle.config.project import Project
    from mlcycle.config.structured import Config
    from mlcycle.retrain.run import RetrainOutcome

__all__ = ["DESCRIPTION", "build_parser", "main", "parse_alarm_ids", "render_history"]

DESCRIPTION = "retrain on labelled feedback; a model that beats the champion becomes challenger"


def parse_alarm_ids(text: str) -> list[int]:
    """An ``--alarm-ids`` value (``3,4``) as ids.

    Examples
    --------
    >>> parse_alarm_ids("3, 4,4")
    [3, 4]

    Raises
    ------
    argparse.ArgumentTypeError
        Not a comma-separated list of whole numbers.
    """
    try:
        ids = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        ids = []
    if not ids or any(i < 1 for i in ids):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of alarm ids, e.g. 3,4 "
            "(`mlcycle monitor alarms` lists them)"
        )
    return ids


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL_OR_PATH",
        help="the monitoring store where retrainings are recorded (default "
        "serve.monitor.store, else monitor.db in the project root)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, as for the Hydra commands (e.g. retrain.gate.margin=0.01)",
    )


def build_parser(prog: str = "mlcycle retrain") -> argparse.ArgumentParser:
    """The parser of a retraining's arguments (``history`` has its own)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"{DESCRIPTION}. Exit status: 0 passed (new challenger), 1 the gate "
        "failed, 2 nothing to retrain, already running, or an error. "
        f"`{prog} history` lists past retrainings.",
    )
    p.add_argument(
        "--trigger", choices=TRIGGERS, default="manual", help="who asked (default manual)"
    )
    p.add_argument(
        "--alarm-ids",
        type=parse_alarm_ids,
        default=[],
        metavar="ID,ID",
        help="the alarms behind it (recorded and tagged on the new version)",
    )
    p.add_argument("--who", help="who asked (default: the login name)")
    p.add_argument(
        "--retrain-id",
        type=int,
        metavar="ID",
        help="carry on the retraining recorded with this id (a server records it when an "
        "alarm fires, then runs this command)",
    )
    p.add_argument(
        "--rollout-url",
        metavar="URL",
        help="start the rollout of the new challenger on this server (retrain.rollout_mode); "
        "without it the command to start it is printed",
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the server's admin token (default: $MLCYCLE_ADMIN_TOKEN, else "
        "serve.admin.token_file)",
    )
    _common(p)
    return p


def _history_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{prog} history", description="list past retrainings")
    p.add_argument(
        "--limit", type=int, default=20, metavar="N", help="most retrainings shown (default 20)"
    )
    _common(p)
    return p


def _context(overrides: list[str]) -> tuple[Config, Project, Any]:
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project

    project = Project.discover()
    raw = compose(overrides, project=project)
    return to_config(raw), project, raw


def _store(flag: str | None, cfg: Config, project: Project) -> RetrainStore:
    from mlcycle.monitor.store import DEFAULT_STORE_FILE

    value = flag or cfg.serve.monitor.store
    if not value:
        return RetrainStore.open(project.root / DEFAULT_STORE_FILE)
    return RetrainStore.open(value if "://" in value else project.path(value))


def main(argv: Sequence[str] | None = None, prog: str = "mlcycle retrain") -> None:
    """Run ``mlcycle retrain ARGS`` (or ``history``); exits with the status described above.

    Raises
    ------
    MlcycleError
        A bad setting, or a store or registry that cannot be reached.
    SystemExit
        With the exit status, when it is not 0.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["history"]:
        ns = _history_parser(prog).parse_args(args[1:])
        cfg, project, _ = _context(ns.overrides)
        _show_history(_store(ns.store, cfg, project), cfg, ns)
        return
    ns = build_parser(prog).parse_args(args)
    if ns.token_file and not ns.rollout_url:
        raise MlcycleError("--token-file is for --rollout-url; give the server's URL too")
    cfg, project, raw = _context(ns.overrides)
    from mlcycle.retrain.run import retrain

    outcome = retrain(
        cfg,
        project,
        raw,
        trigger=ns.trigger,
        who=ns.who,
        alarm_ids=ns.alarm_ids,
        store=(store := _store(ns.store, cfg, project)),
        retrain_id=ns.retrain_id,
    )
    rollout_error = None
    if outcome.state == "passed" and cfg.retrain.rollout and ns.rollout_url:
        rollout_error = _start_rollout(outcome, cfg, store, ns)
    if ns.json:
        doc = outcome.to_dict()
        doc["rollout_error"] = rollout_error
        print(json.dumps(doc, indent=2, default=str))
    else:
        _print_outcome(outcome, cfg, ns, rollout_error)
    code = 2 if rollout_error else outcome.exit_code
    if code:
        raise SystemExit(code)


def _start_rollout(
    outcome: RetrainOutcome, cfg: Config, store: RetrainStore, ns: argparse.Namespace
) -> str | None:
    """Start the rollout; the error message when it did not start."""
    from mlcycle.retrain.rollout import start_rollout
    from mlcycle.rollout.client import AdminClient
    from mlcycle.rollout.commands import admin_token, server_url

    assert outcome.retrain is not None
    try:
        token = admin_token(ns.token_file, lambda: _project_token_file(cfg))
        client = AdminClient(server_url(ns.rollout_url), token, outcome.retrain.who)
        rollout = start_rollout(client, outcome.retrain, cfg.retrain.rollout_mode)
    except MlcycleError as exc:
        return str(exc)
    if isinstance(rollout.get("id"), int):
        outcome.retrain = store.set_rollout(outcome.retrain.id, rollout["id"])
    return None


def _project_token_file(cfg: Config) -> Any:
    from pathlib import Path

    from mlcycle.config.project import Project

    if not cfg.serve.admin.token_file:
        return None
    return Project.discover().path(Path(cfg.serve.admin.token_file))


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_outcome(
    outcome: RetrainOutcome, cfg: Config, ns: argparse.Namespace, rollout_error: str | None
) -> None:
    from mlcycle.retrain.rollout import rollout_command

    r = outcome.retrain
    err = sys.stderr
    if outcome.state == "coalesced":
        print(f"error: not started: {outcome.reason}", file=err)
        return
    assert r is not None
    if outcome.state == "skipped":
        print(f"nothing to retrain (retrain {r.id}): {outcome.reason}", file=err)
        return
    if outcome.state == "error":
        print(f"error: retrain {r.id} stopped: {outcome.reason}", file=err)
        return
    for name, c in outcome.comparison.items():
        print(
            f"  {c['metric']} on {name} ({c['rows']} rows): champion {_fmt(c['champion'])}, "
            f"candidate {_fmt(c['candidate'])}"
        )
    if outcome.gate is not None:
        for check in outcome.gate.checks:
            print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    if outcome.state == "failed":
        print(
            f"retrain {r.id} of {r.model_name!r} FAILED the gate (run {r.run_id}; nothing "
            f"registered): {outcome.reason}"
        )
        return
    print(
        f"retrain {r.id} of {r.model_name!r} passed: version {r.version} is the challenger "
        f"(parent version {r.parent_version}; run {r.run_id})"
    )
    mode = cfg.retrain.rollout_mode
    if r.rollout_id is not None:
        print(f"started rollout {r.rollout_id} ({mode}) on {ns.rollout_url}")
    elif rollout_error:
        print(f"error: the rollout did not start: {rollout_error}", file=err)
        print(f"start it with: {rollout_command(r, mode, ns.rollout_url)}", file=err)
    elif cfg.retrain.rollout:
        print(f"start its rollout: {rollout_command(r, mode)}")
    else:
        print(f"retrain.rollout is false; to roll it out: {rollout_command(r, mode)}")


# -- history ---------------------------------------------------------------------------


def _show_history(store: RetrainStore, cfg: Config, ns: argparse.Namespace) -> None:
    name = cfg.tracking.registered_model
    rows = store.history(name, limit=ns.limit)
    if ns.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
        return
    from rich.console import Console

    if not rows:
        print(f"no retrainings of {name!r} yet; run `mlcycle retrain`")
        return
    Console().print(render_history(rows, title=f"Retrainings of {name!r}"))


def _duration(r: Retrain) -> str:
    seconds = r.duration
    if seconds is None:
        return "running"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def render_history(rows: Sequence[Retrain], *, title: str = "Retrainings") -> Table:
    """A rich table of retrainings: id, state, trigger, started, duration, versions, reason."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Fits 80 columns: the reason folds, everything else stays on one line.
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("trigger")
    table.add_column("started", no_wrap=True)
    table.add_column("duration", no_wrap=True)
    table.add_column("parent -> version", max_width=9)
    table.add_column("reason", overflow="fold", ratio=1)
    styles = {"passed": "green", "failed": "red", "error": "red", "running": "yellow"}
    for r in rows:
        trigger = r.trigger + (f" {','.join(map(str, r.alarm_ids))}" if r.alarm_ids else "")
        versions = f"{r.parent_version or '-'} -> {r.version or '-'}"
        table.add_row(
            Text(str(r.id)),
            Text(r.state, style=styles.get(r.state, "")),
            Text(trigger),
            Text(time.strftime("%m-%d %H:%M", time.localtime(r.started_at))),
            Text(_duration(r)),
            Text(versions),
            Text(r.reason),
        )
    return table
