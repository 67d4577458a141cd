"""The wheelhouse: exactly the locked wheels, for the image's platform and Python.

Fetched on the host (which can reach the index) with `pip download
--require-hashes`, so the build itself never touches the network. The wheels
land in a temporary directory that replaces the old wheelhouse only when the
download succeeded: no half-filled wheelhouse, no leftovers from an older lock.
A stamp (lock sha256, target, and each wheel's size, mtime and sha256 as
fetched) makes the warm path a no-op: a wheel whose size or mtime moved is
hashed again, and one whose bytes changed (a flipped byte, a truncated copy)
makes the wheelhouse stale, so it is fetched again instead of failing the
build with advice that does not help.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import WheelhouseError, tail
from harness.lock import Lock
from harness.ownership import OWNER_FILE, owner_value
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_stamp(directory: Path, lock: Lock, target: Target) -> list[str]:
    """Stamp `directory`'s wheels (as they are now: checked by pip against the lock) fresh for `lock` and `target`."""
    wheels = {}
    for path in sorted(directory.glob("*.whl")):
        st = path.stat()
        wheels[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}
    (directory / STAMP).write_text(json.dumps({"lock_sha256": lock.sha256, "target": target.key(), "wheels": wheels}, indent=2) + "\n")
    return list(wheels)


def why_stale(directory: Path, lock: Lock, target: Target) -> str | None:
    """None when `directory` holds exactly the wheels stamped for `lock` and `target`, with their stamped bytes;
    else why not, in a few words (the fetch says it)."""
    try:
        stamp = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return "no wheelhouse yet" if not directory.is_dir() else "no readable stamp"
    stamped = stamp.get("wheels") if isinstance(stamp, dict) else None
    if not isinstance(stamped, dict) or not stamped:
        return "a stamp of an older format"
    if stamp.get("lock_sha256") != lock.sha256 or stamp.get("target") != target.key():
        return "stamped for another lock or platform"
    if {p.name for p in directory.glob("*.whl")} != set(stamped):
        return "other wheels than the stamped ones"
    for name, seen in stamped.items():
        path = directory / name
        try:
            st = path.stat()
            if (st.st_size, st.st_mtime_ns) == (seen.get("size"), seen.get("mtime_ns")):
                continue
            if st.st_size != seen.get("size") or _sha256(path) != seen.get("sha256"):
                return f"{name} changed since it was fetched (corrupt or truncated)"
        except (OSError, AttributeError):
            return f"{name} cannot be read"
    return None


def is_fresh(directory: Path, lock: Lock, target: Target) -> bool:
    return why_stale(directory, lock, target) is None


def staging_prefix(directory: Path) -> str:
    """The name prefix of a fetch's staging directory beside `directory` (`.wheelhouse-staging-...`)."""
    return f".{directory.name}-staging-"


def fetch(directory: Path, lock_path: Path, lock: Lock, target: Target, *, progress: Callable[[str], None] = print) -> bool:
    """Make `directory` hold exactly the locked wheels; return False when it already did."""
    reason = why_stale(directory, lock, target)
    if reason is None:
        return False
    progress(f"fetching {len(lock.pins)} locked wheels for {target.key()} into {directory.name}/ ({reason}; hashes checked)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(directory), dir=directory.parent))
    (staging / OWNER_FILE).write_text(owner_value() + "\n", encoding="ascii")  # a killed fetch's staging: `mlrepro clean`
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
        (staging / OWNER_FILE).unlink()  # not part of the wheelhouse (nor of the build context)
        wheels = write_stamp(staging, lock, target)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
        progress(f"wheelhouse ready: {len(wheels)} wheels")
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
