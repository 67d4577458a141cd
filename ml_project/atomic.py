"""Atomic file writes (temp file in the same directory + os.replace).

Readers and the harness's byte comparisons never see a half-written file, and a
failed write leaves neither the target nor a temp file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from ml_project.errors import ProjectError


def check_writable_dir(directory: Path, what: str) -> None:
    """Fail early (ProjectError) unless `directory` exists, is a directory and is writable."""
    if not directory.exists():
        raise ProjectError(
            f"{what} directory '{directory}' does not exist; expected an existing directory: "
            "create it or choose another path"
        )
    if not directory.is_dir():
        raise ProjectError(f"{what} directory '{directory}' is not a directory; choose another path")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ProjectError(
            f"{what} directory '{directory}' is not writable; fix its permissions or choose another path"
        )


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; OSErrors become ProjectError and leave no file."""
    path = Path(path)
    check_writable_dir(path.parent, "output")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ProjectError(
            f"cannot write output file '{path}': {exc.strerror or exc}; expected a writable file path: "
            "fix the permissions or choose another location"
        ) from None


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 `text` (use '\\n' line endings) atomically."""
    write_bytes(path, text.encode("utf-8"))
