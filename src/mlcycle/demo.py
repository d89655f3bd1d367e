"""``mlcycle demo``: the whole lifecycle core on the bundled example, in a fresh project.

init → add data (DVC) → push to the DVC remote → sanity check → a two-model sweep
(train, evaluate, export with parity, register) → promote the best → serve the champion
and call it over HTTP → score the data file in batch → summary. Each
step runs the real ``mlcycle`` command in a subprocess, exactly as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlcycle.demo_serving import call_the_champion
from mlcycle.summary import fmt

__all__ = ["mlcycle_command", "run_demo"]


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
    total = 10
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
    call_the_champion(console, mlcycle_command(), root, data, label)
    _step(
        console,
        8,
        total,
        "score the whole data file in batch with the champion",
        ["predict", str(data), "--output", "predictions.csv", "--overwrite", "--no-progress"],
        root,
    )
    _step(
        console,
        9,
        total,
        "monitoring report of the served traffic (drift against the data, timelines, alarms)",
        ["monitor", "report", "--since", "1h", "--reference", str(data),
         "--output", "monitor-report.html"],
        root,
    )  # fmt: skip
    _step(console, 10, total, "list the monitor's alarms", ["monitor", "alarms", "--all"], root)
    _summary(console, root, time.perf_counter() - start)
    return root


def _data_file(root: Path) -> tuple[Path, str]:
    """The project's data file and label column, from its config."""
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project

    project = Project(root)
    cfg = to_config(compose([], project=project))
    return project.path(cfg.data.path), cfg.data.label


def _versions(root: Path) -> tuple[str, list[dict[str, object]]]:
    """Registered versions with their bundle's evaluation (read in-process)."""
    import json

    from mlcycle import registry
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.config.project import Project
    from mlcycle.tracking import configure_tracking

    project = Project(root)
    cfg = to_config(compose([], project=project))
    ctx = configure_tracking(cfg.tracking, project)
    name = cfg.tracking.registered_model
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
