"""Which arm answers a request: weights, a sticky key, and a header that forces an arm.

A request's key (a header's value, a feature's value in its first row, or else its
request id) is hashed to a bucket in ``[0, 100)``; the challenger answers when the bucket
is below its weight. The hash is stable across processes and restarts (CRC-32, not
Python's salted ``hash``), so one user sticks to one arm on every replica, and a user
routed to the challenger at 5 % stays there at 25 % (buckets below 5 are below 25).
Shadow mirroring uses the same bucket against the shadow percentage.

``X-Model-Arm: champion|challenger`` forces an arm (for testing a rollout by hand).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle.rollout.settings import RolloutSettings
from mlcycle.serve.errors import RequestError

__all__ = ["ARMS", "ARM_HEADER", "Routing", "RoutingKey", "bucket", "signature_problems"]

#: The request header that forces an arm.
ARM_HEADER = "x-model-arm"
#: The arms a request can be answered by.
ARMS = ("champion", "challenger")


def bucket(key: str) -> float:
    """A stable number in ``[0, 100)`` for ``key`` (CRC-32, two decimals).

    Examples
    --------
    >>> bucket("user-42") == bucket("user-42")
    True
    >>> 0 <= bucket("anything") < 100
    True
    """
    return (zlib.crc32(key.encode("utf-8", "surrogatepass")) % 10_000) / 100.0


class RoutingKey:
    """Reads a request's routing key, per ``serve.rollout.key``.

    Parameters
    ----------
    setting
        ``header:<name>``, ``feature:<name>`` or empty (the request id).
    blocks
        The model's input blocks: ``(block name, feature names)``, to find a feature.

    Examples
    --------
    >>> RoutingKey("header:X-User", []).of({"x-user": "ann"}, "r1", {})
    'ann'
    >>> RoutingKey("", []).of({}, "r1", {})
    'r1'
    """

    def __init__(self, setting: str, blocks: Sequence[tuple[str, Sequence[str]]]) -> None:
        kind, _, name = setting.partition(":")
        self.header = name.lower() if kind == "header" else None
        self.feature: tuple[str, int] | None = None
        if kind == "feature":
            for block, features in blocks:
                if name in features:
                    self.feature = (block, list(features).index(name))
            if self.feature is None:
                raise RequestError(
                    422,
                    "unknown_feature",
                    f"serve.rollout.key names feature {name!r}, which the model does not have",
                )

    def of(self, headers: Mapping[str, str], request_id: str, inputs: Mapping[str, Any]) -> str:
        """The key of a request (falls back to its id when the header or feature is absent)."""
        if self.header is not None:
            return headers.get(self.header) or request_id
        if self.feature is not None:
            block, column = self.feature
            values = inputs.get(block)
            if values is not None and len(values):
                value = np.asarray(values)[0, column]
                return str(value.item() if hasattr(value, "item") else value)
        return request_id


@dataclass(frozen=True)
class Routing:
    """How requests are split right now (replaced whole when a rollout moves).

    ``arms`` holds the loaded arms by name (the server's own objects); ``weight`` is the
    challenger's percent of live traffic and ``shadow_percent`` the share mirrored to it.
    """

    arms: Mapping[str, Any]
    weight: float = 0.0
    shadow_percent: float = 0.0
    rollout_id: int | None = None
    revision: int = -1
    phase: str = ""
    state: str = ""
    key: RoutingKey | None = field(default=None, compare=False)
    #: The rollout's settings (its snapshot in the store), while one runs.
    settings: RolloutSettings | None = field(default=None, compare=False)

    @property
    def champion(self) -> Any:
        """The champion arm."""
        return self.arms["champion"]

    @property
    def challenger(self) -> Any | None:
        """The challenger arm, when one is loaded."""
        return self.arms.get("challenger")

    def choose(
        self, headers: Mapping[str, str], request_id: str, inputs: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """``(arm, mirror)``: the arm that answers, and whether to mirror to the challenger.

        Raises
        ------
        RequestError
            400 for an ``X-Model-Arm`` that is not an arm, 409 when it asks for a
            challenger that is not loaded.
        """
        forced = headers.get(ARM_HEADER)
        if forced is not None:
            arm = forced.strip().lower()
            if arm not in ARMS:
                raise RequestError(
                    400,
                    "invalid_header",
                    f"X-Model-Arm must be one of {', '.join(ARMS)}, not {forced[:40]!r}",
                    "headers.x-model-arm",
                )
            if arm not in self.arms:
                raise RequestError(
                    409,
                    "no_challenger",
                    "X-Model-Arm asks for the challenger, but no rollout is running; start "
                    "one with `mlcycle rollout start`",
                    "headers.x-model-arm",
                )
            return arm, False
        if self.challenger is None or (self.weight <= 0 and self.shadow_percent <= 0):
            return "champion", False
        key = (self.key or _DEFAULT_KEY).of(headers, request_id, inputs)
        b = bucket(key)
        if b < self.weight:
            return "challenger", False
        return "champion", b < self.shadow_percent


_DEFAULT_KEY = RoutingKey("", [])


def signature_problems(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> list[str]:
    """Why ``challenger``'s signature cannot stand in for ``champion``'s (empty: it can).

    The features (names, kinds, types, order), the model inputs and the classes must be
    the same, so every request valid for one is valid for the other and their outputs
    can be compared.

    Examples
    --------
    >>> sig = {"features": [{"name": "a", "kind": "numeric"}], "classes": ["n", "y"]}
    >>> signature_problems(sig, sig)
    []
    >>> signature_problems(sig, {**sig, "classes": ["n", "y", "m"]})
    ["classes differ: champion ['n', 'y'], challenger ['n', 'y', 'm']"]
    """
    problems = []

    def features(sig: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return [(f.get("name"), f.get("kind"), f.get("dtype")) for f in sig.get("features", [])]

    a, b = features(champion), features(challenger)
    if a != b:
        missing = sorted({f[0] for f in a} - {f[0] for f in b})
        extra = sorted({f[0] for f in b} - {f[0] for f in a})
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"extra {extra}")
        if not detail:
            changed = [x[0] for x, y in zip(a, b, strict=False) if x != y]
            detail.append(f"kind, type or order changed for {changed}")
        problems.append("features differ: challenger has " + ", ".join(detail))
    if list(champion.get("classes", [])) != list(challenger.get("classes", [])):
        problems.append(
            f"classes differ: champion {list(champion.get('classes', []))}, "
            f"challenger {list(challenger.get('classes', []))}"
        )
    inputs_a = [(i.get("name"), i.get("features")) for i in champion.get("inputs", [])]
    inputs_b = [(i.get("name"), i.get("features")) for i in challenger.get("inputs", [])]
    if inputs_a != inputs_b and not problems:
        problems.append("model inputs differ (input blocks or their features)")
    return problems
