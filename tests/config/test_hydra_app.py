"""Config composition: packaged groups, typed dataclasses, project overrides, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.config.structured import GBDTConfig, LogRegConfig
from mlcycle.exceptions import ConfigError

MLCYCLE = [sys.executable, "-m", "mlcycle"]


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.delenv("MLCYCLE_PROJECT_ROOT", raising=False)
    return Project(tmp_path)


def test_default_config_composes_into_typed_dataclasses(project: Project) -> None:
    cfg = to_config(compose([], project=project))
    assert isinstance(cfg.model, LogRegConfig)
    assert cfg.data.name == "breast_cancer"
    assert cfg.tracking.experiment == "breast_cancer"  # interpolated from data.name
    assert cfg.evaluate.baselines[0].name == "human"


def test_group_choice_and_key_override_are_typed(project: Project) -> None:
    cfg = to_config(compose(["model=gbdt", "model.max_depth=4"], project=project))
    assert isinstance(cfg.model, GBDTConfig)
    assert cfg.model.max_depth == 4


def test_unknown_key_is_rejected_with_its_name(project: Project) -> None:
    with pytest.raises(ConfigError, match="max_dept"):
        compose(["model=gbdt", "model.max_dept=4"], project=project)


def test_wrong_value_type_is_rejected(project: Project) -> None:
    with pytest.raises(ConfigError, match=r"model\.C=abc.*could not be converted to Float"):
        compose(["model.C=abc"], project=project)


def test_plus_and_tilde_overrides(project: Project) -> None:
    cfg = to_config(compose(["+tracking.tags.team=fraud", "~tracking.tags.owner"], project=project))
    assert cfg.tracking.tags == {"team": "fraud"}
    forced = to_config(compose(["++train.seed=7", "++tracking.tags.team=x"], project=project))
    assert forced.train.seed == 7 and forced.tracking.tags["team"] == "x"


def test_project_conf_overrides_packaged_option_and_adds_new_ones(project: Project) -> None:
    model_dir = project.conf_dir / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "gbdt.yaml").write_text(
        "defaults:\n  - /schema/model/gbdt@_here_\n  - _self_\nlearning_rate: 0.05\n"
    )
    (model_dir / "deep.yaml").write_text(
        "defaults:\n  - /schema/model/gbdt@_here_\n  - _self_\nmax_depth: 12\n"
    )
    assert to_config(compose(["model=gbdt"], project=project)).model.learning_rate == 0.05
    deep = to_config(compose(["model=deep"], project=project)).model
    assert isinstance(deep, GBDTConfig) and deep.max_depth == 12


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    out = subprocess.run(
        [*MLCYCLE, "train", "--cfg", "job", "model=gbdt", "model.max_depth=3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "name: gbdt" in out and "max_depth: 3" in out and "label: diagnosis" in out


def test_unknown_group_option_fails_and_lists_the_options(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*MLCYCLE, "train", "model=xgboost"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "xgboost" in proc.stderr and "gbdt" in proc.stderr


def test_cli_commands_see_the_project_conf(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "config.yaml").write_text(
        "defaults:\n  - /schema/config@_here_\n  - data: wine\n  - model: gbdt\n"
        "  - train: default\n  - tracking: local\n  - remote: local\n  - _self_\n"
    )
    (conf / "model" / "gbdt.yaml").write_text(
        "defaults:\n  - /schema/model/gbdt@_here_\n  - _self_\nlearning_rate: 0.05\n"
    )
    out = subprocess.run(
        [*MLCYCLE, "train", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "learning_rate: 0.05" in out and "label: cultivar" in out
