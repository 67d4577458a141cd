"""Projects and wheels for the lock lifecycle tests (unit and integration share them).

Tiny hand-made wheels in a local directory give exact control over versions
and dependencies with no network; `mlrepro_lock` drives the real CLI, with the
host resolver and that directory (`--find-links`) unless it is `--check`.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli.lock import lock_command
from harness.lock import host_target

ROOT = Path(__file__).resolve().parents[1]
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


def make_test_wheels(directory: Path) -> Path:
    """lk-alpha needs lk-beta<2, lk-gamma needs lk-beta>=2, lk-delta[g] needs lk-gamma."""
    make_wheel(directory, "lk-alpha", "1.0", ("lk-beta<2",))
    make_wheel(directory, "lk-beta", "1.0")
    make_wheel(directory, "lk-beta", "2.0")
    make_wheel(directory, "lk-gamma", "1.0", ("lk-beta>=2",))
    make_wheel(directory, "lk-delta", "1.0", ("lk-gamma; extra == 'g'", "lk-winonly; sys_platform == 'win32'"), extras=("g",))
    return directory


def make_project(root: Path, requirements: str, *, python: str = PY, wheelhouse: Path | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[tool.mlrepro]\ninputs = []\n\n[tool.mlrepro.wheelhouse]\npython_version = "{python}"\n')
    (root / "requirements.in").write_text(requirements)
    if wheelhouse is not None:
        shutil.copytree(wheelhouse, root / "wheelhouse", dirs_exist_ok=True)
    return root


def project_copy(tmp_path: Path) -> Path:
    """This repository's requirements.in, lock and wheelhouse in a project of their own (tests may edit it)."""
    project = make_project(tmp_path / "ml", (ROOT / "requirements.in").read_text())
    shutil.copy(ROOT / "requirements.txt", project / "requirements.txt")
    if (ROOT / "wheelhouse").is_dir():
        shutil.copytree(ROOT / "wheelhouse", project / "wheelhouse")
    return project


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


#: Hand edits that make an existing lock unusable as the seed of a resolution: (edit, message fragment).
LOCK_EDITS = {
    "unpinned": (lambda t: t.replace("lk-gamma==1.0", "lk-gamma>=1.0"), "(unpinned)"),
    "missing hashes": (lambda t: "\n".join(l for l in t.splitlines() if "--hash" not in l).replace(" \\", "") + "\n", "expected --hash entries"),
    "other python": (lambda t: t.replace(f"with Python {PY}", "with Python 3.99"), "compiled with Python 3.99"),
}
