"""``mlcycle serve --settings FILE``: a JSON or YAML file instead of the project's section."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcycle.exceptions import ConfigError
from mlcycle.serve_commands import resolve_model, settings_from_file


def test_a_yaml_file_with_a_serve_key_and_overrides_on_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    path = tmp_path / "serve.yaml"
    path.write_text("serve:\n  port: 9100\n  monitor:\n    log_features: sample\n")
    folder, _, _, settings = resolve_model(str(bundle), ["serve.workers=2"], path)
    assert folder == bundle.resolve()
    assert (settings.port, settings.workers) == (9100, 2)
    assert settings.monitor.log_features == "sample"


def test_a_json_file_of_the_section_itself(tmp_path: Path) -> None:
    path = tmp_path / "serve.json"
    path.write_text('{"port": 9200, "validation": {"max_rows": 5}}')
    assert settings_from_file(path) == {"port": 9200, "validation": {"max_rows": 5}}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("absent.json", None, "No such file"),
        ("bad.json", "{port: ", "not valid JSON or YAML"),
        ("list.yaml", "- 1\n- 2\n", "must hold a mapping"),
    ],
)
def test_a_bad_settings_file_is_named(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        settings_from_file(path)
    assert str(path) in str(err.value)


def test_an_unknown_key_in_the_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b").mkdir()
    path = tmp_path / "serve.json"
    path.write_text('{"prot": 9200}')
    with pytest.raises(ConfigError, match="prot"):
        resolve_model(str(tmp_path / "b"), [], path)
