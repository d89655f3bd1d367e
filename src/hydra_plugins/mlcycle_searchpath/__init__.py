"""Hydra search-path plugin: a project's ``conf/`` folder overrides mlcycle's packaged one.

Hydra discovers plugins in the ``hydra_plugins`` namespace. This one acts only for
mlcycle's own commands (whose primary config is ``pkg://mlcycle.config.conf``) and only
when the CLI has set ``MLCYCLE_PROJECT_ROOT``: it puts ``<root>/conf`` in front of the
packaged configs, so a file there with the same name wins and new files add options.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PACKAGED = "pkg://mlcycle.config.conf"


def _normal(path: str) -> str:
    if path.startswith("pkg://"):
        return "pkg://" + path[len("pkg://") :].replace("/", ".")
    return path


class MlcycleProjectSearchPath(SearchPathPlugin):
    """Prepend the project's ``conf/`` folder to the search path of mlcycle commands."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Insert ``file://<root>/conf`` before the packaged ``mlcycle`` configs."""
        # hydra.main spells the packaged path pkg://mlcycle.config/conf, the compose API
        # pkg://mlcycle.config.conf: accept both.
        packaged = [e for e in search_path.get_path() if _normal(e.path) == PACKAGED]
        if not packaged:
            return
        root = os.environ.get("MLCYCLE_PROJECT_ROOT")
        if not root:
            return
        conf = Path(root) / "conf"
        if conf.is_dir():
            search_path.prepend(
                provider="mlcycle-project",
                path=f"file://{conf}",
                anchor=SearchPathQuery(provider=packaged[0].provider, path=packaged[0].path),
            )
