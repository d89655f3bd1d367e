"""Bad input through the real CLI: one clear message, exit 2, nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.test_cli import mlflow_client, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("errors") / "proj"
    run(["init", str(root)], cwd=root.parent)
    return root


def assert_clean_failure(proc_stderr: str, *needles: str) -> None:
    assert "Traceback" not in proc_stderr, proc_stderr
    for needle in needles:
        assert needle in proc_stderr, (needle, proc_stderr)


def assert_nothing_registered(root: Path) -> None:
    bundles = root / "bundles"
    assert not bundles.exists() or not any(bundles.rglob("model.onnx"))
    if (root / "mlflow.db").exists():
        client = mlflow_client(root)
        assert client.search_model_versions("name='breast_cancer'") == []


def write_variant(project: Path, name: str, edit: str) -> str:
    """Copy the example CSV with an edit applied; return its project-relative path."""
    src = (project / "data" / "breast_cancer.csv").read_text().splitlines()
    header, rows = src[0], src[1:]
    if edit == "text-in-numeric":
        cols = header.split(",")
        i = cols.index("mean radius")
        for r in range(3):
            cells = rows[r].split(",")
            cells[i] = "n/a?"
            rows[r] = ",".join(cells)
    elif edit == "empty":
        rows = []
    elif edit == "single-class":
        rows = [r for r in rows if r.endswith(",benign")]
    path = project / "data" / f"{name}.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return f"data/{name}.csv"


def test_missing_data_file(project: Path) -> None:
    proc = run(["train", "data.path=data/nope.csv", "data.example=null"], project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "data/nope.csv", "does not exist")
    assert_nothing_registered(project)


def test_missing_label_column(project: Path) -> None:
    proc = run(["train", "data.label=outcome"], project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "outcome", "data.label")
    assert_nothing_registered(project)


def test_non_numeric_text_names_column_and_row_count(project: Path) -> None:
    rel = write_variant(project, "bad_numeric", "text-in-numeric")
    shutil.copy(
        project / "data" / "breast_cancer.schema.yaml", project / "data" / "bad_numeric.schema.yaml"
    )
    proc = run(["train", f"data.path={rel}", "data.example=null"], project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "mean radius", "3 row")
    assert_nothing_registered(project)


def test_empty_dataset(project: Path) -> None:
    rel = write_variant(project, "empty", "empty")
    proc = run(["train", f"data.path={rel}", "data.example=null"], project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "empty")
    assert_nothing_registered(project)


def test_single_class_label(project: Path) -> None:
    rel = write_variant(project, "one_class", "single-class")
    proc = run(["train", f"data.path={rel}", "data.example=null"], project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "single class", "benign")
    assert_nothing_registered(project)


def test_parity_failure_stops_export_and_registers_nothing(project: Path) -> None:
    proc = run(["train", "train.parity_tolerance=1e-30"], project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "parity")
    assert_nothing_registered(project)


def test_corrupted_onnx_in_a_baseline_bundle(project: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "broken"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"not an onnx model")
    (bundle / "signature.json").write_text("{}")
    (bundle / "MANIFEST.json").write_text('{"format_version": 1, "files": {}}')
    proc = run(
        ["train", f"evaluate.baselines=[{{name: old, model: '{bundle}'}}]"], project, check=False
    )
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "broken")
    assert_nothing_registered(project)


def test_unknown_config_key_and_bad_value_type(project: Path) -> None:
    proc = run(["train", "model.depth=3"], project, check=False)
    assert proc.returncode != 0 and "model.depth" in proc.stderr
    proc = run(["train", "train.seed=abc"], project, check=False)
    assert proc.returncode != 0 and "train.seed" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "@challenger"], "a command's options start with -- (e.g. --model @challenger)"),
        (["models", "train.seed=abc"], "could not be converted to Int"),
        (["models", "no.such.key=1"], "Could not override 'no.such.key'"),
    ],
)
def test_bad_overrides_of_plain_commands_say_what_an_override_is(
    project: Path, args: list[str], needle: str
) -> None:
    proc = run(args, project, check=False)
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "error: the config overrides", needle)


def test_unreachable_dvc_remote(project: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    proc = run(
        [
            "data",
            "push",
            "remote=s3",
            "remote.url=s3://nowhere/data",
            f"remote.endpoint_url={endpoint}",
        ],
        project,
        check=False,
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
    )
    assert proc.returncode == 2
    assert_clean_failure(proc.stderr, "storage")
