"""The version of a data file: the content hash DVC records for it.

DVC 3 hashes a file as the plain MD5 of its bytes (``hash: md5`` in the ``.dvc`` file), so
the version is the same whether the file is tracked or not; ``tracked`` says whether a
``.dvc`` file next to the data records that very hash.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml

from mlcycle.data.dataset import DataVersion
from mlcycle.exceptions import DataError

__all__ = ["data_version", "dvc_file", "file_md5", "recorded_md5"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes, read in 1 MiB chunks (the hash DVC 3 records).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    str
        32 lowercase hex digits.

    Raises
    ------
    DataError
        When the file does not exist or cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> file_md5(p)
    '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with Path(path).open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"data file {path} could not be read: {exc}") from None
    return digest.hexdigest()


def dvc_file(path: Path) -> Path:
    """The ``.dvc`` file DVC writes for ``path`` (``data.csv`` → ``data.csv.dvc``)."""
    path = Path(path)
    return path.with_name(path.name + ".dvc")


def recorded_md5(path: Path) -> str | None:
    """The MD5 recorded for ``path`` in its ``.dvc`` file, or None when untracked.

    Only DVC 3 entries count (``hash: md5``): DVC 2 files hashed text files after
    converting line endings, so their hash is not comparable with :func:`file_md5`.
    An unreadable ``.dvc`` file is logged and treated as untracked.

    Parameters
    ----------
    path
        The data file (not the ``.dvc`` file).

    Returns
    -------
    str or None
        The recorded hash.
    """
    meta = dvc_file(path)
    if not meta.is_file():
        return None
    try:
        data: Any = yaml.safe_load(meta.read_text(encoding="utf-8"))
        out = data["outs"][0]
        md5 = out["md5"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        logger.warning("ignoring %s: not a readable DVC file (%s)", meta, exc)
        return None
    if out.get("hash") != "md5":
        logger.warning(
            "%s was written by DVC 2 (no 'hash: md5'); run `dvc add %s` again to record a "
            "DVC 3 hash",
            meta,
            path.name,
        )
        return None
    return str(md5)


def data_version(path: Path, root: Path) -> DataVersion:
    """The :class:`DataVersion` of a data file.

    Parameters
    ----------
    path
        The data file.
    root
        The project root; the version's ``path`` is relative to it when the file is
        inside it (POSIX separators), else absolute.

    Returns
    -------
    DataVersion
        MD5 and size of the file; ``tracked`` is True only when the file's ``.dvc`` file
        records this very hash (the file is unchanged since ``dvc add``).

    Raises
    ------
    DataError
        When the file does not exist or cannot be read.
    """
    path = Path(path)
    md5 = file_md5(path)
    recorded = recorded_md5(path)
    if recorded is not None and recorded != md5:
        logger.warning(
            "%s changed since it was last added to DVC (recorded %s, now %s); this run "
            "records it as untracked: `mlcycle data add %s` makes it a data version",
            path,
            recorded,
            md5,
            path,
        )
    absolute = path.resolve()
    try:
        shown = absolute.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        shown = absolute.as_posix()
    return DataVersion(md5=md5, path=shown, tracked=recorded == md5, size=absolute.stat().st_size)
