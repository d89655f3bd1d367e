"""Bad input to batch scoring: a clear MlcycleError naming the problem and the fix, and
never an output file (complete or partial) left behind."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from mlcycle.batch import ScoreOptions, add_arguments
from mlcycle.batch.local import score_file
from mlcycle.batch.readers import NotNumericError
from mlcycle.bundle import Bundle
from mlcycle.exceptions import (
    ConfigError,
    DataError,
    MissingDependencyError,
    MlcycleError,
    SchemaError,
)
from tests._bundles import build_bundle

HEADER = "row_id,x0,color,x1,size,x2"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(build_bundle("mixed", tmp_path_factory.mktemp("mixed") / "bundle"))


def csv_file(path: Path, rows: int, bad_row: int | None = None, bad: str = "abc") -> Path:
    """A valid mixed-bundle CSV of ``rows`` rows; ``x1`` of 0-based ``bad_row`` is ``bad``."""
    lines = [HEADER]
    for i in range(rows):
        x1 = bad if i == bad_row else f"{i % 7 - 3}.25"
        lines.append(f"{i},{i % 5 - 2}.5,{('red', 'blue', '')[i % 3]},{x1},S,{i % 3}")
    path.write_text("\n".join(lines) + "\n")
    return path


def score(bundle: Bundle, source: Path, out: Path, **kw: object) -> None:
    score_file(bundle, ScoreOptions(source, out, progress=False, **kw))  # type: ignore[arg-type]


def leftovers(folder: Path, *inputs: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p not in inputs)


def test_missing_input_file(mixed: Bundle, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"input file .*nope\.csv does not exist"):
        score(mixed, tmp_path / "nope.csv", tmp_path / "o.csv")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "out", "match"),
    [
        ("in.txt", "o.csv", r"format of .*in\.txt .*suffix '\.txt'.*--input-format"),
        ("in.csv", "o.json", r"format of .*o\.json .*suffix '\.json'.*--output-format"),
    ],
)
def test_unknown_format_names_the_flag(
    mixed: Bundle, tmp_path: Path, name: str, out: str, match: str
) -> None:
    source = csv_file(tmp_path / name, 3)
    with pytest.raises(ConfigError, match=match):
        score(mixed, source, tmp_path / out)
    assert leftovers(tmp_path, source) == []


def test_missing_feature_column_is_named_with_the_file_columns(
    mixed: Bundle, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("row_id,x0,color,size,x2\n1,0.5,red,S,1\n")
    with pytest.raises(SchemaError, match=r"\['x1'\] are missing .*the file has \['row_id'"):
        score(mixed, source, tmp_path / "o.csv")
    assert leftovers(tmp_path, source) == []


def test_missing_id_column_is_named(mixed: Bundle, tmp_path: Path) -> None:
    source = csv_file(tmp_path / "in.csv", 3)
    with pytest.raises(SchemaError, match=r"id column\(s\) \['order_id'\] are not in"):
        score(mixed, source, tmp_path / "o.csv", id_columns=("order_id",))


def test_non_numeric_text_names_column_row_and_value(mixed: Bundle, tmp_path: Path) -> None:
    source = csv_file(tmp_path / "in.csv", 10, bad_row=4, bad="twelve")
    with pytest.raises(NotNumericError, match=r"column 'x1' .* holds 'twelve' in row 5 "):
        score(mixed, source, tmp_path / "o.csv")
    assert leftovers(tmp_path, source) == []


def test_non_numeric_text_deep_in_a_large_csv_leaves_no_partial_output(
    mixed: Bundle, tmp_path: Path
) -> None:
    source = csv_file(tmp_path / "in.csv", 60_000, bad_row=55_000)  # > one 1 MiB block
    with pytest.raises(NotNumericError, match=r"'x1' .* holds 'abc' in row 55,001 "):
        score(mixed, source, tmp_path / "o.parquet", chunk_rows=1000)
    assert leftovers(tmp_path, source) == []


def test_non_numeric_text_in_parquet_fails_mid_stream_and_keeps_the_old_output(
    mixed: Bundle, tmp_path: Path
) -> None:
    table = pa_csv.read_csv(
        csv_file(tmp_path / "t.csv", 100, bad_row=57),
        convert_options=pa_csv.ConvertOptions(column_types={"x1": pa.string()}),
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    out = tmp_path / "o.csv"
    out.write_text("old\n")
    with pytest.raises(NotNumericError, match=r"'x1' holds 'abc' in row 58 "):
        score(mixed, source, out, chunk_rows=10, overwrite=True)
    assert out.read_text() == "old\n"
    assert leftovers(tmp_path, source, tmp_path / "t.csv") == ["o.csv"]


def test_existing_output_is_refused_without_overwrite(mixed: Bundle, tmp_path: Path) -> None:
    source = csv_file(tmp_path / "in.csv", 5)
    out = tmp_path / "o.csv"
    out.write_text("keep me\n")
    with pytest.raises(DataError, match=r"o\.csv already exists; pass --overwrite"):
        score(mixed, source, out)
    assert out.read_text() == "keep me\n"
    score(mixed, source, out, overwrite=True)
    assert pa_csv.read_csv(out).num_rows == 5


def test_missing_output_folder(mixed: Bundle, tmp_path: Path) -> None:
    source = csv_file(tmp_path / "in.csv", 5)
    with pytest.raises(DataError, match=r"output folder .*nowhere does not exist; create it"):
        score(mixed, source, tmp_path / "nowhere" / "o.csv")
    assert leftovers(tmp_path, source) == []


def test_output_that_is_the_input_is_refused(mixed: Bundle, tmp_path: Path) -> None:
    source = csv_file(tmp_path / "in.csv", 5)
    with pytest.raises(DataError, match="is the input file"):
        score(mixed, source, source, overwrite=True)
    assert source.read_text().startswith(HEADER)


def test_file_that_is_not_parquet(mixed: Bundle, tmp_path: Path) -> None:
    source = csv_file(tmp_path / "in.parquet", 5)
    with pytest.raises(DataError, match=r"cannot read .*in\.parquet as PARQUET"):
        score(mixed, source, tmp_path / "o.csv")
    assert leftovers(tmp_path, source) == []


def test_numeric_feature_of_a_non_number_type(mixed: Bundle, tmp_path: Path) -> None:
    table = pa.table(
        {
            "x0": pa.array([[1.0], [2.0]]),
            "color": ["red", "blue"],
            "x1": [1.0, 2.0],
            "size": ["S", "M"],
            "x2": np.array([0.0, 1.0]),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    with pytest.raises(SchemaError, match=r"'x0' has type list<.*>, which is not a number type"):
        score(mixed, source, tmp_path / "o.parquet")
    assert leftovers(tmp_path, source) == []


def test_every_error_is_an_mlcycle_error() -> None:
    assert issubclass(NotNumericError, DataError)
    assert issubclass(SchemaError, MlcycleError)


def test_chunk_rows_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["in.csv", "-o", "o.csv", "--chunk-rows", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_ray_engine_without_ray_names_the_extra(
    mixed: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.batch.ray_engine import score_with_ray

    monkeypatch.setitem(sys.modules, "ray.data", None)
    source = csv_file(tmp_path / "in.csv", 5)
    options = ScoreOptions(source, tmp_path / "o.csv", engine="ray", progress=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mlcycle\[ray\]'"):
        score_with_ray(mixed, options)
    assert leftovers(tmp_path, source) == []
