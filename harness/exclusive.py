"""One writer at a time: a file lock that other runs wait on, and are told they wait.

Two verifications of one project at once used to build the same tag twice
with different image IDs (the report named one, the tag the other), and two
`--host-mode venv` runs raced on pip-sync. Everything that writes shared
project state (the wheelhouse, the image tag, a venv, the lock file, the
release history) does it under `exclusive(...)` of that state's lock file.
The lock is an advisory `flock`: the kernel releases it when the holder dies,
so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Callable, Iterator

from harness.errors import MlreproError


@contextlib.contextmanager
def exclusive(lock_file: Path, what: str, *, progress: Callable[[str], None] = lambda message: None) -> Iterator[None]:
    """Hold `lock_file` exclusively; while another run holds it, say so once and wait."""
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        guard = open(lock_file, "a")  # noqa: SIM115 - closed in finally, which also releases the lock
    except OSError as exc:
        raise MlreproError(f"cannot create the lock file {lock_file} ({exc.strerror or exc}); make {lock_file.parent} writable") from None
    try:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another run to finish with {what} ({lock_file})")
            fcntl.flock(guard, fcntl.LOCK_EX)
        yield
    finally:
        guard.close()


def project_lock(root: Path) -> Path:
    """The lock file that serializes writes to one project's shared state."""
    return root / ".mlrepro" / "project.lock"


__all__ = ["exclusive", "project_lock"]
