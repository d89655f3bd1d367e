"""The Ray engine on a local Ray instance (one CPU): the same predictions as the local
engine, and the same errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from mlcycle.batch import ScoreOptions
from mlcycle.batch.local import score_file
from mlcycle.batch.ray_engine import score_with_ray
from mlcycle.batch.readers import NotNumericError
from mlcycle.bundle import Bundle
from tests._bundles import build_bundle

ray = pytest.importorskip("ray")

# Starting Ray and its first Dataset takes ~15-50 s on two busy cores (setup counts
# towards the limit): 60 s timed out in CI under load.
pytestmark = [
    pytest.mark.timeout(180),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance for this module; the engine reuses it and leaves it up."""
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(build_bundle("mixed", tmp_path_factory.mktemp("mixed") / "bundle"))


def mixed_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "row_id": np.arange(rows),
            "x0": pa.array(rng.normal(size=rows), mask=rng.random(rows) < 0.1),
            "color": pa.array(rng.choice(["red", "green", "blue", "pink"], rows)),
            "x1": rng.normal(size=rows),
            "size": pa.array(rng.choice(["S", "M", "L", ""], rows)),
            "x2": rng.normal(size=rows),
        }
    )


def ray_options(source: Path, out: Path, **kw: object) -> ScoreOptions:
    return ScoreOptions(source, out, engine="ray", ray_cpus=1, progress=False, **kw)  # type: ignore[arg-type]


def read(path: Path) -> pa.Table:
    return pa_csv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)


@pytest.mark.parametrize(("src", "dst"), [("parquet", "csv"), ("csv", "parquet")])
def test_ray_engine_matches_the_local_engine(
    local_ray: None, mixed: Bundle, tmp_path: Path, src: str, dst: str
) -> None:
    table = mixed_table(3000)
    source = tmp_path / f"in.{src}"
    if src == "csv":
        pa_csv.write_csv(table, source)
    else:
        pq.write_table(table, source, row_group_size=700)
    local = score_file(mixed, ScoreOptions(source, tmp_path / f"local.{dst}", progress=False))
    remote = score_with_ray(
        mixed, ray_options(source, tmp_path / f"ray.{dst}", chunk_rows=500), model_version="2"
    )

    assert (local.rows, remote.rows) == (3000, 3000)
    assert (remote.engine, remote.model_version) == ("ray", "2")
    want, got = read(tmp_path / f"local.{dst}"), read(tmp_path / f"ray.{dst}")
    assert got.schema == want.schema
    assert got.column("row_id").to_pylist() == table.column("row_id").to_pylist()
    assert got.column("prediction").equals(want.column("prediction"))
    for name in want.column_names[2:]:
        np.testing.assert_allclose(got[name].to_numpy(), want[name].to_numpy(), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [source.name, f"local.{dst}", f"ray.{dst}"]
    )


def test_ray_engine_reports_text_in_a_numeric_column(
    local_ray: None, mixed: Bundle, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("x0,color,x1,size,x2\n1,red,2,S,3\n1,red,oops,S,3\n")
    with pytest.raises(NotNumericError, match=r"'x1' .* holds 'oops' in row 2 "):
        score_with_ray(mixed, ray_options(source, tmp_path / "out.csv"))
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]
