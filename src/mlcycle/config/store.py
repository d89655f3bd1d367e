"""Register the structured-config schemas with Hydra's ConfigStore.

The packaged YAML options under ``conf/`` extend these schemas through their defaults
list (``- /schema/model/logreg@_here_``), so a typo in a key or a value of the wrong type
fails at composition with Hydra's message naming the key.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from mlcycle.config.structured import (
    CNNConfig,
    Config,
    DataConfig,
    GBDTConfig,
    LogRegConfig,
    MLPConfig,
    RandomForestConfig,
    RemoteConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = ["register_schemas"]

_SCHEMAS: dict[str, dict[str, type]] = {
    "schema/model": {
        "logreg": LogRegConfig,
        "gbdt": GBDTConfig,
        "random_forest": RandomForestConfig,
        "mlp": MLPConfig,
        "cnn": CNNConfig,
    },
    "schema/data": {"dataset": DataConfig},
    "schema/train": {"train": TrainConfig},
    "schema/tracking": {"tracking": TrackingConfig},
    "schema/remote": {"remote": RemoteConfig},
}


def register_schemas() -> None:
    """Store the schema of every config group (idempotent).

    The primary schema is stored as ``schema/config``; group schemas as
    ``schema/<group>/<name>``, each placed at its group's package.
    """
    cs = ConfigStore.instance()
    cs.store(group="schema", name="config", node=Config)
    for group, options in _SCHEMAS.items():
        package = group.split("/", 1)[1]
        for name, node in options.items():
            cs.store(group=group, name=name, node=node, package=package)
