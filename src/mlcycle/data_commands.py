"""``mlcycle data add | push | pull | status | feedback``: DVC-tracked data with a schema.

These wrap real DVC; plain ``dvc`` commands keep working on the same project.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.config.structured import DataConfig
from mlcycle.exceptions import DataError

__all__ = ["add", "feedback", "pull", "push", "status"]


def add(
    path: Path,
    *,
    label: str | None = None,
    name: str | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Track a data file with DVC, infer its schema, and optionally name it as a dataset.

    Parameters
    ----------
    path
        A CSV or Parquet file. A file outside the project is copied into ``data/``.
    label
        The label column; default: ``data.label`` of the composed config.
    name
        Dataset name: writes ``conf/data/<name>.yaml`` so ``data=<name>`` selects it.
    overrides
        Config overrides.

    Returns
    -------
    Path
        The ``.dvc`` file.
    """
    from mlcycle.data import dvc
    from mlcycle.data.load import load_dataset, schema_file

    project = Project.discover()
    cfg = to_config(compose(overrides, project=project))
    source = path.expanduser().resolve()
    if not source.is_file():
        raise DataError(f"data file {path} does not exist; give the path of a CSV or Parquet file")
    try:
        rel = source.relative_to(project.root)
    except ValueError:
        rel = Path("data") / source.name
        (project.root / "data").mkdir(exist_ok=True)
        shutil.copy2(source, project.root / rel)
        print(f"copied {source} into the project as {rel}")
    data_cfg = DataConfig(
        name=name or cfg.data.name,
        path=str(rel),
        label=label or cfg.data.label,
        format=cfg.data.format,
    )
    dataset = load_dataset(data_cfg, project)  # checks the data, writes the schema on first use
    dvc_file = dvc.add(project.root, project.path(rel))
    staged = [schema_file(data_cfg, project)]
    if name:
        conf = project.conf_dir / "data" / f"{name}.yaml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            "defaults:\n  - /schema/data/dataset@_here_\n  - _self_\n\n"
            + yaml.safe_dump(
                {"name": name, "path": str(rel), "label": data_cfg.label}, sort_keys=False
            )
        )
        print(f"wrote {conf.relative_to(project.root)}: select it with data={name}")
        staged.append(conf)
    _git_add(project.root, staged)
    print(
        f"tracking {rel} with DVC ({dvc_file.name}); {len(dataset)} rows, "
        f"{len(dataset.schema.features)} features, classes {dataset.schema.classes}, "
        f"md5 {dataset.version.md5}"
    )
    return dvc_file


def _git_add(root: Path, paths: list[Path]) -> None:
    """Stage the schema (and dataset config) beside the ``.dvc`` file DVC staged."""
    import subprocess

    if not (root / ".git").exists():
        return
    subprocess.run(
        ["git", "add", "--", *map(str, paths)], cwd=root, capture_output=True, check=False
    )


def _remote_project(overrides: list[str] | None) -> tuple[Project, str]:
    from mlcycle.data import dvc

    project = Project.discover()
    cfg = to_config(compose(overrides, project=project))
    dvc.configure_remote(project.root, cfg.remote, project)
    return project, cfg.remote.name


def push(*, overrides: list[str] | None = None) -> None:
    """Upload DVC-tracked data to the configured remote."""
    from mlcycle.data import dvc

    project, remote = _remote_project(overrides)
    dvc.push(project.root, remote)
    print(f"pushed tracked data to remote '{remote}'")


def pull(*, overrides: list[str] | None = None) -> None:
    """Download DVC-tracked data from the configured remote."""
    from mlcycle.data import dvc

    project, remote = _remote_project(overrides)
    dvc.pull(project.root, remote)
    print(f"pulled tracked data from remote '{remote}'")


def status(*, overrides: list[str] | None = None) -> None:
    """Show local changes to tracked data and what the remote lacks."""
    from mlcycle.data import dvc

    project, remote = _remote_project(overrides)
    files = [t for t in dvc.pull_targets(project.root) if t.endswith(".dvc")]
    if not files:
        print("no data tracked yet: add some with `mlcycle data add FILE`")
        return
    print(f"workspace: {dvc.status(project.root, targets=files)}")
    print(
        f"remote '{remote}': {dvc.status(project.root, cloud=True, remote=remote, targets=files)}"
    )


def feedback(
    out: Path | None = None,
    *,
    since: str | None = None,
    model: str | None = None,
    dvc: bool = True,
    store: str | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Export the monitoring store's labels as a dataset file and track it with DVC.

    Parameters
    ----------
    out
        The CSV file; default ``data/feedback.csv`` in the project.
    since
        Only labels given from then on: Unix seconds or an ISO 8601 time.
    model
        Only labels of this model name's predictions.
    dvc
        Track the file with DVC (a new data version when it changed).
    store
        The monitoring store; default ``serve.monitor.store``, else ``monitor.db`` in
        the project root.
    overrides
        Config overrides (``data=NAME`` chooses whose schema the file follows).

    Returns
    -------
    Path
        The written file.
    """
    from mlcycle.data import dvc as dvc_cli
    from mlcycle.data.feedback_export import export_feedback, parse_since
    from mlcycle.data.load import load_dataset, schema_file
    from mlcycle.data.schema import Schema
    from mlcycle.exceptions import ProjectError
    from mlcycle.monitor.store import DEFAULT_STORE_FILE, connect

    project = Project.discover()
    cfg = to_config(compose(overrides, project=project))
    target = project.path(out or Path("data") / "feedback.csv").resolve()
    if target == project.path(cfg.data.path).resolve():
        raise DataError(
            f"--out {target} is the training data file of data={cfg.data.name}; "
            "write the feedback to its own file (default data/feedback.csv)"
        )
    if dvc:
        if not dvc_cli.is_repo(project.root):
            raise ProjectError(
                f"{project.root} is not a DVC repository, so the export cannot be tracked; "
                "run `mlcycle init` (or `dvc init`) there, or pass --no-dvc"
            )
        try:
            target.relative_to(project.root.resolve())
        except ValueError:
            raise DataError(
                f"--out {target} is outside the project {project.root}; DVC tracks files "
                "inside it: choose a path under the project, or pass --no-dvc"
            ) from None
    since_seconds = parse_since(since) if since else None
    path = schema_file(cfg.data, project)
    schema = Schema.load(path) if path.is_file() else load_dataset(cfg.data, project).schema
    location = store or cfg.serve.monitor.store or str(project.root / DEFAULT_STORE_FILE)
    if "://" not in location and not Path(location).expanduser().is_file():
        raise DataError(
            f"there is no monitoring store at {location} yet, so there is no feedback to export; "
            "serve a model with monitoring (`mlcycle serve`) and send labels, or pass --store"
        )
    engine = connect(location)
    shown = engine.url.render_as_string(hide_password=True) if "://" in location else location
    try:
        summary = export_feedback(
            engine,
            schema,
            target,
            since=since_seconds,
            model=model,
            dvc_root=project.root if dvc else None,
            store_name=shown,
        )
    finally:
        engine.dispose()
    for line in summary.lines(project.root):
        print(line)
    return target
