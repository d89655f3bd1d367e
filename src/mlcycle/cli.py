"""The ``mlcycle`` command: parse, resolve the project, compose config, call one function.

Two kinds of commands:

* **Hydra commands** (``prepare``, ``train``, ``sanity``, ``fit``, ``evaluate``,
  ``export``) are Hydra applications: everything after the command name is Hydra's
  command line (overrides, ``--multirun``, ``--cfg job``, ``--help``, ``-sc``).
* **Plain commands** (``init``, ``data``, ``models``, ``promote``, ``rollback``,
  ``serve``, ``rollout``, ``predict``, ``drift``, ``analyze``, ``augment``, ``deploy``,
  ``demo``, ``completion``) take flags,
  plus optional ``key=value`` overrides for the config they read (e.g. ``tracking.uri=...``).

Heavy libraries are imported inside the command that needs them, so ``mlcycle --help``
and tab completion stay quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlcycle import __version__
from mlcycle.exceptions import MlcycleError

__all__ = ["HYDRA_COMMANDS", "main"]

# Hydra commands and what they do (the task functions live in mlcycle.tasks).
HYDRA_COMMANDS: dict[str, str] = {
    "train": "prepare data, train, evaluate, export a bundle, track and register it",
    "sanity": "train on a tiny subset and check the model can overfit it",
    "prepare": "DVC stage: load the dataset, check its schema, write the splits",
    "fit": "DVC stage: train on the prepared splits",
    "evaluate": "DVC stage: evaluate the fitted model, write metrics and plots",
    "export": "DVC stage: export to ONNX with a parity check, write, track and register the bundle",
    "snapshot": "DVC stage: write the resolved config sections the other stages depend on",
}

PLAIN_COMMANDS: dict[str, str] = {
    "init": "create a project: git, DVC, conf/, dvc.yaml pipeline, DVC remote",
    "data": "add, push, pull or show the status of DVC-tracked data; check its quality; "
    "export feedback labels",
    "models": "list registered model versions, aliases, metrics and history",
    "promote": "move the 'champion' alias to a model version",
    "rollback": "move 'champion' back to the previous champion",
    "serve": "serve a model over HTTP (OIP v2, MLflow /invocations, /predict, /metrics)",
    "rollout": "roll a challenger out on a running server: shadow, blue/green or canary",
    "predict": "score a CSV or Parquet file in streaming chunks (or on Ray) with a model",
    "drift": "data drift between a reference and a current file (CSV or Parquet)",
    "monitor": "list and acknowledge alarms, write monitoring reports, expand the prediction log",
    "feedback": "import ground-truth labels for logged predictions from a CSV file",
    "retrain": "retrain on labelled feedback; a model that beats the champion becomes challenger",
    "automation": "calibrate the confidence threshold; show or set a server's automation mode",
    "deploy": "build a server image, deploy to AWS Lambda, or write a browser (web) site",
    "augment": "measure augmentation: train with and without it, compare on holdout and slices",
    "analyze": "error analysis: score slices of the data, rank them by gap x share",
    "demo": "run the end-to-end demo in a fresh project",
    "completion": "print the bash completion script",
}

DATA_ACTIONS = ("add", "push", "pull", "status", "feedback", "check")


def _usage() -> str:
    lines = [
        f"mlcycle {__version__}: a model's whole life, from versioned data to retraining.",
        "",
        "usage: mlcycle COMMAND [ARGS]",
        "",
        "commands:",
    ]
    for name, text in {**PLAIN_COMMANDS, **HYDRA_COMMANDS}.items():
        lines.append(f"  {name:<11} {text}")
    lines += [
        "",
        "Hydra commands take overrides: mlcycle train model=gbdt model.max_depth=4",
        "and sweeps: mlcycle train --multirun model=logreg,gbdt hydra/launcher=joblib",
        "Run 'mlcycle COMMAND --help' for a command's options.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mlcycle`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    if args[0] in ("-V", "--version", "version"):
        print(f"mlcycle {__version__}")
        return
    command, rest = args[0], args[1:]
    try:
        if command in HYDRA_COMMANDS:
            _run_hydra_command(command, rest)
        elif command == "__complete":
            from mlcycle.completion import complete

            complete()
        elif command in PLAIN_COMMANDS:
            _PLAIN[command](rest)
        else:
            import difflib

            close = difflib.get_close_matches(command, [*PLAIN_COMMANDS, *HYDRA_COMMANDS], 1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            _fail(f"unknown command '{command}'.{hint} Run 'mlcycle --help' to list commands.")
    except MlcycleError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _run_hydra_command(command: str, rest: list[str]) -> None:
    from mlcycle import tasks
    from mlcycle.config.hydra_app import run

    run(command, tasks.TASKS[command], rest)


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"mlcycle {command}", description=description)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, as for the Hydra commands (e.g. tracking.uri=http://...)",
    )


def _cmd_init(rest: list[str]) -> None:
    p = _parser("init", PLAIN_COMMANDS["init"])
    p.add_argument("directory", type=Path, help="the project folder to create")
    p.add_argument(
        "--no-example",
        action="store_true",
        help="do not add the bundled example dataset (data=breast_cancer)",
    )
    _add_overrides(p)
    ns = p.parse_args(rest)
    from mlcycle.project_init import init_project

    init_project(ns.directory, overrides=ns.overrides, with_example=not ns.no_example)


def _cmd_data(rest: list[str]) -> None:
    p = _parser("data", PLAIN_COMMANDS["data"])
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="track a data file with DVC and infer its schema")
    add.add_argument("path", type=Path, help="CSV, Parquet or .npz file inside the project")
    add.add_argument("--label", help="label column (default: data.label of the config)")
    add.add_argument(
        "--name", help="dataset name: also writes conf/data/NAME.yaml selecting this file"
    )
    _add_overrides(add)
    for action, text in (
        ("push", "upload tracked data to the DVC remote"),
        ("pull", "download tracked data from the DVC remote"),
        ("status", "show what changed locally and what the remote lacks"),
    ):
        _add_overrides(sub.add_parser(action, help=text))
    fb = sub.add_parser(
        "feedback",
        help="export the labels of reviews and feedback as a DVC-tracked dataset file",
    )
    fb.add_argument("--out", type=Path, help="CSV file to write (default data/feedback.csv)")
    fb.add_argument("--since", help="only labels from then on: ISO 8601 time or Unix seconds")
    fb.add_argument("--model", help="only labels of this registered model's predictions")
    fb.add_argument("--no-dvc", action="store_true", help="write the file, do not track it")
    fb.add_argument(
        "--store",
        metavar="URL_OR_PATH",
        help="monitoring store (default serve.monitor.store, else monitor.db in the project)",
    )
    _add_overrides(fb)
    ck = sub.add_parser(
        "check",
        help="report on the data: label issues, duplicates, coverage, learning curve, "
        "timeliness (HTML + JSON)",
    )
    ck.add_argument(
        "--out", type=Path, help="report folder (default reports/data_check in the project)"
    )
    ck.add_argument(
        "--folds", type=int, help="cross-validation folds (default data.check.folds: 5)"
    )
    ck.add_argument(
        "--max-issues",
        type=int,
        help="label issues and duplicate groups listed (default data.check.max_issues: 50)",
    )
    ck.add_argument(
        "--store",
        metavar="URL_OR_PATH",
        help="monitoring store (default serve.monitor.store, else monitor.db in the project)",
    )
    _add_overrides(ck)
    ns, extra = p.parse_known_args(rest)
    # argparse takes the KEY=VALUE words in one run; `data check` also takes them between
    # its flags (`--folds 3 model=gbdt --out dir data=wine`).
    stray = [w for w in extra if ns.action != "check" or w.startswith("-") or "=" not in w]
    if stray:
        p.error(f"unrecognized arguments: {' '.join(stray)}")
    if ns.action == "check":
        from mlcycle.config.project import Project
        from mlcycle.data.check import run_check, summary_lines

        project = Project.discover()
        result = run_check(
            out=ns.out,
            folds=ns.folds,
            max_issues=ns.max_issues,
            store=ns.store,
            overrides=[*ns.overrides, *extra],
            project=project,
        )
        print("\n".join(summary_lines(result, project.root)))
        return
    from mlcycle import data_commands

    if ns.action == "add":
        data_commands.add(ns.path, label=ns.label, name=ns.name, overrides=ns.overrides)
    elif ns.action == "feedback":
        data_commands.feedback(
            ns.out,
            since=ns.since,
            model=ns.model,
            dvc=not ns.no_dvc,
            store=ns.store,
            overrides=ns.overrides,
        )
    else:
        getattr(data_commands, ns.action)(overrides=ns.overrides)


def _cmd_models(rest: list[str]) -> None:
    p = _parser("models", PLAIN_COMMANDS["models"])
    p.add_argument("--name", help="registered model (default: tracking.registered_model)")
    _add_overrides(p)
    ns = p.parse_args(rest)
    from mlcycle.registry_commands import show_models

    show_models(name=ns.name, overrides=ns.overrides)


def _cmd_promote(rest: list[str]) -> None:
    p = _parser("promote", PLAIN_COMMANDS["promote"])
    p.add_argument("version", help="the model version to make champion")
    p.add_argument("--reason", default="", help="why (kept in the promotion history)")
    p.add_argument("--name", help="registered model (default: tracking.registered_model)")
    _add_overrides(p)
    ns = p.parse_args(rest)
    from mlcycle.registry_commands import promote

    promote(ns.version, reason=ns.reason, name=ns.name, overrides=ns.overrides)


def _cmd_rollback(rest: list[str]) -> None:
    p = _parser("rollback", PLAIN_COMMANDS["rollback"])
    p.add_argument("--reason", default="", help="why (kept in the promotion history)")
    p.add_argument("--name", help="registered model (default: tracking.registered_model)")
    _add_overrides(p)
    ns = p.parse_args(rest)
    from mlcycle.registry_commands import rollback

    rollback(reason=ns.reason, name=ns.name, overrides=ns.overrides)


def _cmd_serve(rest: list[str]) -> None:
    p = _parser("serve", PLAIN_COMMANDS["serve"])
    p.add_argument(
        "--model",
        help="bundle folder or registry reference (models:/NAME@ALIAS, @ALIAS, a version); "
        "default: the registry's @champion",
    )
    p.add_argument("--host", help="address to listen on (default serve.host: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default serve.port: 8080)")
    p.add_argument("--workers", type=int, help="worker processes (default serve.workers: 1)")
    p.add_argument(
        "--monitor-store",
        metavar="URL_OR_PATH",
        help="where the monitor logs predictions, metrics and alarms: a SQLite file or a "
        "SQLAlchemy URL (default serve.monitor.store: monitor.db in the project root)",
    )
    p.add_argument(
        "--no-monitor",
        action="store_true",
        help="do not log or watch predictions (serve.monitor.enabled=false)",
    )
    p.add_argument(
        "--settings",
        metavar="FILE",
        type=Path,
        help="a JSON or YAML file of serve settings used instead of the project's serve "
        "section (e.g. the serve.json that mlcycle deploy docker writes)",
    )
    _add_overrides(p)
    ns = p.parse_args(rest)
    from mlcycle.serve_commands import serve

    flags = {"host": ns.host, "port": ns.port, "workers": ns.workers}
    monitor = {"store": ns.monitor_store, "enabled": False if ns.no_monitor else None}
    serve(ns.model, flags, ns.overrides, monitor, ns.settings)


def _cmd_rollout(rest: list[str]) -> None:
    p = _parser("rollout", PLAIN_COMMANDS["rollout"])
    from mlcycle.rollout import commands

    commands.add_arguments(p)
    ns = p.parse_args(rest)
    commands.run(ns)


MONITOR_ACTIONS = {
    "alarms": "list alarms (unacknowledged by default)",
    "ack": "acknowledge alarms by id",
    "report": "write an HTML (and JSON) report of a time range from the monitoring store",
    "expand": "move the prediction log's batches into its predictions table now",
}


def _cmd_monitor(rest: list[str]) -> None:
    p = _parser("monitor", PLAIN_COMMANDS["monitor"])
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    from mlcycle.monitor import alarm_commands, expand_command, report_command

    alarms = sub.add_parser("alarms", help=MONITOR_ACTIONS["alarms"])
    alarm_commands.add_alarms_arguments(alarms)
    ack = sub.add_parser("ack", help=MONITOR_ACTIONS["ack"])
    alarm_commands.add_ack_arguments(ack)
    report = sub.add_parser("report", help=MONITOR_ACTIONS["report"])
    report_command.add_arguments(report)
    expand = sub.add_parser("expand", help=MONITOR_ACTIONS["expand"])
    expand_command.add_arguments(expand)
    ns = p.parse_args(rest)
    ns.store = ns.store or _project_monitor_store()
    if ns.action == "alarms":
        alarm_commands.run_alarms(ns)
    elif ns.action == "ack":
        alarm_commands.run_ack(ns)
    elif ns.action == "expand":
        print(expand_command.run(ns))
    else:
        for path in report_command.run(ns):
            print(f"wrote {path}")


def _cmd_feedback(rest: list[str]) -> None:
    p = _parser("feedback", PLAIN_COMMANDS["feedback"])
    from mlcycle.monitor import feedback_command

    feedback_command.add_arguments(p)
    ns = p.parse_args(rest)
    ns.store = ns.store or _project_monitor_store()
    feedback_command.run(ns)


def _cmd_retrain(rest: list[str]) -> None:
    from mlcycle.retrain.command import main as retrain_main

    retrain_main(rest)


def _cmd_automation(rest: list[str]) -> None:
    from mlcycle.review.commands import automation_command

    automation_command(rest)


def _cmd_augment(rest: list[str]) -> None:
    from mlcycle.augment_command import main as augment_main

    augment_main(rest)


def _cmd_analyze(rest: list[str]) -> None:
    from mlcycle.analyze_command import main as analyze_main

    analyze_main(rest)


def _cmd_deploy(rest: list[str]) -> None:
    from mlcycle.deploy.command import main as deploy_main

    deploy_main(rest)


def _project_monitor_store() -> str | None:
    """``serve.monitor.store`` of the project here, if it sets one (else the default)."""
    from mlcycle.config.project import find_project_root

    if not (find_project_root() / "conf" / "config.yaml").is_file():
        return None
    from mlcycle.serve_commands import project_serve_settings

    return project_serve_settings().monitor.store or None


def _cmd_predict(rest: list[str]) -> None:
    p = _parser("predict", PLAIN_COMMANDS["predict"])
    from mlcycle.batch.command import add_arguments

    add_arguments(p)
    p.add_argument(
        "--model",
        help="bundle folder or registry reference (models:/NAME@ALIAS, @ALIAS, a version); "
        "default: the registry's @champion",
    )
    _add_overrides(p)
    ns = p.parse_args(rest)
    from mlcycle.batch.command import run
    from mlcycle.serve_commands import resolve_model

    path, _, version, _ = resolve_model(ns.model, ns.overrides)
    run(ns, path, version)


def _cmd_drift(rest: list[str]) -> None:
    p = _parser("drift", PLAIN_COMMANDS["drift"])
    p.add_argument("reference", type=Path, help="the reference data (e.g. the training set)")
    p.add_argument("current", type=Path, help="the data to compare with it")
    p.add_argument("--columns", help="comma-separated columns to test (default: all)")
    p.add_argument("--exclude", default="", help="comma-separated columns to leave out")
    p.add_argument("--output", type=Path, help="also write the result as JSON here")
    p.add_argument(
        "--html",
        type=Path,
        metavar="REPORT.html",
        help="also write an HTML report with a histogram per feature (and its JSON next to it)",
    )
    p.add_argument(
        "--fail-on-drift", action="store_true", help="exit with status 1 when the data drifted"
    )
    ns = p.parse_args(rest)
    from rich.console import Console

    from mlcycle.exceptions import ConfigError
    from mlcycle.monitor.files import compare_files, render_drift, write_report

    if ns.html and ns.html.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--html {ns.html} must end in .html (use --output for JSON)")
    columns = [c for c in ns.columns.split(",") if c] if ns.columns else None
    exclude = [c for c in ns.exclude.split(",") if c]
    result, histograms = compare_files(
        ns.reference, ns.current, columns=columns, exclude=exclude, plots=bool(ns.html)
    )
    Console().print(render_drift(result))
    if ns.html:
        from mlcycle.monitor import report

        doc = report.drift_document(result, histograms, ns.reference, ns.current)
        report.write_report(doc, ns.html)
    if ns.output:
        write_report(result, ns.reference, ns.current, ns.output)
    if ns.fail_on_drift and result.drifted:
        raise SystemExit(1)


def _cmd_demo(rest: list[str]) -> None:
    p = _parser("demo", PLAIN_COMMANDS["demo"])
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="project folder to create (default: a new temporary folder, kept afterwards)",
    )
    p.add_argument(
        "--jobs", type=int, default=2, help="parallel sweep jobs (joblib launcher); default 2"
    )
    p.add_argument(
        "--scenario",
        choices=("lifecycle", "drift"),
        default="lifecycle",
        help="lifecycle: the whole lifecycle (default); drift: the closed loop (drift alarm "
        "-> retrain -> gate -> canary -> promotion) with no human step",
    )
    ns = p.parse_args(rest)
    from mlcycle.demo import run_demo, run_drift_demo

    if ns.scenario == "drift":
        run_drift_demo(ns.dir)
    else:
        run_demo(ns.dir, jobs=ns.jobs)


def _cmd_completion(rest: list[str]) -> None:
    p = _parser("completion", PLAIN_COMMANDS["completion"])
    p.add_argument("shell", choices=["bash"], help="the shell (bash)")
    p.parse_args(rest)
    from mlcycle.completion import bash_script

    print(bash_script())


_PLAIN: dict[str, Callable[[list[str]], None]] = {
    "init": _cmd_init,
    "data": _cmd_data,
    "models": _cmd_models,
    "promote": _cmd_promote,
    "rollback": _cmd_rollback,
    "serve": _cmd_serve,
    "rollout": _cmd_rollout,
    "predict": _cmd_predict,
    "drift": _cmd_drift,
    "monitor": _cmd_monitor,
    "feedback": _cmd_feedback,
    "retrain": _cmd_retrain,
    "automation": _cmd_automation,
    "deploy": _cmd_deploy,
    "augment": _cmd_augment,
    "analyze": _cmd_analyze,
    "demo": _cmd_demo,
    "completion": _cmd_completion,
}


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
