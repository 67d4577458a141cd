"""The wheelhouse: exactly the locked wheels, for the image's platform and Python.

Fetched on the host (which can reach the index) with `pip download
--require-hashes`, so the build itself never touches the network. The wheels
land in a temporary directory that replaces the old wheelhouse only when the
download succeeded: no half-filled wheelhouse, no leftovers from an older lock.
A stamp (lock sha256 + target) makes the warm path a no-op.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import WheelhouseError, tail
from harness.lock import Lock
from harness.sides.process import HostProcesses

STAMP = ".mlrepro-stamp.json"
#: 60 MB of wheels take seconds; a stalled index must not hang a verification forever.
FETCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the wheels must fit (the image's, not the host's)."""

    python_version: str  # "3.11"
    arch: str  # "x86_64", "aarch64"
    glibc: str  # "2.36" for Debian bookworm

    def platforms(self) -> list[str]:
        """Every manylinux tag the target's glibc accepts, newest first.

        pip does not expand `manylinux_2_36_x86_64` to older tags by itself, and
        most wheels are tagged manylinux_2_17 or _2_28, so the list is spelled out.
        """
        major, minor = (int(x) for x in self.glibc.split("."))
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 4, -1)]
        return tags + [f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}", f"manylinux1_{self.arch}"]

    def pip_args(self) -> list[str]:
        nodot = self.python_version.replace(".", "")
        args = [arg for p in self.platforms() for arg in ("--platform", p)]
        return args + [
            "--python-version", self.python_version, "--implementation", "cp",
            "--abi", f"cp{nodot}", "--abi", "abi3", "--abi", "none",
        ]

    def key(self) -> str:
        return f"cp{self.python_version}-{self.arch}-glibc{self.glibc}"


def is_fresh(directory: Path, lock: Lock, target: Target) -> bool:
    try:
        stamp = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return False
    wheels = {p.name for p in directory.glob("*.whl")}
    return stamp.get("lock_sha256") == lock.sha256 and stamp.get("target") == target.key() and set(stamp.get("wheels", [])) == wheels and bool(wheels)


def fetch(directory: Path, lock_path: Path, lock: Lock, target: Target, *, progress: Callable[[str], None] = print) -> bool:
    """Make `directory` hold exactly the locked wheels; return False when it already did."""
    if is_fresh(directory, lock, target):
        return False
    progress(f"fetching {len(lock.pins)} locked wheels for {target.key()} into {directory.name}/ (hashes checked)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        cmd = [
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--require-hashes", "--only-binary=:all:", "--no-deps",
            "-r", str(lock_path), "-d", str(staging), *target.pip_args(),
        ]
        # Through the host process manager: owner-labelled, so a killed fetch's pip is found by `mlrepro clean`.
        done = HostProcesses().run(cmd, timeout=FETCH_TIMEOUT)
        if done.exit_code != 0:
            lines = [l for l in done.output.splitlines() if l.startswith("ERROR")] or done.output.splitlines()[-1:]
            why = f"pip download did not finish within {FETCH_TIMEOUT:g} s" if done.timed_out else " ".join(lines)[:300]
            raise WheelhouseError(
                f"could not fetch the locked wheels for {target.key()}: {why}; check that the index is reachable and that every pin has a wheel for this platform",
                evidence=tail(done.output),
            )
        wheels = sorted(p.name for p in staging.glob("*.whl"))
        (staging / STAMP).write_text(json.dumps({"lock_sha256": lock.sha256, "target": target.key(), "wheels": wheels}, indent=2) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
        progress(f"wheelhouse ready: {len(wheels)} wheels")
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
