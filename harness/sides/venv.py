"""The one venv manager: host interpreters that hold exactly a lock.

Two ways to fill a venv, one mechanism underneath (`Venv`: made with the base
interpreter, filled by a pip process through `HostProcesses`, serialized by a
file lock beside it so two runs sharing it never install at once):

- `host_python(config)`: the host side's interpreter. `host.mode = "current"`
  is this interpreter; `"venv"` is `host.venv` pip-synced to the lock from the
  wheelhouse, offline.
- `ensure_venv(lock, venv)`: a venv installed from the package index with
  `--require-hashes` (the demo's drifted environment), reused while its stamp
  says it holds this very lock, else recreated from scratch.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable

from harness.config import Config
from harness.errors import MlreproError, tail
from harness.exclusive import exclusive
from harness.lock import read_lock
from harness.sides.process import HostProcesses

STAMP_FILE = ".mlrepro-stamp"
#: A pip install or sync of a whole ML stack; generous, but a hung index must not hang us forever.
PIP_TIMEOUT = 1800.0
# pip lines worth showing as progress while a venv is installed (the rest is noise).
_PIP_PROGRESS = ("Collecting ", "Installing collected packages", "Successfully installed")


def stamp_text(lock_sha256: str, base_python: str) -> str:
    """What a venv's stamp says: the lock it was installed from and the interpreter it was made with."""
    return f"lock-sha256 {lock_sha256}\nbase-python {base_python}\n"


def venv_is_current(python_exists: bool, stamp: str | None, expected: str) -> bool:
    """Reuse a venv only when its interpreter exists and its stamp is exactly the expected one."""
    return python_exists and stamp == expected


def base_interpreter() -> str:
    """The interpreter venvs are made with: the one under this venv, not the venv's own python."""
    return getattr(sys, "_base_executable", sys.executable)


class Venv:
    """A venv directory: made, filled and stamped under a file lock; `python` is its interpreter."""

    def __init__(self, path: Path, *, progress: Callable[[str], None] = print) -> None:
        self.path, self.progress = path, progress
        self.python = path / "bin" / "python"
        self._processes = HostProcesses()

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the venv's lock: other runs wait (and are told so) until this one is done with it."""
        return exclusive(self.path.parent / f".{self.path.name}.lock", f"the venv {self.path}", progress=self.progress)

    def stamp(self) -> str | None:
        path = self.path / STAMP_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def write_stamp(self, text: str) -> None:
        (self.path / STAMP_FILE).write_text(text, encoding="utf-8")

    def create(self, base: str, *, clear: bool = False) -> None:
        (self.path / STAMP_FILE).unlink(missing_ok=True)
        done = self._processes.run([base, "-m", "venv", *(["--clear"] if clear else []), str(self.path)], timeout=300)
        if done.exit_code != 0:
            raise MlreproError(f"could not create the venv {self.path} with {base}: {tail(done.output, 1) or 'no output'}; "
                               "check that the interpreter has the venv module", evidence=done.output)

    def pip(self, argv: list[str], *, cwd: Path | None = None, what: str, advice: str) -> None:
        """Run a pip-like command for this venv, forwarding pip's milestone lines as progress."""
        def on_line(line: str) -> None:
            if line.startswith(_PIP_PROGRESS):
                self.progress("pip: " + line.strip())

        done = self._processes.run(argv, cwd=cwd, timeout=PIP_TIMEOUT, on_line=on_line)
        if done.exit_code != 0:
            why = "timed out" if done.timed_out else f"exit {done.exit_code}"
            raise MlreproError(f"{what} failed ({why}): {tail(done.output, 1) or 'no output'}; {advice}", evidence=tail(done.output, 40))


def host_python(config: Config, *, progress: Callable[[str], None] = print) -> str:
    """The host interpreter: this one, or `host.venv` pip-synced to the lock (offline, from the wheelhouse)."""
    if config.host.mode == "current":
        return sys.executable
    venv = Venv(config.host.venv, progress=progress)
    with venv.locked():
        if not venv.python.exists():
            progress(f"creating host venv {venv.path}")
            venv.create(base_interpreter())
        progress(f"syncing host venv {venv.path.name} to {config.lock.name} with pip-sync")
        venv.pip([sys.executable, "-m", "piptools", "sync", "--python-executable", str(venv.python),
                  "--pip-args", f"--no-index --find-links {config.wheelhouse.dir} --require-hashes", str(config.lock)],
                 cwd=config.root, what="pip-sync of the host venv", advice="run 'mlrepro wheelhouse' and retry")
    return str(venv.python)


def ensure_venv(lock_path: Path, venv_path: Path, *, base_python: str | None = None,
                progress: Callable[[str], None] = print) -> str:
    """A venv holding exactly `lock_path` (installed with --require-hashes from the index); its python.

    Reused when the stamp says it was installed from this very lock; otherwise
    recreated from scratch, so nothing of an older install survives.
    """
    lock = read_lock(lock_path)  # a malformed lock fails here, before anything is created
    base = base_python or base_interpreter()
    expected = stamp_text(lock.sha256, base)
    venv = Venv(venv_path, progress=progress)
    with venv.locked():
        if venv_is_current(venv.python.exists(), venv.stamp(), expected):
            progress(f"venv {venv_path} is up to date with {lock_path.name} ({lock.sha256[:12]}); reusing it")
            return str(venv.python)
        progress(f"creating venv {venv_path} ({len(lock.pins)} pins from {lock_path.name}, downloaded from the package index)")
        venv.create(base, clear=True)
        venv.pip([str(venv.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                  "--require-hashes", "--only-binary=:all:", "-r", str(lock_path)],
                 what=f"installing {lock_path.name} into {venv_path}",
                 advice="check that the package index is reachable and that the lock has wheels for this Python")
        venv.write_stamp(expected)
    return str(venv.python)


__all__ = ["STAMP_FILE", "Venv", "base_interpreter", "ensure_venv", "host_python", "stamp_text", "venv_is_current"]
