"""The probe runs as a script under foreign interpreters, so it is tested as one."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.sides import probe

PROBE = Path(__file__).resolve().parents[2] / "harness" / "sides" / "probe.py"

DETERMINISM_VARS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "3",
    "MKL_CBWR": "COMPATIBLE",
    "BLIS_NUM_THREADS": "4",
    "VECLIB_MAXIMUM_THREADS": "5",
    "NUMEXPR_MAX_THREADS": "6",
    "PYTHONHASHSEED": "0",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
}
UNRELATED_VARS = {"FOO": "bar", "OMPX": "1", "MY_OMP_NUM_THREADS": "9", "PYTHONHASHSEEDS": "1", "HOME": "/nonexistent"}


def run_probe(*args: str, env: dict[str, str] | None = None, pythonpath: list[Path] = ()) -> dict:
    # A clean environment: the variables under test are exactly the ones given.
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    base.update(env or {})
    if pythonpath:
        base["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    result = subprocess.run(
        [sys.executable, str(PROBE), *args], env=base, capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected one line of JSON on stdout, found {len(lines)}: {result.stdout!r}"
    return json.loads(lines[0])


def test_schema_and_types():
    data = run_probe()
    assert set(data) == {"schema", "python", "platform", "packages", "threadpools", "env"}
    assert data["schema"] == 1
    # No executable path: a report must not depend on where the tree or venv lives.
    assert set(data["python"]) == {"version", "implementation", "compiler"}
    assert all(isinstance(v, str) for v in data["python"].values())
    assert data["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert set(data["platform"]) == {"system", "machine", "libc", "release"}
    assert all(isinstance(v, str) for v in data["platform"].values())
    assert isinstance(data["packages"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in data["packages"].items())
    assert isinstance(data["threadpools"], list)
    assert isinstance(data["env"], dict)


def test_package_names_are_normalised_and_include_the_test_tooling():
    packages = probe.collect()["packages"]
    assert all(name == probe.normalize_name(name) for name in packages)
    assert packages["pytest"] == pytest.__version__


@pytest.mark.parametrize(
    "raw, expected",
    [("Scikit_Learn", "scikit-learn"), ("zope.interface", "zope-interface"), ("a-_.b", "a-b"), ("PyYAML", "pyyaml")],
)
def test_normalize_name(raw, expected):
    assert probe.normalize_name(raw) == expected


def _fake_dist(root: Path, dirname: str, name: str, version: str) -> Path:
    dist = root / dirname
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def test_first_distribution_on_sys_path_wins(tmp_path):
    first = _fake_dist(tmp_path / "first", "Fake_Pkg-1.0.dist-info", "Fake_Pkg", "1.0")
    second = _fake_dist(tmp_path / "second", "fake.pkg-2.0.dist-info", "fake.pkg", "2.0")
    assert run_probe(pythonpath=[first, second])["packages"]["fake-pkg"] == "1.0"
    assert run_probe(pythonpath=[second, first])["packages"]["fake-pkg"] == "2.0"


def test_env_keeps_only_determinism_variables():
    data = run_probe(env={**DETERMINISM_VARS, **UNRELATED_VARS})
    assert data["env"] == DETERMINISM_VARS


def test_env_option_adds_named_variables_when_set():
    data = run_probe("--env", "FOO", "--env", "NOT_SET_ANYWHERE", env={"FOO": "bar", "OMP_NUM_THREADS": "1"})
    assert data["env"] == {"FOO": "bar", "OMP_NUM_THREADS": "1"}


def test_collect_extra_env(monkeypatch):
    monkeypatch.setenv("FOO", "bar")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert "FOO" not in probe.collect()["env"]
    env = probe.collect(extra_env=["FOO"])["env"]
    assert env["FOO"] == "bar"
    assert env["OMP_NUM_THREADS"] == "7"


FAKE_THREADPOOLCTL = '''
print("noise a library prints at import")
def threadpool_info():
    return [
        {"user_api": "openmp", "internal_api": "openmp", "prefix": "libgomp",
         "filepath": "/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0", "version": None, "num_threads": 8},
        {"user_api": "blas", "internal_api": "openblas", "prefix": "libscipy_openblas",
         "filepath": "/opt/venv/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-ff651d7f.so",
         "version": "0.3.27", "threading_layer": "pthreads", "architecture": "Haswell", "num_threads": 4},
    ]
'''


def test_threadpools_keep_only_the_documented_keys_and_basenames(tmp_path):
    (tmp_path / "threadpoolctl.py").write_text(FAKE_THREADPOOLCTL)
    pools = run_probe(pythonpath=[tmp_path])["threadpools"]
    assert pools == [
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 4, "version": "0.3.27",
         "architecture": "Haswell", "filename": "libscipy_openblas64_-ff651d7f.so"},
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 8, "version": None,
         "architecture": None, "filename": "libgomp.so.1.0.0"},
    ]


def test_threadpools_unknown_without_threadpoolctl(tmp_path):
    (tmp_path / "threadpoolctl.py").write_text("raise ImportError('simulated absence')\n")
    assert run_probe(pythonpath=[tmp_path])["threadpools"] is None  # unknown, not "no pools"


def test_source_is_python38_syntax_with_stdlib_only_module_imports():
    tree = ast.parse(PROBE.read_text(), feature_version=(3, 8))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top_level.add(node.module.split(".")[0])
    assert top_level <= set(sys.stdlib_module_names) | {"__future__"}, top_level - set(sys.stdlib_module_names)
