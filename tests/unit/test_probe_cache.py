"""The probe cache (issue 15): a warm run takes the environment probe from the cache only under the exact key it
was measured with; a corrupt entry, a cache that cannot be written and a changed key each fall back to probing,
with a note, and never put a wrong environment in the report. Real host runs of a tiny project (no Docker)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.config import parse_config
from harness.errors import ConfigError
from harness.sides import HostSide, run_steps
from harness.sides.probe_cache import ProbeCache, key_sha256

JOB = "import pathlib, sys\npathlib.Path(sys.argv[1], 'result.txt').write_text('1\\n')\n"


def project(root: Path, **run):
    (root / "job.py").write_text(JOB)
    data = {"project": "cached", "inputs": ["job.py"], "run": {"pass_env": [], **run},
            "steps": [{"name": "job", "command": ["python", "{inputs}/job.py", "{out}"], "timeout": 60}],
            "artifacts": [{"path": "result.txt"}]}
    return parse_config(data, root)


def host_run(config, messages: list[str] | None = None):
    with HostSide(config, sys.executable) as side:
        return run_steps(side, config, progress=(messages.append if messages is not None else lambda m: None))


def entries(config) -> list[Path]:
    return sorted((config.root / ".mlrepro" / "probe-cache").glob("*.json"))


def test_the_second_run_takes_the_probe_from_the_cache_and_it_is_the_same_environment(tmp_path):
    config = project(tmp_path)
    first = host_run(config)
    messages: list[str] = []
    second = host_run(config, messages)
    assert first.probe_cache["cached"] is False and second.probe_cache == {"key": first.probe_cache["key"], "cached": True}
    assert second.probe == first.probe and second.files == first.files
    assert "host: environment probe from the cache (its key is unchanged)" in messages
    assert len(entries(config)) == 1


def test_a_changed_key_is_named_and_probed_again(tmp_path, monkeypatch):
    config = project(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    first = host_run(config)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    messages: list[str] = []
    second = host_run(config, messages)
    assert second.probe_cache["cached"] is False and second.probe_cache["key"] != first.probe_cache["key"]
    assert second.probe["env"]["OMP_NUM_THREADS"] == "2" and first.probe["env"]["OMP_NUM_THREADS"] == "1"
    assert any("was measured under another env: probing again" in m for m in messages), messages
    assert host_run(config).probe_cache["cached"] is True  # the new key is what is cached now


def test_a_corrupt_entry_is_probed_again_and_replaced(tmp_path):
    config = project(tmp_path)
    first = host_run(config)
    (entry,) = entries(config)
    entry.write_text('{"schema": 1, "key": {"side": "host"}, "probe": {"python": "forged"')  # torn
    messages: list[str] = []
    second = host_run(config, messages)
    assert second.probe_cache["cached"] is False and second.probe == first.probe
    assert any(f"the cached probe {entry} is corrupt" in m for m in messages), messages
    assert json.loads(entry.read_text())["probe"] == first.probe


def test_a_forged_entry_under_another_key_is_never_used(tmp_path):
    """An entry whose stored key is not this run's (copied from elsewhere) is a miss, not a wrong environment."""
    config = project(tmp_path)
    first = host_run(config)
    (entry,) = entries(config)
    data = json.loads(entry.read_text())
    data["key"]["machine"]["cpus"] = 999
    data["probe"]["python"]["version"] = "0.0.0"
    entry.write_text(json.dumps(data))
    second = host_run(config)
    assert second.probe_cache["cached"] is False and second.probe["python"] == first.probe["python"]


def test_a_cache_that_cannot_be_written_probes_every_run_with_a_note(tmp_path):
    config = project(tmp_path)
    (tmp_path / ".mlrepro").mkdir()
    (tmp_path / ".mlrepro" / "probe-cache").write_text("a file where the directory should be")
    messages: list[str] = []
    first = host_run(config, messages)
    second = host_run(config, messages)
    assert first.probe_cache["cached"] is False and second.probe_cache["cached"] is False and second.probe == first.probe
    assert sum("is not writable" in m and "probing on every run" in m for m in messages) == 2


def test_the_cache_can_be_turned_off(tmp_path):
    config = project(tmp_path, probe_cache=False)
    assert host_run(config).probe_cache is None and host_run(config).probe_cache is None
    assert entries(config) == []
    with pytest.raises(ConfigError, match="run.probe_cache: expected true or false"):
        project(tmp_path, probe_cache="yes")


def test_load_names_what_changed_and_store_round_trips(tmp_path):
    cache = ProbeCache(tmp_path / "c")
    key = {"side": "host", "env": {"OMP_NUM_THREADS": "1"}, "machine": {"cpus": 2}}
    assert cache.load("host /usr/bin/python3", key) == (None, None)
    assert cache.store("host /usr/bin/python3", key, {"python": {"version": "3.11.2"}}) is None
    assert cache.load("host /usr/bin/python3", key) == ({"python": {"version": "3.11.2"}}, None)
    probe, note = cache.load("host /usr/bin/python3", {**key, "machine": {"cpus": 4}})
    assert probe is None and note.endswith("was measured under another machine: probing again")
    assert key_sha256(key) == key_sha256(dict(reversed(list(key.items()))))  # the order of the keys is not the key


def test_two_venvs_of_one_base_interpreter_never_share_a_probe(tmp_path):
    """A venv's python is a symlink to the same base interpreter: the venv, not the binary, names the slot
    and its site-packages are in the key (the bug this test was written for: a drifted venv read as the host)."""
    import subprocess

    config = project(tmp_path)
    pythons = []
    for name, extra in (("a", None), ("b", "fakepkg-1.0.dist-info")):
        venv = tmp_path / f"venv-{name}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        if extra:
            site = next(venv.glob("lib/python*/site-packages"))
            (site / extra).mkdir()
            (site / extra / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
        pythons.append(str(venv / "bin" / "python"))
    runs = []
    for python in pythons + pythons:
        with HostSide(config, python) as side:
            runs.append(run_steps(side, config, progress=lambda m: None))
    assert [r.probe_cache["cached"] for r in runs] == [False, False, True, True]
    assert "fakepkg" not in runs[0].probe["packages"] and runs[1].probe["packages"]["fakepkg"] == "1.0"
    assert runs[2].probe == runs[0].probe and runs[3].probe == runs[1].probe
