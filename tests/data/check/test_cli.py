"""``data check`` on the command line: the action, its flags and tab completion."""

from __future__ import annotations

import pytest

from mlcycle.cli import DATA_ACTIONS, main
from mlcycle.completion import candidates


def test_check_is_a_data_action_and_completes() -> None:
    assert "check" in DATA_ACTIONS
    assert candidates("mlcycle data ch") == ["check"]


def test_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--folds", "--max-issues", "--store", "KEY=VALUE"):
        assert flag in text


def test_a_flag_of_the_wrong_type_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "--max-issues", "ten"])
    assert exit_info.value.code == 2
    assert "argument --max-issues: invalid int value: 'ten'" in capsys.readouterr().err


def test_other_data_actions_still_refuse_stray_words(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "push", "--folds", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --folds" in capsys.readouterr().err
