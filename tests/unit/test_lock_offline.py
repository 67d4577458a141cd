"""`mlrepro lock` and `mlrepro lock --check` with no engine and no network.

The lock under test is made once per module by real pip-compile on the host,
from a local directory of tiny hand-made wheels, and copied into a fresh
project for each test; no test body resolves anything. What is left: inputs
refused before anything runs (exit 2, requirements.txt untouched) and the
freshness check, offline from the wheelhouse. The last tests are the freshness
gate of `make test` on this repository's own lock. Resolutions themselves (and
the container resolver) are in tests/integration/test_lock_lifecycle.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.image.wheelhouse import Target, fetch
from harness.lock import check, host_target
from tests.lock_projects import (
    LOCK_EDITS,
    PY,
    ROOT,
    error_line,
    host_can_resolve,
    make_project,
    make_test_wheels,
    mlrepro_lock,
    project_copy,
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return make_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(autouse=True)
def private_pip_tools_cache(tmp_path, monkeypatch):
    # pip-tools caches dependencies by name==version: fake packages must not reach the user's cache.
    monkeypatch.setenv("PIP_TOOLS_CACHE_DIR", str(tmp_path / "pip-tools-cache"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, wheels) -> str:
    """The lock real pip-compile makes from `lk-delta[g]`, once for the whole module (about 2 s)."""
    project = make_project(tmp_path_factory.mktemp("compiled") / "p", "lk-delta[g]\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_TOOLS_CACHE_DIR", str(tmp_path_factory.mktemp("pip-tools-cache")))
        result = mlrepro_lock(project, wheels=wheels)
    assert result.exit_code == 0, result.stderr
    return (project / "requirements.txt").read_text()


@pytest.fixture
def locked(tmp_path, wheels, compiled) -> Path:
    """A project whose lock real pip-compile made from `lk-delta[g]`, with the locked wheels in its wheelhouse."""
    project = make_project(tmp_path / "p", "lk-delta[g]\n", wheelhouse=wheels)
    (project / "requirements.txt").write_text(compiled)
    return project


@host_can_resolve
def test_the_compiled_lock_is_fresh(locked):
    # The baseline of every stale case below: only the edit makes them stale.
    result = mlrepro_lock(locked, "--check")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "requirements.txt is fresh: its 3 pins" in result.stdout


# Bad inputs: exit 2 before anything runs, one line, requirements.txt untouched ------

BAD_INPUTS = {
    "unparsable line": ("lk-delta[g]\nlk-beta>>=1\n", "requirements.in:2: expected a requirement"),
    "editable": ("-e ./src\n", "editable"),
    "vcs": ("git+https://example.invalid/x.git\n", "VCS/URL/path"),
    "url": ("lk-beta @ https://example.invalid/lk_beta-1.0-py3-none-any.whl\n", "VCS/URL/path"),
    "conflicting pins": ("lk-beta==1.0\nlk-beta==2.0\n", "conflicting pins for lk-beta"),
}


@host_can_resolve
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_requirements_in_exit_2_and_leave_the_lock_untouched(locked, wheels, case):
    requirements, expected = BAD_INPUTS[case]
    before = (locked / "requirements.txt").read_bytes()
    (locked / "requirements.in").write_text(requirements)
    result = mlrepro_lock(locked, wheels=wheels)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert expected in error_line(result)
    assert (locked / "requirements.txt").read_bytes() == before


@host_can_resolve
@pytest.mark.parametrize("case", sorted(LOCK_EDITS))
def test_broken_existing_lock_exit_2_and_stays_untouched(locked, wheels, case):
    edit, expected = LOCK_EDITS[case]
    path = locked / "requirements.txt"
    path.write_text(edit(path.read_text()))
    before = path.read_bytes()
    result = mlrepro_lock(locked, wheels=wheels)
    assert result.exit_code == 2 and expected in error_line(result)
    assert "--upgrade" in error_line(result)
    assert path.read_bytes() == before


@host_can_resolve
def test_host_resolver_refuses_another_python(tmp_path, wheels):
    project = make_project(tmp_path / "p", "lk-beta\n", python="3.99")
    result = mlrepro_lock(project, wheels=wheels)
    assert result.exit_code == 2
    assert "--resolver host cannot lock for the image" in error_line(result) and "Python 3.99" in error_line(result)
    assert not (project / "requirements.txt").exists()


# The freshness check ----------------------------------------------------------

IN_EDITS = {
    "dependency added": ("lk-delta[g]\nlk-alpha\n", "lk-alpha"),
    "dependency removed": ("lk-gamma\n", "lk-delta"),
    "transitive dependency made direct": ("lk-delta[g]\nlk-beta\n", "lk-beta"),
    "re-pinned": ("lk-delta[g]<1\n", "lk-delta"),
    "extra dropped": ("lk-delta\n", "lk-gamma"),
}


@host_can_resolve
@pytest.mark.parametrize("case", sorted(IN_EDITS))
def test_check_fails_when_requirements_in_changed_without_relocking(locked, case):
    requirements, package = IN_EDITS[case]
    (locked / "requirements.in").write_text(requirements)
    result = mlrepro_lock(locked, "--check")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    stale = [line for line in result.stdout.splitlines() if line.startswith("stale: ")]
    assert stale and any(package in line for line in stale) and all("mlrepro lock" in line for line in stale)


def _flip_first_hash_digit(text: str) -> str:
    at = text.index("--hash=sha256:") + len("--hash=sha256:")
    return text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1:]


HAND_EDITS = {
    "hashes removed": (lambda t: "\n".join(l for l in t.splitlines() if "--hash" not in l).replace(" \\", "") + "\n", "expected --hash"),
    "version edited": (lambda t: t.replace("lk-beta==2.0", "lk-beta==1.0"), "lk-beta"),
    "hash edited": (lambda t: _flip_first_hash_digit(t), "hand edit"),
    "pin deleted": (lambda t: t.replace("lk-gamma==1.0", "# lk-gamma==1.0"), "lk-gamma"),
}


@host_can_resolve
@pytest.mark.parametrize("case", sorted(HAND_EDITS))
def test_check_fails_on_hand_edits_of_the_lock(locked, case):
    edit, fragment = HAND_EDITS[case]
    path = locked / "requirements.txt"
    text = path.read_text()
    edited = edit(text)
    assert edited != text
    path.write_text(edited)
    result = mlrepro_lock(locked, "--check")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert fragment in result.stdout and "mlrepro lock" in result.stdout


@host_can_resolve
def test_check_of_a_lock_for_another_python_is_unusable_input(locked):
    path = locked / "requirements.txt"
    path.write_text(path.read_text().replace(f"with Python {PY}", "with Python 3.99"))
    result = mlrepro_lock(locked, "--check")
    assert result.exit_code == 2 and "compiled with Python 3.99" in error_line(result)


# The freshness gate on this repository ------------------------------------------


def test_committed_lock_is_fresh():
    """The freshness gate of `make test`: requirements.txt must be the lock of requirements.in."""
    config = load_config(ROOT)
    target = Target(config.wheelhouse.python_version, host_target()["machine"], config.wheelhouse.glibc)
    result = check(config.requirements_in, config.lock, target, config.wheelhouse.dir, fetch=fetch)
    assert result.fresh, "\n".join(f.message for f in result.findings) + "\nrun 'mlrepro lock' and commit requirements.txt"


def test_freshness_gate_on_the_project(tmp_path):
    """The gate as CI runs it, on a copy: unchanged passes, a new dependency without re-locking fails."""
    project = project_copy(tmp_path)
    fresh = mlrepro_lock(project, "--check")
    assert fresh.exit_code == 0, fresh.stdout + fresh.stderr
    with open(project / "requirements.in", "a") as fh:
        fh.write("requests\n")
    stale = mlrepro_lock(project, "--check")
    assert stale.exit_code == 1
    assert "requests" in stale.stdout and "run 'mlrepro lock'" in stale.stdout


# A damaged wheelhouse is not a stale lock (issue 13) -------------------------------------------------


def _truncate_a_locked_wheel(project: Path) -> Path:
    wheel = sorted((project / "wheelhouse").glob("lk_gamma-*.whl"))[0]
    wheel.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2])
    return wheel


@host_can_resolve
def test_a_truncated_wheel_is_fetched_again_and_the_lock_stays_fresh(locked, wheels):
    import shutil

    from harness.lock.wheels import damaged

    config = load_config(locked)
    target = Target(config.wheelhouse.python_version, host_target()["machine"], config.wheelhouse.glibc)
    wheel = _truncate_a_locked_wheel(locked)
    intact = (wheels / wheel.name).read_bytes()
    fetched: list[str] = []

    def fetch_from_the_test_index(directory, lock_path, lock, target, *, progress):
        for pin in lock.pins.values():
            for candidate in wheels.glob(f"{pin.name.replace('-', '_')}-{pin.version}-*.whl"):
                if not (directory / candidate.name).exists():
                    shutil.copy2(candidate, directory / candidate.name)
                    fetched.append(candidate.name)

    messages: list[str] = []
    result = check(config.requirements_in, config.lock, target, config.wheelhouse.dir, fetch=fetch_from_the_test_index,
                   progress=messages.append)
    assert result.fresh, [f.message for f in result.findings]
    assert fetched == [wheel.name] and wheel.read_bytes() == intact and damaged(wheel) is None
    assert any(f"{wheel.name} in the wheelhouse is damaged" in m and "the lock is not at fault" in m for m in messages)


@host_can_resolve
def test_a_truncated_wheel_without_a_fetch_is_named_as_the_wheelhouses_fault(locked):
    from harness.errors import LockError

    config = load_config(locked)
    target = Target(config.wheelhouse.python_version, host_target()["machine"], config.wheelhouse.glibc)
    wheel = _truncate_a_locked_wheel(locked)
    with pytest.raises(LockError) as caught:
        check(config.requirements_in, config.lock, target, config.wheelhouse.dir)
    assert str(caught.value).startswith(f"{wheel}: the wheelhouse holds a damaged wheel (")
    assert "the lock is not at fault: delete it and run 'mlrepro wheelhouse'" in str(caught.value)
