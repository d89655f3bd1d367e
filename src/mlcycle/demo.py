"""``mlcycle demo``: the whole lifecycle core on the bundled example, in a fresh project.

init -> add data (DVC) -> push to the DVC remote -> sanity check -> a two-model sweep
(train, evaluate, export with parity, register) -> promote the best -> serve the champion
and call it over HTTP -> roll the other model out as a canary on that server (the server's
analysis promotes or rolls it back; the registry's aliases follow) -> score the data file
in batch -> monitoring report and alarms -> summary. Each step runs the real ``mlcycle``
command in a subprocess, exactly as a user would.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlcycle.demo_serving import (
    CANARY_STEPS,
    RolloutOutcome,
    call_the_champion,
    canary_rollout,
    serving,
)
from mlcycle.summary import fmt

if TYPE_CHECKING:
    from mlcycle.tracking import TrackingContext

__all__ = ["SCENARIOS", "mlcycle_command", "run_demo", "run_drift_demo"]

#: What ``mlcycle demo --scenario`` runs: the whole lifecycle, or the closed loop.
SCENARIOS = ("lifecycle", "drift")


def mlcycle_command() -> list[str]:
    """How to call this installation's ``mlcycle`` (the script beside the interpreter)."""
    script = Path(sys.executable).parent / "mlcycle"
    if script.exists():
        return [str(script)]
    found = shutil.which("mlcycle")
    return [found] if found else [sys.executable, "-m", "mlcycle"]


def _step(console: Console, n: int, total: int, title: str, args: list[str], cwd: Path) -> float:
    console.rule(f"[bold]{n}/{total}[/bold] {title}")
    console.print(f"$ mlcycle {' '.join(args)}", style="dim")
    start = time.perf_counter()
    env = {**os.environ, "MLCYCLE_PROJECT_ROOT": str(cwd)}
    proc = subprocess.run([*mlcycle_command(), *args], cwd=cwd, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        console.print(f"[red]step failed[/red] (exit {proc.returncode}): mlcycle {' '.join(args)}")
        raise SystemExit(proc.returncode)
    console.print(f"[green]done[/green] in {elapsed:.1f}s")
    return elapsed


def run_demo(directory: Path | None = None, *, jobs: int = 2) -> Path:
    """Run the demo in ``directory`` (default: a new temporary folder) and return it."""
    console = Console()
    start = time.perf_counter()
    root = (directory or Path(tempfile.mkdtemp(prefix="mlcycle-demo-"))).resolve()
    if root.exists() and any(root.iterdir()):
        root = root / "project"
    console.print(f"[bold]mlcycle demo[/bold] in {root}")
    total = 11
    root.parent.mkdir(parents=True, exist_ok=True)
    _step(
        console,
        1,
        total,
        "create the project (git, DVC, conf/, dvc.yaml, example data)",
        ["init", str(root)],
        root.parent,
    )
    _step(console, 2, total, "push the data version to the DVC remote", ["data", "push"], root)
    _step(console, 3, total, "sanity check: can the model overfit 32 rows?", ["sanity"], root)
    _step(
        console,
        4,
        total,
        "sweep logreg and gbdt: train, evaluate, export to ONNX (parity), register",
        [
            "train",
            "--multirun",
            "model=logreg,gbdt",
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={jobs}",
        ],
        root,
    )
    best = _best_version(root)
    _step(
        console,
        5,
        total,
        f"promote the best model (version {best['version']}) to champion",
        ["promote", best["version"], "--reason", f"best test {best['metric']} in the demo sweep"],
        root,
    )
    _step(console, 6, total, "list the registry", ["models"], root)
    data, label = _data_file(root)
    console.rule(f"[bold]7/{total}[/bold] serve the champion over HTTP and call it")
    with serving(console, mlcycle_command(), root) as server:
        call_the_champion(console, server, data, label)
        steps = CANARY_STEPS.replace(",", ", ")
        console.rule(f"[bold]8/{total}[/bold] canary: roll @challenger out on it ({steps} %)")
        rollout_start = time.perf_counter()
        _ensure_challenger(console, root)
        outcome = canary_rollout(console, mlcycle_command(), root, server, data, label)
    _follow_registry(console, root, outcome)
    console.print(f"[green]done[/green] in {time.perf_counter() - rollout_start:.1f}s")
    _step(
        console,
        9,
        total,
        "score the whole data file in batch with the champion",
        ["predict", str(data), "--output", "predictions.csv", "--overwrite", "--no-progress"],
        root,
    )
    _step(
        console,
        10,
        total,
        "monitoring report of the served traffic (drift against the data, timelines, alarms)",
        ["monitor", "report", "--since", "1h", "--reference", str(data),
         "--output", "monitor-report.html"],
        root,
    )  # fmt: skip
    _step(console, 11, total, "list the monitor's alarms", ["monitor", "alarms", "--all"], root)
    _summary(console, root, time.perf_counter() - start)
    return root


def run_drift_demo(directory: Path | None = None) -> Path:
    """The closed loop with no human step (see :mod:`mlcycle.demo_drift`); returns the project.

    Raises
    ------
    SystemExit
        A step failed, a request failed, or the retrained model was not promoted.
    """
    from mlcycle.demo_drift import SCENARIO_CONFIG, run_drift_loop, show_loop

    console = Console()
    start = time.perf_counter()
    root = (directory or Path(tempfile.mkdtemp(prefix="mlcycle-drift-"))).resolve()
    if root.exists() and any(root.iterdir()):
        root = root / "project"
    console.print(f"[bold]mlcycle demo --scenario drift[/bold] in {root}")
    total = 6
    root.parent.mkdir(parents=True, exist_ok=True)
    _step(console, 1, total, "create the project", ["init", str(root)], root.parent)
    _step(console, 2, total, "train the first model", ["train"], root)
    _step(console, 3, total, "promote it to champion", ["promote", "1"], root)
    conf = root / "conf" / "config.yaml"
    conf.write_text(conf.read_text() + SCENARIO_CONFIG)
    console.rule(f"[bold]4/{total}[/bold] serve it; the traffic drifts; watch the loop close")
    console.print(f"conf/config.yaml now ends with:{SCENARIO_CONFIG}", style="dim")
    data, label = _data_file(root)
    out = run_drift_loop(console, mlcycle_command(), root, data, label)
    show_loop(console, out)
    if out.promoted:
        _wait_for_champion(root, str(out.rollout.get("challenger_version")))
    _step(console, 5, total, "the retrainings", ["retrain", "history"], root)
    _step(console, 6, total, "the registry", ["models"], root)
    console.print(f"[bold]drift scenario[/bold] took {time.perf_counter() - start:.0f}s in {root}")
    if out.failed or not out.promoted:
        console.print(
            f"[red]the loop did not close[/red]: {out.failed} failed requests, "
            f"milestones {list(out.marks)}"
        )
        raise SystemExit(1)
    return root


def _wait_for_champion(root: Path, version: str, timeout: float = 30.0) -> None:
    """Wait until the registry's champion is ``version`` (the server moves it in the
    background after a promotion)."""
    from mlcycle import registry

    ctx, name = _registry(root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registry.lookup_version(ctx, f"@{registry.CHAMPION}", default_name=name) == version:
            return
        time.sleep(0.5)


def _data_file(root: Path) -> tuple[Path, str]:
    """The project's data file and label column, from its config."""
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project

    project = Project(root)
    cfg = to_config(compose([], project=project))
    return project.path(cfg.data.path), cfg.data.label


@functools.lru_cache(maxsize=4)
def _registry(root: Path) -> tuple[TrackingContext, str]:
    """The project's registry (read in-process) and its registered model's name."""
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project
    from mlcycle.tracking import configure_tracking

    project = Project(root)
    cfg = to_config(compose([], project=project))
    return configure_tracking(cfg.tracking, project), cfg.tracking.registered_model


def _ensure_challenger(console: Console, root: Path) -> str:
    """The version ``@challenger`` names; set on the newest non-champion version if unset.

    A new version is registered as ``challenger``; promoting it removes the alias, so
    when the sweep's best was registered last no version is the challenger any more.
    """
    from mlcycle import registry

    ctx, name = _registry(root)
    current = registry.lookup_version(ctx, f"@{registry.CHALLENGER}", default_name=name)
    if current is not None:
        console.print(f"registry: @{registry.CHALLENGER} is version {current} of {name!r}")
        return current
    others = [v for v in registry.list_versions(ctx, name) if registry.CHAMPION not in v.aliases]
    if not others:
        raise SystemExit(f"no version of {name!r} but the champion to roll out as a canary")
    version = others[0].version  # newest first
    ctx.client.set_registered_model_alias(name, registry.CHALLENGER, version)
    console.print(
        f"registry: no @{registry.CHALLENGER} (the last registered version became the "
        f"champion); set @{registry.CHALLENGER} on version {version}, the sweep's other model"
    )
    return version


def _follow_registry(
    console: Console, root: Path, outcome: RolloutOutcome, timeout: float = 30.0
) -> None:
    """Wait until the registry shows the rollout's outcome, and say what it shows.

    The server moves the aliases in a process of its own (``mlcycle.rollout.registry_sync``):
    promoted, ``champion`` moves to the challenger's version; rolled back, ``challenger``
    leaves it.
    """
    from mlcycle import registry

    ctx, name = _registry(root)
    promoted = outcome.state == "promoted"
    alias = registry.CHAMPION if promoted else registry.CHALLENGER
    start = time.monotonic()
    while True:
        at = registry.lookup_version(ctx, f"@{alias}", default_name=name)
        moved = at == outcome.challenger_version if promoted else at != outcome.challenger_version
        if moved or time.monotonic() - start > timeout:
            break
        time.sleep(0.25)
    waited = time.monotonic() - start
    if not moved:
        console.print(
            f"[yellow]registry: @{alias} still names version {at} after {waited:.0f}s; the "
            "server's registry update did not happen (see its log)[/yellow]"
        )
        return
    champion = registry.lookup_version(ctx, f"@{registry.CHAMPION}", default_name=name)
    if promoted:
        event = registry.history(ctx, name)[-1]
        console.print(
            f"registry: @{registry.CHAMPION} moved to version {champion}, recorded in its "
            f"history by {escape(event.user)}: {escape(event.reason)}"
        )
    else:
        console.print(
            f"registry: @{registry.CHAMPION} stays version {champion}; version "
            f"{outcome.challenger_version} is no longer @{registry.CHALLENGER}"
        )


def _versions(root: Path) -> tuple[str, list[dict[str, object]]]:
    """Registered versions with their bundle's evaluation (read in-process)."""
    import json

    from mlcycle import registry
    from mlcycle.config.project import Project

    project = Project(root)
    ctx, name = _registry(root)
    rows: list[dict[str, object]] = []
    for v in registry.list_versions(ctx, name):
        bundle = project.bundles_dir / name / str(v.run_id)
        if not bundle.is_dir():  # trained elsewhere: fetch it from the registry
            bundle = registry.resolve_bundle(ctx, f"models:/{name}/{v.version}")
        evaluation = json.loads((bundle / "evaluation.json").read_text())
        rows.append(
            {
                "version": v.version,
                "aliases": v.aliases,
                "bundle": bundle,
                "family": json.loads((bundle / "lineage.json").read_text())["config"]["model"][
                    "name"
                ],
                "evaluation": evaluation,
                "metric": evaluation["primary_metric"],
            }
        )
    return name, rows


def _best_version(root: Path) -> dict[str, str]:
    _, rows = _versions(root)
    if not rows:
        raise SystemExit("the sweep registered no model version")

    def score(row: dict[str, object]) -> float:
        ev = row["evaluation"]
        assert isinstance(ev, dict)
        value = ev["splits"]["test"].get(ev["primary_metric"])
        return float(value) if value is not None else float("-inf")

    best = max(rows, key=score)
    return {"version": str(best["version"]), "metric": str(best["metric"])}


def _mlflow_command() -> str:
    beside = Path(sys.executable).parent / "mlflow"
    return "mlflow" if shutil.which("mlflow") or not beside.exists() else str(beside)


def _summary(console: Console, root: Path, elapsed: float) -> None:
    name, rows = _versions(root)
    table = Table(title=f"mlcycle demo · registered model '{name}' · test set")
    columns = ("version", "model", "alias", "accuracy", "f1_macro", "roc_auc", "ece", "vs human")
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "alias") else "right")
    for row in rows:
        ev = row["evaluation"]
        assert isinstance(ev, dict)
        test = ev["splits"]["test"]
        human = next((b for b in ev.get("baselines", []) if b["name"] == "human"), None)
        aliases = row["aliases"]
        assert isinstance(aliases, list)
        table.add_row(
            str(row["version"]),
            str(row["family"]),
            ", ".join(aliases) or "-",
            *(fmt(test.get(k), 3) for k in ("accuracy", "f1_macro", "roc_auc", "ece")),
            f"{human['gap']:+.3f}" if human and human["gap"] is not None else "-",
        )
    console.rule("[bold]summary[/bold]")
    console.print(table)
    for row in rows:
        console.print(f"bundle v{row['version']}: {row['bundle']}")
    console.print(
        f"\nproject: {root}\n"
        f"open the experiments and the registry in MLflow's UI:\n"
        f"  cd {root} && {_mlflow_command()} ui --backend-store-uri sqlite:///mlflow.db "
        f"--port 5000\n  then browse http://127.0.0.1:5000\n"
        f"monitoring report of the served traffic: {root / 'monitor-report.html'}\n"
        f"[bold]demo finished in {elapsed:.1f}s[/bold]"
    )
