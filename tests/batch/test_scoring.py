"""Batch scoring of CSV and Parquet files with the local engine: predictions, id columns,
chunking, formats and the command's report."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from mlcycle.batch import ScoreOptions, add_arguments, run
from mlcycle.batch.local import score_file
from mlcycle.batch.progress import progress_bar
from mlcycle.batch.readers import ChunkSource, rechunk
from mlcycle.batch.scoring import default_id_columns
from mlcycle.bundle import Bundle
from tests._bundles import build_bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Bundle]:
    """A factory of real bundles by kind, each trained once per module."""
    built: dict[str, Bundle] = {}

    def get(kind: str) -> Bundle:
        if kind not in built:
            dest = tmp_path_factory.mktemp(kind) / "bundle"
            built[kind] = Bundle.load(build_bundle(kind, dest))
        return built[kind]

    return get


@pytest.fixture(params=["mixed", "cancer"])
def bundle(request: pytest.FixtureRequest, bundles: Callable[[str], Bundle]) -> Bundle:
    return bundles(str(request.param))


@pytest.fixture
def mixed(bundles: Callable[[str], Bundle]) -> Bundle:
    return bundles("mixed")


def make_table(bundle: Bundle, rows: int, seed: int = 0) -> pa.Table:
    """``row_id``, every feature (about 15% missing; unknown categories too), ``note``."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"row_id": pa.array(np.arange(rows) * 10)}
    for feature in bundle.signature["features"]:
        missing = rng.random(rows) < 0.15
        if feature["kind"] == "categorical":
            choices = np.array([*feature["categories"], "unseen"], dtype=object)
            values = choices[rng.integers(0, len(choices), rows)]
            columns[feature["name"]] = pa.array(values, type=pa.string(), mask=missing)
        else:
            columns[feature["name"]] = pa.array(rng.normal(0, 8, rows), mask=missing)
    columns["note"] = pa.array([f"n{i}" for i in range(rows)])
    return pa.table(columns)


def write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def read(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        return pa_csv.read_csv(path)
    return pq.read_table(path)


def expected(bundle: Bundle, table: pa.Table) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Labels and probabilities of ``bundle.predict`` on the table's rows (its own path)."""
    columns = {name: table.column(name).to_pylist() for name in bundle.feature_names_used}
    return bundle.predict(bundle.inputs_from_columns(columns))


def assert_predictions(bundle: Bundle, table: pa.Table, out: pa.Table) -> None:
    labels, proba = expected(bundle, table)
    assert out.column("prediction").to_pylist() == labels.tolist()
    for i, cls in enumerate(bundle.classes):
        got = np.asarray(out.column(f"proba_{cls}").to_pylist(), dtype=np.float64)
        np.testing.assert_allclose(got, proba[:, i], rtol=0, atol=1e-6)


def score(bundle: Bundle, source: Path, out: Path, **kw: Any) -> pa.Table:
    options = ScoreOptions(source, out, progress=False, **kw)
    report = score_file(bundle, options, model_version="7")
    assert report.rows == read(out).num_rows
    return read(out)


@pytest.mark.parametrize(
    ("src", "dst"), [("csv", "csv"), ("parquet", "parquet"), ("csv", "parquet")]
)
def test_predictions_equal_bundle_predict(
    bundle: Bundle, tmp_path: Path, src: str, dst: str
) -> None:
    table = make_table(bundle, 300)
    out = score(bundle, write(table, tmp_path / f"in.{src}"), tmp_path / f"out.{dst}")
    assert out.column_names == [
        "row_id",
        "prediction",
        *(f"proba_{c}" for c in bundle.classes),
    ]
    assert out.column("row_id").to_pylist() == table.column("row_id").to_pylist()
    assert_predictions(bundle, table, out)


def test_parquet_output_types_and_model_metadata(mixed: Bundle, tmp_path: Path) -> None:
    out = score(mixed, write(make_table(mixed, 50), tmp_path / "in.csv"), tmp_path / "o.parquet")
    assert out.schema.field("prediction").type == pa.string()
    assert {out.schema.field(f"proba_{c}").type for c in mixed.classes} == {pa.float32()}
    meta = pq.read_schema(tmp_path / "o.parquet").metadata
    assert meta[b"mlcycle.model_version"] == b"7"
    assert meta[b"mlcycle.model_name"] == b"mixed"


def test_named_id_columns_are_carried_in_order(mixed: Bundle, tmp_path: Path) -> None:
    table = make_table(mixed, 40)
    source = write(table, tmp_path / "in.parquet")
    out = score(mixed, source, tmp_path / "o.parquet", id_columns=("note", "row_id"))
    assert out.column_names[:3] == ["note", "row_id", "prediction"]
    assert out.column("note").to_pylist() == table.column("note").to_pylist()


def test_no_id_columns_when_asked_for_none(mixed: Bundle, tmp_path: Path) -> None:
    source = write(make_table(mixed, 40), tmp_path / "in.csv")
    out = score(mixed, source, tmp_path / "o.csv", id_columns=())
    assert out.column_names[0] == "prediction"


def test_default_id_columns_are_id_like_non_features() -> None:
    assert default_id_columns(["id", "x", "user_id", "idea", "x_id"], ["x", "x_id"]) == (
        "id",
        "user_id",
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_small_chunks_give_the_same_output_as_one_chunk(
    mixed: Bundle, tmp_path: Path, fmt: str
) -> None:
    table = make_table(mixed, 250)
    source = write(table, tmp_path / f"in.{fmt}")
    whole = score(mixed, source, tmp_path / f"whole.{fmt}")
    report = score_file(
        mixed, ScoreOptions(source, tmp_path / f"chunked.{fmt}", chunk_rows=7, progress=False)
    )
    assert report.chunks == 36
    chunked = read(tmp_path / f"chunked.{fmt}")
    # onnxruntime may sum trees in another order for another batch size: the last bit
    # of a probability can differ, nothing else.
    assert chunked.select(["row_id", "prediction"]).equals(whole.select(["row_id", "prediction"]))
    assert chunked.schema == whole.schema
    for name in whole.column_names[2:]:
        np.testing.assert_allclose(chunked[name].to_numpy(), whole[name].to_numpy(), atol=1e-6)
    assert_predictions(mixed, table, chunked)


def test_csv_reads_categorical_digits_as_strings_and_empty_as_missing(
    mixed: Bundle, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("x0,color,x1,size,x2\n1.5,7,,S,0\n,,2,,NA\n-3,red,1e2,L,\n")
    out = score(mixed, source, tmp_path / "o.parquet")
    columns: dict[str, list[Any]] = {
        "x0": [1.5, None, -3.0],
        "color": ["7", "", "red"],
        "x1": [None, 2.0, 100.0],
        "size": ["S", "", "L"],
        "x2": [0.0, None, None],
    }
    labels, proba = mixed.predict(mixed.inputs_from_columns(columns))
    assert out.column("prediction").to_pylist() == labels.tolist()
    np.testing.assert_allclose(out.column("proba_high").to_numpy(), proba[:, 0], atol=1e-6)


def test_parquet_numbers_stored_as_text_are_parsed(mixed: Bundle, tmp_path: Path) -> None:
    table = make_table(mixed, 30)
    x0 = table.column("x0").to_pylist()
    x0[3] = None
    table = table.set_column(1, "x0", pa.array(x0, pa.float64()))
    text = ["" if v is None else repr(v) for v in x0]  # "" is missing, as in a CSV
    as_text = table.set_column(1, "x0", pa.array(text, pa.string()))
    out = score(mixed, write(as_text, tmp_path / "in.parquet"), tmp_path / "o.parquet")
    assert_predictions(mixed, table, out)


def test_output_format_flag_overrides_the_suffix(mixed: Bundle, tmp_path: Path) -> None:
    source = write(make_table(mixed, 20), tmp_path / "in.csv")
    score_file(
        mixed,
        ScoreOptions(source, tmp_path / "scores.out", output_format="parquet", progress=False),
    )
    assert pq.read_table(tmp_path / "scores.out").num_rows == 20


def test_empty_input_writes_a_header_only_output(mixed: Bundle, tmp_path: Path) -> None:
    source = write(make_table(mixed, 5).slice(0, 0), tmp_path / "in.parquet")
    out = score(mixed, source, tmp_path / "o.parquet")
    assert out.num_rows == 0
    assert "prediction" in out.column_names


def test_run_prints_a_one_line_report(
    mixed: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(make_table(mixed, 120), tmp_path / "in.csv")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args([str(source), "-o", str(tmp_path / "o.csv"), "--chunk-rows", "50"])
    report = run(ns, mixed.path, "3")
    assert (report.rows, report.chunks, report.model_version) == (120, 3, "3")
    line = capsys.readouterr().out.strip()
    assert line.startswith("scored 120 rows in ") and "rows/s" in line
    assert_predictions(mixed, make_table(mixed, 120), read(tmp_path / "o.csv"))


def test_chunk_source_cuts_fixed_size_chunks_and_counts_progress(
    mixed: Bundle, tmp_path: Path
) -> None:
    source = write(make_table(mixed, 100), tmp_path / "in.parquet")
    with ChunkSource(source, "parquet", ["row_id"], {}, 30) as chunks:
        assert chunks.total == 100
        assert [b.num_rows for b in chunks] == [30, 30, 30, 10]
        assert chunks.position() == 100


def test_rechunk_keeps_rows_in_order() -> None:
    parts = [pa.record_batch({"x": list(range(i, i + n))}) for i, n in [(0, 3), (3, 1), (4, 6)]]
    out = list(rechunk(iter(parts), 4))
    assert [b.num_rows for b in out] == [4, 4, 2]
    assert [v for b in out for v in b.column(0).to_pylist()] == list(range(10))


def test_progress_bar_draws_without_error() -> None:
    with progress_bar(True, 10, "in.csv") as update:
        update(5, 50)
        update(10, 100)
