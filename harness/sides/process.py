"""The one manager of host processes: every process the harness starts on the host goes through it.

Each process runs in a session of its own (so the whole group can be killed),
with stdin from /dev/null unless it is an attached worker, and with
`harness.ownership.OWNER_ENV` in its environment, so `mlrepro clean` finds it
if this process is killed before it could stop it. A `HostProcesses` belongs
to whoever made it (one per side): `kill_all` stops only its own processes,
never another run's or another side's.

Two ways to run:

- `run(argv, ...)`: to completion under a timeout that is the process's own:
  output is read by a thread (only a bounded tail is kept) and lines can be
  forwarded as progress. The whole process tree is the run's: every
  descendant carries a tree token in its environment, so one that left the
  group (`setsid`, a double fork) is still found, killed when the run ends
  and reported in `Completed.leftovers`; none of them can hold the caller by
  keeping the output pipe open.
- `spawn(argv, ...)`: a long-lived process with stdin/stdout attached
  (`ProcessStream`, the host twin of `harness.docker.ExecStream`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from harness.ownership import OWNER_ENV, owner_value
from harness.streams import LineReader, Tail

#: Set in the environment of every process a run starts, unique per run: finds its whole tree.
TREE_ENV = "MLREPRO_TREE"

#: How long output may keep coming after the process itself exited (a descendant holding the pipe).
_DRAIN_AFTER_EXIT = 2.0


@dataclass(frozen=True)
class Completed:
    """How a process run to completion ended: `exit_code` None when it was killed at its timeout."""

    exit_code: int | None
    output: str
    #: Descendants still running when the process ended (pid and command line); they were killed.
    leftovers: tuple[str, ...] = ()

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


class HostProcesses:
    """The host processes one owner (a side, a venv install) started and has not yet seen end."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def _popen(self, argv: list[str], *, cwd: Path | None, env: Mapping[str, str] | None, attached: bool,
               tree: str = "") -> subprocess.Popen:
        env = {**(os.environ if env is None else env), OWNER_ENV: owner_value(), TREE_ENV: tree or uuid.uuid4().hex}
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env,
            stdin=subprocess.PIPE if attached else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if attached else subprocess.STDOUT,
            bufsize=0, start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        return proc

    def _forget(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def run(self, argv: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float,
            on_line: Callable[[str], None] | None = None) -> Completed:
        """Run `argv` to its end (stdout and stderr together); past `timeout` its whole group is killed."""
        tree = uuid.uuid4().hex
        proc = self._popen(argv, cwd=cwd, env=env, attached=False, tree=tree)
        output = Tail()
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, output, on_line), daemon=True)
        reader.start()
        leftovers: tuple[str, ...] = ()
        try:
            try:
                proc.wait(timeout)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
            # The process is gone (or timed out): whatever it left goes too, in its group or out
            # of it, so a forked child holding stdout cannot make us wait.
            _kill_group(proc)
            if code is None:
                proc.wait()
            leftovers = kill_tree(tree)
            reader.join(_DRAIN_AFTER_EXIT)
            return Completed(code, output.text(), leftovers)
        finally:
            if proc.poll() is None:  # interrupted: the process must not outlive us
                _kill_group(proc)
                proc.wait()
            if not leftovers:
                kill_tree(tree)
            with contextlib.suppress(OSError):
                proc.stdout.close()  # type: ignore[union-attr]
            self._forget(proc)

    def spawn(self, argv: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> "ProcessStream":
        """Start `argv` with stdin/stdout/stderr attached; the stream's `close()` ends it."""
        return ProcessStream(self, self._popen(argv, cwd=cwd, env=env, attached=True))

    def kill_all(self) -> None:
        """SIGKILL every process group this owner started that is still running."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc)


def _read_lines(pipe, output: Tail, on_line: Callable[[str], None] | None) -> None:  # noqa: ANN001
    with contextlib.suppress(OSError, ValueError):
        for line in iter(lambda: pipe.readline(65536), b""):
            output.append(line)
            if on_line is not None:
                on_line(line.decode("utf-8", "replace").rstrip("\n"))


def tree_members(tree: str) -> list[int]:
    """Processes whose environment carries the tree token `tree` (Linux /proc; [] elsewhere)."""
    marker = f"{TREE_ENV}={tree}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def kill_tree(tree: str) -> tuple[str, ...]:
    """SIGKILL every live process of the tree; what was running (pid and command), for the report."""
    killed = []
    for pid in tree_members(tree):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state == "Z":  # already dead, waiting to be reaped by its parent
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(f"pid {pid}: {cmdline[:120]}")
    return tuple(killed)


def _kill_group(proc: subprocess.Popen) -> None:
    # Not once it is reaped and its group is empty: a reused pid must never be signalled.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class ProcessStream(LineReader):
    """A host process with stdin/stdout attached, the same interface as `harness.docker.ExecStream`.

    stdout is read in the caller's thread (select + os.read: no hand-off
    between threads per answer); stderr is drained by a thread so a chatty
    process can never block on a full pipe.
    """

    def __init__(self, owner: HostProcesses, proc: subprocess.Popen) -> None:
        self._owner, self.proc = owner, proc
        self._fd = proc.stdout.fileno()  # type: ignore[union-attr]
        super().__init__()
        self._stderr = bytearray()
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()

    def _read_stderr(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: self.proc.stderr.read(65536), b""):  # type: ignore[union-attr]
                self._stderr += chunk

    @property
    def stderr(self) -> str:
        if self.proc.poll() is not None:
            self._stderr_thread.join(1.0)  # the process is gone: let the drain catch its last words
        return self._stderr.decode("utf-8", "replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)  # unbuffered: a BrokenPipeError here means the process is gone

    def _receive(self, timeout: float) -> bool:
        if not select.select([self._fd], [], [], timeout)[0]:
            return False
        chunk = os.read(self._fd, 262144)
        if chunk:
            self._stdout += chunk
        else:
            self._eof = True
        return True

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL the process group (not once the process is reaped: its pid may be reused)."""
        if self.proc.poll() is None:
            _kill_group(self.proc)

    def close(self, timeout: float = 5.0) -> None:
        """EOF on stdin, wait up to `timeout` for the process to exit, then kill whatever remains."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.kill()
        self.proc.wait()
        self._stderr_thread.join(1.0)
        for pipe in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]
        self._owner._forget(self.proc)


__all__ = ["TREE_ENV", "Completed", "HostProcesses", "ProcessStream", "kill_tree", "tree_members"]
