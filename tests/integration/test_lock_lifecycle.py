"""`mlrepro lock` and `mlrepro lock --check` end to end, with real pip-compile.

Most cases resolve on the host against a LOCAL wheel directory of tiny
hand-made wheels (no network, exact control over versions and dependencies),
or a local PEP 503 index served from it; the pip-tools cache is a temp
directory so fake packages never reach the user's cache. One Docker test
resolves the project's own requirements.in under the base image's Python
against the real index and must reproduce the committed lock. The last tests
are the freshness gate of `make test`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import shutil
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.config import load_config
from harness.lock import parse_lock
from harness.cli.lock import lock_command
from harness.lock.pipcompile import check, host_target
from harness.image.wheelhouse import Target

ROOT = Path(__file__).resolve().parents[2]
PY = "%d.%d" % sys.version_info[:2]
host_can_resolve = pytest.mark.skipif(
    not sys.platform.startswith("linux") or host_target()["glibc"] == "",
    reason="the host resolver needs a Linux/glibc host (it refuses otherwise)",
)


def make_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = (), extras: tuple[str, ...] = (),
               requires_python: str | None = None) -> Path:
    """A minimal, valid, reproducible pure-python wheel."""
    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += f"Requires-Python: {requires_python}\n" if requires_python else ""
    meta += "".join(f"Provides-Extra: {e}\n" for e in extras) + "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name.replace('-', '_')}/__init__.py": "",
        f"{dist}.dist-info/METADATA": meta,
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def digest(text: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    files[f"{dist}.dist-info/RECORD"] = "".join(f"{k},sha256={digest(v)},{len(v)}\n" for k, v in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(zipfile.ZipInfo(member, (1980, 1, 1, 0, 0, 0)), text)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """lk-alpha needs lk-beta<2, lk-gamma needs lk-beta>=2, lk-delta[g] needs lk-gamma."""
    d = tmp_path_factory.mktemp("wheels")
    make_wheel(d, "lk-alpha", "1.0", ("lk-beta<2",))
    make_wheel(d, "lk-beta", "1.0")
    make_wheel(d, "lk-beta", "2.0")
    make_wheel(d, "lk-gamma", "1.0", ("lk-beta>=2",))
    make_wheel(d, "lk-delta", "1.0", ("lk-gamma; extra == 'g'", "lk-winonly; sys_platform == 'win32'"), extras=("g",))
    return d


@pytest.fixture(autouse=True)
def private_pip_tools_cache(tmp_path, monkeypatch):
    # pip-tools caches dependencies by name==version: fake packages must not reach the user's cache.
    monkeypatch.setenv("PIP_TOOLS_CACHE_DIR", str(tmp_path / "pip-tools-cache"))


def make_project(root: Path, requirements: str, *, python: str = PY, wheelhouse: Path | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[tool.mlrepro]\ninputs = []\n\n[tool.mlrepro.wheelhouse]\npython_version = "{python}"\n')
    (root / "requirements.in").write_text(requirements)
    if wheelhouse is not None:
        shutil.copytree(wheelhouse, root / "wheelhouse", dirs_exist_ok=True)
    return root


def mlrepro_lock(project: Path, *args: str, wheels: Path | None = None):
    argv = ["--config", str(project), *args]
    if "--check" not in args:
        argv += ["--resolver", "host"]
        if wheels is not None:
            argv += ["--find-links", str(wheels)]
    return CliRunner().invoke(lock_command, argv, catch_exceptions=False)


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def locked(tmp_path, wheels) -> Path:
    """A project whose lock was just made from `lk-delta[g]` by real pip-compile."""
    project = make_project(tmp_path / "p", "lk-delta[g]\n", wheelhouse=wheels)
    result = mlrepro_lock(project, wheels=wheels)
    assert result.exit_code == 0, result.stderr
    return project


# Refresh --------------------------------------------------------------------


@host_can_resolve
def test_lock_pins_with_hashes_and_a_stable_header_then_is_a_no_op(locked, wheels):
    text = (locked / "requirements.txt").read_text()
    lock = parse_lock(text)
    assert lock.versions == {"lk-delta": "1.0", "lk-gamma": "1.0", "lk-beta": "2.0"}  # extra followed, win32 marker not
    assert f"autogenerated by pip-compile with Python {PY}" in text and "#    mlrepro lock\n" in text
    assert "--find-links" not in text and "--index-url" not in text and "[g]" not in text
    before = (locked / "requirements.txt").stat().st_mtime_ns
    again = mlrepro_lock(locked, wheels=wheels)
    assert again.exit_code == 0 and "up to date" in again.stdout
    assert (locked / "requirements.txt").read_text() == text
    assert (locked / "requirements.txt").stat().st_mtime_ns == before  # not even rewritten
    assert mlrepro_lock(locked, "--check").exit_code == 0


@host_can_resolve
def test_minimal_upgrades_then_upgrade_package(tmp_path, wheels):
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(next(wheels.glob("lk_beta-1.0-*")), links)
    project = make_project(tmp_path / "p", "lk-beta\n")
    assert mlrepro_lock(project, wheels=links).exit_code == 0
    shutil.copy(next(wheels.glob("lk_beta-2.0-*")), links)  # a new release appears
    kept = mlrepro_lock(project, wheels=links)
    assert kept.exit_code == 0 and "up to date" in kept.stdout
    assert parse_lock((project / "requirements.txt").read_text()).versions == {"lk-beta": "1.0"}
    upgraded = mlrepro_lock(project, "--upgrade-package", "lk-beta", wheels=links)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert "~ lk-beta 1.0 -> 2.0" in upgraded.stdout
    assert parse_lock((project / "requirements.txt").read_text()).versions == {"lk-beta": "2.0"}
    unknown = mlrepro_lock(project, "--upgrade-package", "numpyy", wheels=links)
    assert unknown.exit_code == 2 and "numpyy" in error_line(unknown)


# Bad inputs: exit 2, one line, requirements.txt untouched ---------------------

BAD_INPUTS = {
    "unparsable line": ("lk-delta[g]\nlk-beta>>=1\n", "requirements.in:2: expected a requirement"),
    "editable": ("-e ./src\n", "editable"),
    "vcs": ("git+https://example.invalid/x.git\n", "VCS/URL/path"),
    "url": ("lk-beta @ https://example.invalid/lk_beta-1.0-py3-none-any.whl\n", "VCS/URL/path"),
    "conflicting pins": ("lk-beta==1.0\nlk-beta==2.0\n", "conflicting pins for lk-beta"),
    "conflicting dependencies": ("lk-alpha\nlk-gamma\n", "conflicting requirements: lk-alpha 1.0 requires lk-beta<2; lk-gamma 1.0 requires lk-beta>=2"),
    "no such package": ("lk-delta[g]\nlk-nonexistent\n", "no wheel of lk-nonexistent"),
    "no matching version": ("lk-beta>=3\n", "no release of lk-beta matches 'lk-beta>=3'"),
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


LOCK_EDITS = {
    "unpinned": (lambda t: t.replace("lk-gamma==1.0", "lk-gamma>=1.0"), "(unpinned)"),
    "missing hashes": (lambda t: "\n".join(l for l in t.splitlines() if "--hash" not in l).replace(" \\", "") + "\n", "expected --hash entries"),
    "other python": (lambda t: t.replace(f"with Python {PY}", "with Python 3.99"), "compiled with Python 3.99"),
}


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
    # --upgrade re-resolves from scratch and repairs it.
    repaired = mlrepro_lock(locked, "--upgrade", wheels=wheels)
    assert repaired.exit_code == 0, repaired.stderr
    assert mlrepro_lock(locked, "--check").exit_code == 0


@host_can_resolve
def test_host_resolver_refuses_another_python(tmp_path, wheels):
    project = make_project(tmp_path / "p", "lk-beta\n", python="3.99")
    result = mlrepro_lock(project, wheels=wheels)
    assert result.exit_code == 2
    assert "--resolver host cannot lock for the image" in error_line(result) and "Python 3.99" in error_line(result)
    assert not (project / "requirements.txt").exists()


@pytest.fixture(scope="module")
def local_index(wheels):
    """A PEP 503 index of the test wheels on 127.0.0.1 (pip treats loopback as secure)."""
    root = wheels.parent / "index"
    for wheel in wheels.glob("*.whl"):
        project = root / "simple" / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        (root / "files").mkdir(exist_ok=True)
        shutil.copy(wheel, root / "files")
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with open(project / "index.html", "a") as fh:
            fh.write(f'<a href="../../files/{wheel.name}#sha256={sha}">{wheel.name}</a>\n')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()


@host_can_resolve
def test_index_resolution_and_a_package_that_does_not_exist(tmp_path, local_index):
    project = make_project(tmp_path / "p", "lk-delta[g]\n")
    made = mlrepro_lock(project, "--index-url", local_index)
    assert made.exit_code == 0, made.stderr
    text = (project / "requirements.txt").read_text()
    assert "127.0.0.1" not in text and parse_lock(text).versions["lk-beta"] == "2.0"
    (project / "requirements.in").write_text("lk-delta[g]\nlk-nonexistent\n")
    missing = mlrepro_lock(project, "--index-url", local_index)
    assert missing.exit_code == 2
    assert "package lk-nonexistent does not exist on" in error_line(missing) and "HTTP 404" in error_line(missing)
    assert (project / "requirements.txt").read_text() == text


@host_can_resolve
def test_index_unreachable(locked, monkeypatch):
    monkeypatch.setenv("PIP_RETRIES", "0")  # forwarded to pip: fail fast
    before = (locked / "requirements.txt").read_bytes()
    (locked / "requirements.in").write_text("lk-delta[g]\nlk-alpha\n")
    result = mlrepro_lock(locked, "--index-url", "http://127.0.0.1:9/simple")
    assert result.exit_code == 2
    assert "is unreachable" in error_line(result) and "127.0.0.1:9" in error_line(result)
    assert (locked / "requirements.txt").read_bytes() == before


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


def test_committed_lock_is_fresh():
    """The freshness gate of `make test`: requirements.txt must be the lock of requirements.in."""
    config = load_config(ROOT)
    target = Target(config.wheelhouse.python_version, host_target()["machine"], config.wheelhouse.glibc)
    result = check(config.requirements_in, config.lock, target, config.wheelhouse.dir)
    assert result.fresh, "\n".join(f.message for f in result.findings) + "\nrun 'mlrepro lock' and commit requirements.txt"


def _project_copy(tmp_path: Path) -> Path:
    project = make_project(tmp_path / "ml", (ROOT / "requirements.in").read_text())
    shutil.copy(ROOT / "requirements.txt", project / "requirements.txt")
    if (ROOT / "wheelhouse").is_dir():
        shutil.copytree(ROOT / "wheelhouse", project / "wheelhouse")
    return project


def test_freshness_gate_on_the_project(tmp_path):
    """The gate as CI runs it, on a copy: unchanged passes, a new dependency without re-locking fails."""
    project = _project_copy(tmp_path)
    fresh = mlrepro_lock(project, "--check")
    assert fresh.exit_code == 0, fresh.stdout + fresh.stderr
    with open(project / "requirements.in", "a") as fh:
        fh.write("requests\n")
    stale = mlrepro_lock(project, "--check")
    assert stale.exit_code == 1
    assert "requests" in stale.stdout and "run 'mlrepro lock'" in stale.stdout


# The image's own resolution -----------------------------------------------------


@pytest.mark.docker
def test_container_resolution_reproduces_the_committed_lock(tmp_path):
    from harness.image.base import resolve_base
    from harness.ownership import LABEL_ROLE, LABEL_RUN, RUN_ID
    from harness.plugin import require_engine
    from harness.lock.pipcompile import container_resolver, plan_refresh, refresh

    engine = require_engine()
    config = load_config(ROOT)
    project = _project_copy(tmp_path)
    (project / "requirements.txt").unlink()  # resolve from scratch, not seeded by the committed pins
    target = Target(config.wheelhouse.python_version, engine.architecture(), config.wheelhouse.glibc)
    image, _ = resolve_base(engine, config.build)
    plan = plan_refresh(project / "requirements.in", project / "requirements.txt", target)
    start = time.monotonic()
    with container_resolver(engine, image, target) as resolver:
        update = refresh(plan, resolver)
    elapsed = time.monotonic() - start
    committed = (ROOT / "requirements.txt").read_text()
    assert update.lock.versions == parse_lock(committed).versions
    assert {n: set(p.hashes) for n, p in update.lock.pins.items()} == {n: set(p.hashes) for n, p in parse_lock(committed).pins.items()}
    assert update.text == committed, "same pins, different text: annotations or header differ"
    left = engine.client.containers.list(all=True, filters={"label": [f"{LABEL_RUN}={RUN_ID}", f"{LABEL_ROLE}=lock"]})
    assert not left, "the lock container was not removed"
    print(f"container resolution of ml_project: {elapsed:.1f} s")
