"""Bash completion of commands and of Hydra config groups and keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.completion import bash_script, candidates


def test_first_word_completes_to_commands() -> None:
    assert candidates("mlcycle tr") == ["train"]
    assert {"init", "data", "promote", "train", "sanity"} <= set(candidates("mlcycle "))


def test_data_completes_to_its_actions() -> None:
    assert candidates("mlcycle data p") == ["pull", "push"]


def test_model_group_offers_its_options() -> None:
    got = candidates("mlcycle train model=")
    assert {"model=logreg", "model=gbdt", "model=random_forest", "model=mlp"} <= set(got)
    assert not any(c.startswith("schema") for c in candidates("mlcycle train "))


def test_model_keys_follow_the_chosen_option() -> None:
    got = candidates("mlcycle train model=gbdt model.max")
    assert "model.max_depth=" in got and "model.C=" not in got


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_installed_bash_script_completes_model_options(tmp_path: Path) -> None:
    script = tmp_path / "complete.sh"
    script.write_text(bash_script())
    bindir = Path(sys.executable).parent
    line = "mlcycle train model="
    probe = (
        f"source {script}\n"
        f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}\n'
        "COMP_WORDS=(mlcycle train model=); COMP_CWORD=2\n"
        "_mlcycle_completion\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert {"model=gbdt", "model=logreg", "model=mlp", "model=random_forest"} <= set(out)
