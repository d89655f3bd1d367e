"""Data versions: the md5 DVC records, tracked or not."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from mlcycle.data import data_version, file_md5, write_example
from mlcycle.data import dvc as dvc_wrapper
from mlcycle.exceptions import DataError


def test_file_md5_streams_large_files(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    content = bytes(range(256)) * 20_000  # ~5 MiB, several chunks
    path.write_bytes(content)
    assert file_md5(path) == hashlib.md5(content).hexdigest()


def test_file_md5_of_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        file_md5(tmp_path / "none.csv")


def test_data_version_of_untracked_file_is_relative_and_untracked(tmp_path: Path) -> None:
    path = tmp_path / "data" / "d.csv"
    path.parent.mkdir()
    path.write_bytes(b"x,y\r\n1,a\r\n")
    version = data_version(path, tmp_path)
    assert version.path == "data/d.csv"
    assert version.md5 == hashlib.md5(b"x,y\r\n1,a\r\n").hexdigest()
    assert (version.tracked, version.size) == (False, 10)


def test_data_version_outside_root_keeps_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x\n")
    assert data_version(path, tmp_path / "elsewhere").path == path.resolve().as_posix()


def test_data_version_ignores_dvc2_hash_and_broken_dvc_files(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x\n")
    meta = tmp_path / "d.csv.dvc"
    meta.write_text(yaml.safe_dump({"outs": [{"md5": file_md5(path), "path": "d.csv"}]}))
    assert not data_version(path, tmp_path).tracked
    meta.write_text(": not yaml [")
    assert not data_version(path, tmp_path).tracked


@pytest.mark.parametrize("content", ["crlf", "example"])
def test_md5_equals_hash_written_by_real_dvc_add(repo: Path, content: str) -> None:
    path = repo / "data" / "d.csv"
    if content == "crlf":
        path.parent.mkdir()
        path.write_bytes(b"a,b\r\n1,2\r\n\xff\xfe binary tail")
    else:
        write_example("breast_cancer", path)
    meta = dvc_wrapper.add(repo, path)
    recorded = yaml.safe_load(meta.read_text())["outs"][0]
    assert recorded["hash"] == "md5"
    assert recorded["md5"] == file_md5(path)
    version = data_version(path, repo)
    assert version.tracked and version.md5 == recorded["md5"] and version.size == recorded["size"]
    with path.open("ab") as fh:
        fh.write(b"3,4\n")
    assert not data_version(path, repo).tracked
