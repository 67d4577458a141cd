"""[tool.mlrepro]: defaults describe the example project; every error names its key."""

from pathlib import Path

import pytest

from harness.config import load_config, parse_config
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_repository_config_loads_with_example_defaults():
    config = load_config(ROOT)
    assert [s.name for s in config.steps] == ["train", "predict"]
    assert config.build.dockerfile == ROOT / "Dockerfile"
    assert {a.path for a in config.artifacts} >= {"predictions.csv", "metrics.json", "manifest.json"}
    assert config.lock == ROOT / "requirements.txt"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"steps": []}, "steps"),
        ({"steps": [{"name": "a", "command": ["x"], "timeout": -3}]}, "steps[0].timeout"),
        ({"steps": [{"name": "a", "command": ["x", "{nope}"]}]}, "steps[0].command"),
        ({"steps": [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}]}, "steps"),
        ({"artifacts": [{"path": "m.json", "compare": "hash"}]}, "artifacts[0].key"),
        ({"artifacts": [{"path": "p.csv", "compare": "fuzzy"}]}, "artifacts[0].compare"),
        ({"artifacts": [{"path": "../escape.csv"}]}, "artifacts[0].path"),
        ({"artifacts": [{"path": "p.csv", "atol": -1}]}, "artifacts[0].atol"),
        ({"build": {"image_name": "Has:Tag"}}, "build.image_name"),
        ({"build": {"dockerfiel": "Dockerfile"}}, "build.dockerfiel"),
        ({"compare": {"python_policy": "loose"}}, "compare.python_policy"),
        ({"host": {"mode": "conda"}}, "host.mode"),
        ({"inputs": ["does/not/exist.csv"]}, "inputs[0]"),
        ({"run": {"mem_limit": 5}}, "run.mem_limit"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_configuration_names_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        parse_config(data, ROOT)
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"[tool.mlrepro] {key}: expected ")
    assert "\n" not in message


def test_missing_pyproject_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="existing file"):
        load_config(tmp_path / "nothing" / "pyproject.toml")


def test_broken_toml_is_a_config_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.mlrepro\n")
    with pytest.raises(ConfigError, match="readable TOML"):
        load_config(tmp_path)


def test_string_command_is_split_and_paths_resolve(tmp_path):
    (tmp_path / "in.csv").write_text("a\n1\n")
    config = parse_config({"inputs": ["in.csv"], "steps": [{"name": "s", "command": "python run.py {out}"}]}, tmp_path)
    assert config.steps[0].command == ("python", "run.py", "{out}")
    assert config.inputs == (tmp_path / "in.csv",)


def test_compare_choices_are_the_comparisons_own():
    # One definition per constant: config validates against what compare accepts.
    import harness.compare
    import harness.config

    for name in ("ARTIFACT_MODES", "PYTHON_POLICIES", "HOST_EXTRAS"):
        assert getattr(harness.config, name) is getattr(harness.compare, name)
    compare = parse_config({}, ROOT).compare
    assert compare.ignore_packages == harness.compare.DEFAULT_IGNORED_PACKAGES
    assert (compare.python_policy, compare.host_extras) == ("minor", "note")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"compare": {"host_extras": "sometimes"}}, "compare.host_extras"),
        ({"compare": {"ignore_packages": "pip"}}, "compare.ignore_packages"),
    ],
)
def test_invalid_compare_settings_name_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        parse_config(data, ROOT)
    assert info.value.key == key


@pytest.mark.parametrize(("written", "normalized"), [("./predictions.csv", "predictions.csv"), ("predictions.csv/", "predictions.csv"),
                                                      ("out/./scores.csv", "out/scores.csv")])
def test_artifact_paths_spelled_differently_mean_the_same_file(tmp_path, written, normalized):
    """Issue 13: `./predictions.csv` used to be looked up as written, so an identical file was reported missing."""
    config = parse_config({"project": "p", "artifacts": [{"path": written}]}, tmp_path)
    assert [a.path for a in config.artifacts] == [normalized]


@pytest.mark.parametrize(("paths", "needle"), [
    (["predictions.csv", "./predictions.csv"], "artifacts[1].path: expected a file not already compared by artifacts[0]"),
    (["."], "artifacts[0].path: expected a file path relative to the output directory"),
    (["out\\p.csv"], "artifacts[0].path: expected '/' as the path separator"),
    (["out\\p.csv"], "write it as 'out/p.csv'"),
])
def test_artifact_paths_that_cannot_be_meant_are_refused(tmp_path, paths, needle):
    with pytest.raises(ConfigError) as caught:
        parse_config({"project": "p", "artifacts": [{"path": p} for p in paths]}, tmp_path)
    assert needle in str(caught.value)
