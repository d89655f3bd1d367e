"""Which batches of the prediction log may hold a request id: one Bloom filter per batch.

The log keeps a hand-over's requests as one packed row (:mod:`mlcycle.monitor.log_batches`)
and never writes a row per request, so no database index finds a request id. Each batch
carries instead a Bloom filter of its ids: at least 10 bits an id, rounded up to a power
of two (10 to 20 bits), 7 probes, so at most about 1 % of the batches let an absent id
through (0.07 % for a batch of 500 ids, 16 bits each). To find a request, the filters of
every batch are read (1 KB for 500 ids, against 16 KB of their text) and only the few
batches they point to are read in full and checked.

An id's 32-bit hash (its bytes as words, weighted and mixed, computed for a whole batch
at once with numpy) is spread over the filter by multiply-shift hashing with seven odd
multipliers; the filter's size is a power of two bits, so its length says how to read it.

Examples
--------
>>> f = id_filter(["a", "b", "c"])
>>> len(f), may_hold([f, None, id_filter(["x"])], ["b"]).tolist()
(8, [True, True, False])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["filter_of_text", "id_filter", "may_hold"]

_PROBES = np.array(
    [0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646D, 0xFD7046C5],
    dtype=np.uint32,
)
_BITS_PER_ID = 10
#: Filters of one size are tested together in blocks of this many (batch, id, probe) bits.
_BLOCK = 4_000_000


def _hashes(request_ids: Sequence[str]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    return _hashes_of_text("\n".join(request_ids), len(request_ids))


def _hashes_of_text(text: str, n: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """A 32-bit hash of each of the ``n`` line-separated ids of ``text``: its UTF-8 bytes
    as little-endian 32-bit words (zero-padded), each times an odd constant of its
    position, summed and mixed (MurmurHash3's finaliser). When every id has the same
    length (ids a server makes do), no id is split out of the text."""
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    data = text.encode()
    size = (len(data) + 1) // n
    if size * n == len(data) + 1:
        rows = np.frombuffer(data + b"\n", dtype=np.uint8).reshape(n, size)
        if bool((rows[:, -1] == 10).all()):  # ids never hold a line break: all one length
            padded = np.zeros((n, max(4, -(-(size - 1) // 4) * 4)), dtype=np.uint8)
            padded[:, : size - 1] = rows[:, :-1]
            return _mix(padded)
    parts = data.split(b"\n")
    width = max(4, -(-max(map(len, parts)) // 4) * 4)
    return _mix(np.array(parts, dtype=f"S{width}").view(np.uint8).reshape(n, width))


def _mix(padded: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    words = padded.view("<u4")
    weights = _weights(words.shape[1])
    with np.errstate(over="ignore"):
        h: np.ndarray[Any, np.dtype[np.uint32]] = (words * weights).sum(axis=1, dtype=np.uint32)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h


@functools.lru_cache(maxsize=64)
def _weights(words: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """One odd 32-bit weight per word position."""
    position = np.arange(words, dtype=np.uint64) * 2 + 1
    return ((position * 0x9E3779B1) & 0xFFFFFFFF).astype(np.uint32)


def _positions(hashes: np.ndarray[Any, Any], bits: int) -> np.ndarray[Any, Any]:
    """Per id, its probes' bit positions in a filter of ``bits`` bits (a power of two)."""
    shift = np.uint32(32 - (bits.bit_length() - 1))
    with np.errstate(over="ignore"):
        return (hashes[:, None] * _PROBES[None, :]) >> shift


def id_filter(request_ids: Sequence[str]) -> bytes:
    """The Bloom filter of ``request_ids``: a power of two bits, at least 64."""
    return filter_of_text("\n".join(request_ids), len(request_ids))


def filter_of_text(text: str, n: int) -> bytes:
    """:func:`id_filter` of the ``n`` ids of ``text``, one per line."""
    bits = 64
    while bits < _BITS_PER_ID * n:
        bits *= 2
    mask = np.zeros(bits, dtype=np.bool_)
    mask[_positions(_hashes_of_text(text, n), bits).ravel()] = True
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
