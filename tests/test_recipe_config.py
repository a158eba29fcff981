"""The one config loader of the recipes: YAML with ${ENV}, command-line overrides, strict nested dataclasses."""

from dataclasses import dataclass, field

import pytest
import yaml

from voxlm.train.core.config import from_dict, load_config


@dataclass
class Inner:
    rank: int = 8
    targets: list[str] = field(default_factory=lambda: ["q_proj"])


@dataclass
class Outer:
    path: str
    inner: Inner = field(default_factory=Inner)
    optional: Inner | None = None
    extra: dict = field(default_factory=dict)


def test_nested_sections_are_built_and_checked_with_their_path():
    config = from_dict(Outer, "config", {"path": "p", "inner": {"rank": 4}, "optional": {"targets": []}})
    assert config.inner == Inner(rank=4) and config.optional == Inner(targets=[])
    assert from_dict(Outer, "config", {"path": "p", "inner": None}).inner == Inner()
    assert from_dict(Outer, "config", {"path": "p", "extra": {"anything": 1}}).extra == {"anything": 1}
    with pytest.raises(ValueError, match=r"config.inner: unknown key\(s\) \['rnak'\]; allowed keys are \['rank'"):
        from_dict(Outer, "config", {"path": "p", "inner": {"rnak": 4}})
    with pytest.raises(ValueError, match="config: `path` is required"):
        from_dict(Outer, "config", {})
    with pytest.raises(ValueError, match="config.inner must be a mapping of settings, got list"):
        from_dict(Outer, "config", {"path": "p", "inner": [4]})


def test_the_command_line_wins_over_the_file_and_env_vars_expand(tmp_path, monkeypatch):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"path": "${DATA_ROOT}/train", "inner": {"rank": 2}}))
    monkeypatch.setenv("DATA_ROOT", "/data")
    assert load_config(str(path), {"path": None}) == {"path": "/data/train", "inner": {"rank": 2}}
    assert load_config(str(path), {"path": "cli"})["path"] == "cli"
    monkeypatch.delenv("DATA_ROOT")
    with pytest.raises(ValueError, match=r"uses \$\{DATA_ROOT\} but the environment variable DATA_ROOT is not set"):
        load_config(str(path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
