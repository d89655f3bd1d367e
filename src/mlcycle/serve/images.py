"""Judge the values of an image input: one image per row, of the model's shape.

An image model has one input, ``image``: float32 ``[N, C, H, W]`` (see "Model input
layout" in ``docs/architecture.md``). In JSON a row's image is a nested list of numbers
``[C][H][W]``, or ``[H][W]`` when the model takes one channel; as an Open Inference
Protocol tensor the whole batch is ``[N, C, H, W]`` (or ``[N, H, W]`` for one channel).
Every pixel must be a finite number; anything else is a 422 naming the field and the
shape the model expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcycle.serve.errors import RequestError
from mlcycle.serve.values import Locate, json_type, short

__all__ = ["describe_shape", "image_block", "image_tensor"]


def describe_shape(shape: Sequence[int]) -> str:
    """The shape a model expects, in words.

    Examples
    --------
    >>> describe_shape((1, 8, 8))
    '[1, 8, 8] (1 channel, 8x8) or [8, 8]'
    >>> describe_shape((3, 4, 5))
    '[3, 4, 5] (3 channels, 4x5)'
    """
    c, h, w = shape
    text = f"[{c}, {h}, {w}] ({c} channel{'s' if c != 1 else ''}, {h}x{w})"
    return text + (f" or [{h}, {w}]" if c == 1 else "")


def image_block(
    feature: str, shape: tuple[int, int, int], raw: Any, locate: Locate
) -> np.ndarray[Any, Any]:
    """Rows holding one image each -> float32 ``[N, C, H, W]``, or a 422 for the first bad one.

    Parameters
    ----------
    feature
        The image feature's name.
    shape
        ``(C, H, W)`` the model takes.
    raw
        Rows (sequences whose only value is the image).
    locate
        Names a value's field for the error.

    Examples
    --------
    >>> image_block("im", (1, 2, 2), [([[0, 1], [2, 3]],)], lambda i, f: f"r[{i}].{f}").shape
    (1, 1, 2, 2)
    """
    out = np.empty((len(raw), *shape), dtype=np.float32)
    for i, row in enumerate(raw):
        out[i] = _one(row[0], feature, shape, locate(i, feature))
    return out


def image_tensor(
    arr: np.ndarray[Any, Any], feature: str, shape: tuple[int, int, int], where: str
) -> np.ndarray[Any, Any]:
    """An OIP tensor ``[N, C, H, W]`` (or ``[N, H, W]`` for one channel) -> float32.

    Raises
    ------
    RequestError
        422 for another shape, values that are not numbers, or non-finite pixels.
    """
    if arr.ndim == 3 and shape[0] == 1:
        arr = arr[:, None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != shape:
        raise RequestError(
            422,
            "wrong_shape",
            f"input {feature!r} has shape {list(arr.shape)}; the model expects "
            f"[N, {', '.join(map(str, shape))}] (N images of "
            f"{describe_shape(shape)})",
            where,
        )
    if arr.dtype.kind not in "fiub":
        bad = next((v for v in arr.ravel().tolist() if not _number(v)), None)
        raise RequestError(
            422,
            "wrong_type",
            f"image input {feature!r} holds {json_type(bad)} {short(bad)}; send numbers",
            where,
        )
    return _finite(arr.astype(np.float32), feature, where)


def _one(v: Any, feature: str, shape: tuple[int, int, int], where: str) -> np.ndarray[Any, Any]:
    if v is None:
        raise RequestError(
            422,
            "missing_value",
            f"image feature {feature!r} at {where} is missing (null); send the image as a "
            f"nested list of numbers of shape {describe_shape(shape)}",
            where,
        )
    if not isinstance(v, list | np.ndarray):
        raise RequestError(
            422,
            "wrong_type",
            f"image feature {feature!r} at {where} is {json_type(v)} {short(v)}; send the "
            f"image as a nested list of numbers of shape {describe_shape(shape)}",
            where,
        )
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is None or arr.dtype == object:
        got = _nested_shape(v)
        if got is None:
            raise RequestError(
                422,
                "wrong_shape",
                f"image feature {feature!r} at {where} is not a rectangular array (its rows "
                f"differ in length); the model expects {describe_shape(shape)}",
                where,
            )
        bad = _first_non_number(v)
        raise RequestError(
            422,
            "wrong_type",
            f"image feature {feature!r} at {where} holds {json_type(bad)} {short(bad)}; "
            "every pixel must be a number",
            where,
        )
    if arr.dtype.kind not in "fiub":
        bad = _first_non_number(v)
        raise RequestError(
            422,
            "wrong_type",
            f"image feature {feature!r} at {where} holds {json_type(bad)} {short(bad)}; "
            "every pixel must be a number",
            where,
        )
    image = arr[None] if arr.ndim == 2 and shape[0] == 1 else arr
    if image.shape != shape:
        raise RequestError(
            422,
            "wrong_shape",
            f"image feature {feature!r} at {where} has shape {list(arr.shape)}; the model "
            f"expects {describe_shape(shape)}",
            where,
        )
    return _finite(image.astype(np.float32), feature, where)


def _finite(arr: np.ndarray[Any, Any], feature: str, where: str) -> np.ndarray[Any, Any]:
    if not np.isfinite(arr).all():
        raise RequestError(
            422,
            "not_finite",
            f"image feature {feature!r} at {where} holds NaN or infinite pixels (or values "
            "beyond float32's range); every pixel must be a finite number",
            where,
        )
    return arr


def _number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _nested_shape(v: Any, depth: int = 0) -> list[int] | None:
    """The shape of a nested list, ``None`` when it is ragged (or nested past 4 levels)."""
    if not isinstance(v, list | tuple):
        return []
    if depth >= 4:
        return None
    inner = [_nested_shape(x, depth + 1) for x in v]
    if any(s is None for s in inner) or any(s != inner[0] for s in inner[1:]):
        return None
    return [len(v), *(inner[0] or [])]


def _first_non_number(v: Any) -> Any:
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, list | tuple):
            stack.extend(reversed(x))
        elif not _number(x) and not isinstance(x, bool):
            return x
    return None
