"""Which batches of the prediction log may hold a request id: one Bloom filter per batch.

The log keeps a hand-over's requests as one packed row (:mod:`mlcycle.monitor.log_batches`)
and never writes a row per request, so no database index finds a request id. Each batch
carries instead a Bloom filter of its ids, about 1.3 bytes an id (a 1 % false-positive
rate at 10 bits an id, 7 probes): to find a request, the filters of every batch are read
(a 37-character id costs the filter 1/30 of its text) and only the few batches they
point to are read in full and checked.

An id's 32-bit CRC is spread over the filter by multiply-shift hashing with seven odd
multipliers; the filter's size is a power of two bits, so its length says how to read it.

Examples
--------
>>> f = id_filter(["a", "b", "c"])
>>> len(f), may_hold([f, None, id_filter(["x"])], ["b"]).tolist()
(8, [True, True, False])
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["id_filter", "may_hold"]

_PROBES = np.array(
    [0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646D, 0xFD7046C5],
    dtype=np.uint32,
)
_BITS_PER_ID = 10
#: Filters of one size are tested together in blocks of this many (batch, id, probe) bits.
_BLOCK = 4_000_000


def _hashes(request_ids: Sequence[str]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    encoded = "\n".join(request_ids).encode().split(b"\n")  # ids never hold a line break
    return np.array(list(map(zlib.crc32, encoded)), dtype=np.uint32)


def _positions(hashes: np.ndarray[Any, Any], bits: int) -> np.ndarray[Any, Any]:
    """Per id, its probes' bit positions in a filter of ``bits`` bits (a power of two)."""
    shift = np.uint32(32 - (bits.bit_length() - 1))
    with np.errstate(over="ignore"):
        return (hashes[:, None] * _PROBES[None, :]) >> shift


def id_filter(request_ids: Sequence[str]) -> bytes:
    """The Bloom filter of ``request_ids``: a power of two bits, at least 64."""
    bits = 64
    while bits < _BITS_PER_ID * len(request_ids):
        bits *= 2
    mask = np.zeros(bits, dtype=np.bool_)
    mask[_positions(_hashes(request_ids), bits).ravel()] = True
    return np.packbits(mask).tobytes()


def may_hold(
    filters: Sequence[bytes | None], request_ids: Sequence[str]
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per filter, whether its batch may hold any of ``request_ids``.

    A missing (``None``) or malformed filter may hold anything. False positives happen
    (about 1 % of batches per id); false negatives never.
    """
    out = np.ones(len(filters), dtype=np.bool_)
    if not request_ids:
        out[:] = False
        return out
    hashes = _hashes(request_ids)
    by_size: dict[int, list[int]] = {}
    for i, f in enumerate(filters):
        size = len(f) if f is not None else 0
        if size >= 8 and size & (size - 1) == 0:
            by_size.setdefault(size, []).append(i)
    for size, members in by_size.items():
        table = np.frombuffer(b"".join(filters[i] or b"" for i in members), dtype=np.uint8)
        table = table.reshape(len(members), size)
        positions = _positions(hashes, size * 8)
        found = np.zeros(len(members), dtype=np.bool_)
        step = max(1, _BLOCK // (len(members) * len(_PROBES)))
        for start in range(0, len(hashes), step):
            pos = positions[start : start + step]
            shifts = (7 - (pos & 7)).astype(np.uint8)
            probed: np.ndarray[Any, Any] = (table[:, pos >> 3] >> shifts) & 1  # batch, id, probe
            found |= np.any(np.all(probed, axis=2), axis=1)
        out[members] = found
    return out
