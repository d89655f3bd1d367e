"""Configs and metrics as MLflow params and metrics.

Nested configs become dotted keys with string values (secrets redacted, values cut to
MLflow's limit); nested metrics become dotted keys with float values (``test.f1_macro``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

from mlcycle._optional import require

__all__ = [
    "MAX_PARAM_VALUE_LENGTH",
    "REDACT_WORDS",
    "flatten_config",
    "flatten_metrics",
    "redact_config",
]

# MLflow 3 rejects (or silently cuts) param values longer than this (mlflow.utils.validation).
MAX_PARAM_VALUE_LENGTH = 6000
# Config keys containing one of these words (case-insensitive) are logged as "***".
REDACT_WORDS = ("secret", "access_key", "password", "token")

_REDACTED = "***"
_TRUNCATED = "..."
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /:]")


def _plain(cfg: Any) -> Any:
    """OmegaConf containers and dataclasses as plain dicts and lists."""
    if type(cfg).__module__.startswith("omegaconf"):
        omegaconf = require("omegaconf", "train")
        return omegaconf.OmegaConf.to_container(cfg, resolve=True)
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return asdict(cfg)
    return cfg


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_secret(key: str, redact: Sequence[str]) -> bool:
    low = key.lower()
    return any(word.lower() in low for word in redact)


def _mlflow_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping) or _is_list(value):
        return json.dumps(_plain_tree(value), separators=(",", ":"), default=str)
    return str(value)


def _plain_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_tree(v) for k, v in value.items()}
    if _is_list(value):
        return [_plain_tree(v) for v in value]
    return value


def _truncate(text: str, limit: int = MAX_PARAM_VALUE_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def flatten_config(
    cfg: Mapping[str, Any], *, redact: Sequence[str] = REDACT_WORDS
) -> dict[str, str]:
    """Flatten a nested config to MLflow params: dotted keys, string values.

    Parameters
    ----------
    cfg
        Nested mapping (plain dicts, an OmegaConf ``DictConfig`` or a dataclass).
    redact
        Words that mark a secret: a key containing one of them (case-insensitive, at any
        level) is logged as ``"***"``, as is everything below it. ``None`` stays
        ``"null"``, so an unset secret is visibly unset.

    Returns
    -------
    dict[str, str]
        Mappings become dotted keys; lists of scalars become compact JSON
        (``"[64,32]"``); lists holding mappings or lists are flattened by index
        (``evaluate.baselines.0.name``). ``None`` is ``"null"``, booleans are
        ``"true"``/``"false"``. Values are cut to :data:`MAX_PARAM_VALUE_LENGTH`
        characters, ending in ``"..."``.

    Examples
    --------
    >>> flatten_config({"model": {"name": "mlp", "hidden": [64, 32]},
    ...                 "remote": {"secret_access_key": "abc", "region": None}})
    {'model.name': 'mlp', 'model.hidden': '[64,32]', 'remote.secret_access_key': '***', \
'remote.region': 'null'}
    """
    out: dict[str, str] = {}

    def walk(value: Any, key: str, secret: bool) -> None:
        if isinstance(value, Mapping):
            if not value and key:
                out[_mlflow_key(key)] = "{}"
            for k, v in value.items():
                child = f"{key}.{k}" if key else str(k)
                walk(v, child, secret or _is_secret(str(k), redact))
        elif _is_list(value) and any(isinstance(v, Mapping) or _is_list(v) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}.{i}", secret)
        elif value is None:
            out[_mlflow_key(key)] = "null"
        else:
            out[_mlflow_key(key)] = _REDACTED if secret else _truncate(_scalar(value))

    walk(_plain(cfg), "", False)
    return out


def redact_config(cfg: Any, *, redact: Sequence[str] = REDACT_WORDS) -> Any:
    """A plain copy of ``cfg`` with every secret value replaced by ``"***"``.

    Keys are matched as in :func:`flatten_config`; ``None`` values stay ``None``.

    Examples
    --------
    >>> redact_config({"remote": {"access_key_id": "AKIA", "url": "s3://b"}})
    {'remote': {'access_key_id': '***', 'url': 's3://b'}}
    """

    def walk(value: Any, secret: bool) -> Any:
        if isinstance(value, Mapping):
            return {str(k): walk(v, secret or _is_secret(str(k), redact)) for k, v in value.items()}
        if _is_list(value):
            return [walk(v, secret) for v in value]
        if value is None:
            return None
        return _REDACTED if secret else value

    return walk(_plain(cfg), False)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metrics under dotted keys, e.g. ``test.f1_macro``.

    ``None``, NaN, booleans, strings and lists (confusion matrices, notes) are skipped;
    characters MLflow does not allow in a key become ``_``.

    Examples
    --------
    >>> flatten_metrics({"f1_macro": 0.9, "roc_auc": None, "per_class": {"a": {"f1": 1}},
    ...                  "notes": ["x"]}, "test")
    {'test.f1_macro': 0.9, 'test.per_class.a.f1': 1.0}
    """
    out: dict[str, float] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            f = float(value)
            if f == f:  # not NaN
                out[_mlflow_key(key)] = f

    walk(_plain(metrics), prefix.strip("."))
    return out
