"""Files the harness writes for people to keep: all of them, or nothing.

A report, a lock or a release record that is half written is worse than none:
each is written to a temporary file beside its destination and renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.errors import MlreproError


def write_atomic(path: Path, text: str) -> None:
    """Write all of `text` or nothing: a temp file beside `path`, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise MlreproError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp creates 0600; keep the mode of the file we replace, else the usual 0644 (umask).
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise MlreproError(f"cannot write {path}: {exc.strerror or exc}; free space or choose another path") from None
