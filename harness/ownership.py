"""Run ownership: who made a resource, and whether that maker still runs. No Docker here.

Every process gets one run id (`RUN_ID`). What it creates carries it: engine
resources as labels (`owner_labels`), host temporary directories in their name
(`run_tempdir`), host processes in their environment (`OWNER_ENV`). `mlrepro
clean` uses the finders below to remove what a run whose process is gone left
behind, and leaves live runs alone.

A process is named by more than its pid (`Owner`): the pid's start time (a
reused pid is another process), the pid namespace (a CI container sharing the
hostname and the engine cannot see our pids, so it must not judge them), the
boot id and the machine id (after a reboot every owner is gone). Whatever
cannot be checked from here counts as alive: cleanup may leave something
behind, never remove what a live run uses. Cleanup keyed by *what a call
created* (each side removes its own container, processes and directory)
never needs these finders: they are for what a killed process could not
remove itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from harness.errors import MlreproError

LABEL_MANAGED = "io.mlrepro.managed"
LABEL_RUN = "io.mlrepro.run"
LABEL_ROLE = "io.mlrepro.role"
LABEL_CONTENT_HASH = "io.mlrepro.content-hash"
LABEL_PID = "io.mlrepro.pid"  # the creating process: `mlrepro clean` removes only what dead processes left
LABEL_HOST = "io.mlrepro.host"  # ... on this host (a pid means nothing on another machine sharing the engine)
LABEL_OWNER = "io.mlrepro.owner"  # the full identity (`Owner`): pid, start time, pid namespace, boot, machine

#: Set in the environment of every host process the harness starts: its run id and owning
#: process, so `mlrepro clean` can find (in /proc) a process whose run was killed and stop it.
OWNER_ENV = "MLREPRO_OWNER"
TEMP_PREFIX = "mlrepro-"
#: Inside every run temp dir: the owner's identity, so a finder in another namespace can tell.
OWNER_FILE = ".mlrepro-owner"

_RUN_ID_FORMAT = re.compile(r"[a-z0-9][a-z0-9_.]{0,31}")  # no '-': it separates the parts of temp dir names


def _run_id() -> str:
    # A caller (CI, a test) may choose the id so it can find what a run made; it must be unique per process.
    chosen = os.environ.get("MLREPRO_RUN_ID")
    if chosen is None:
        return uuid.uuid4().hex[:12]
    if not _RUN_ID_FORMAT.fullmatch(chosen):
        raise MlreproError(f"MLREPRO_RUN_ID: expected 1-32 characters of a-z, 0-9, '_', '.', found {chosen!r}; fix or unset it")
    return chosen


#: One id per process: every resource this process creates carries it.
RUN_ID = _run_id()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def pid_start(pid: int) -> str:
    """The start time of `pid` (clock ticks since boot, /proc/PID/stat field 22); "" when unknown."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    """Who made a resource: enough to tell, from another process, whether that maker still runs."""

    run: str
    pid: int
    start: str = ""  # "" where unknown (not Linux, or an old label)
    pidns: str = ""
    boot: str = ""
    machine: str = ""

    @classmethod
    def current(cls) -> "Owner":
        return cls(RUN_ID, os.getpid(), pid_start(os.getpid()), _pid_namespace(),
                   _read("/proc/sys/kernel/random/boot_id"), _read("/etc/machine-id"))

    def encode(self) -> str:
        return ":".join((self.run, str(self.pid), self.start, self.pidns, self.boot, self.machine))

    @classmethod
    def parse(cls, text: str) -> "Owner | None":
        """The owner in `text` (`encode()`'s form, or the older RUN:PID); None when it is neither."""
        parts = text.strip().split(":")
        if len(parts) == 2 and parts[1].isdigit():
            return cls(parts[0], int(parts[1]))
        if len(parts) != 6 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), *parts[2:])

    def alive(self, here: "Owner | None" = None) -> bool:
        """Whether the owner may still run, judged from `here` (this process). Unknown counts as alive."""
        here = here or CURRENT
        if self.machine and here.machine and self.machine != here.machine:
            return True  # another machine sharing the engine: its pids mean nothing here
        if self.boot and here.boot and self.boot != here.boot:
            return False  # this machine rebooted since: every process of that boot is gone
        if self.pidns and here.pidns and self.pidns != here.pidns:
            return True  # another pid namespace (a CI container with the same hostname): cannot check
        if not pid_alive(self.pid):
            return False
        return not (self.start and self.start != pid_start(self.pid))  # the pid was reused by another process


#: This process, as others will judge it.
CURRENT = Owner.current()


def owner_labels(role: str) -> dict[str, str]:
    """The labels of everything this process creates on an engine: managed, run id, role, owner."""
    return {LABEL_MANAGED: "true", LABEL_RUN: RUN_ID, LABEL_ROLE: role, LABEL_PID: str(os.getpid()),
            LABEL_HOST: socket.gethostname(), LABEL_OWNER: CURRENT.encode()}


def owner_alive(labels: Mapping[str, str]) -> bool:
    """Whether the process that made a labeled resource may still be running.

    Resources with the full identity are judged by it (`Owner.alive`). Older
    ones: unlabeled owners count as gone; owners on another host as alive.
    """
    owner = Owner.parse(labels.get(LABEL_OWNER, ""))
    if owner is not None:
        return owner.alive()
    pid, host = labels.get(LABEL_PID, ""), labels.get(LABEL_HOST, "")
    if not pid.isdigit():
        return False
    return host != socket.gethostname() or pid_alive(int(pid))


def owner_value() -> str:
    """The value of OWNER_ENV for processes this process starts."""
    return CURRENT.encode()


# Host temporary directories -------------------------------------------------------------


def run_tempdir(kind: str) -> Path:
    """A new temporary directory named after this run and process (`mlrepro-<run id>-<pid>-<kind>-...`).

    The name is its label: `mlrepro clean` recognises one that a killed run
    left behind (its process no longer exists) and removes it.
    """
    try:
        path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{RUN_ID}-{os.getpid()}-{kind}-"))
        (path / OWNER_FILE).write_text(owner_value() + "\n", encoding="ascii")
        return path
    except OSError as exc:
        raise MlreproError(f"cannot create a temporary directory in {tempfile.gettempdir()}: {exc.strerror or exc}; "
                           "free space there or point TMPDIR at a writable directory") from None


@contextlib.contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """`run_tempdir` as a context manager: removed on exit, whatever happens."""
    path = run_tempdir(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_tempdirs(run_id: str | None = None, *, include_live: bool = True) -> list[Path]:
    """Temporary directories made by `run_tempdir` (any run, or `run_id`'s), by default also of live processes."""
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{run_id or '*'}-*-*-*"):
        parts = path.name[len(TEMP_PREFIX):].split("-")  # run id, pid, kind, random
        if not path.is_dir() or not parts[1].isdigit():
            continue
        owner = Owner.parse(_read(str(path / OWNER_FILE))) or Owner(parts[0], int(parts[1]))
        if include_live or not owner.alive():
            found.append(path)
    return sorted(found)


def remove_stale_tempdirs(*, include_live: bool = False) -> int:
    """Remove the temporary directories of runs whose process no longer exists (or all, with `include_live`)."""
    stale = run_tempdirs(include_live=include_live)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def stale_staging_dirs(directory: Path, prefix: str, *, include_live: bool = False) -> list[Path]:
    """Directories in `directory` named `prefix...` holding an OWNER_FILE whose owner is gone (all of them with
    `include_live`): what a killed wheelhouse fetch leaves beside the wheelhouse. Unmarked ones are never touched."""
    found = []
    for path in sorted(Path(directory).glob(f"{prefix}*")) if Path(directory).is_dir() else ():
        owner = Owner.parse(_read(str(path / OWNER_FILE))) if path.is_dir() else None
        if owner is not None and (include_live or not owner.alive()):
            found.append(path)
    return found


# Host processes --------------------------------------------------------------------------


def run_processes(run_id: str | None = None, *, include_live: bool = True) -> list[int]:
    """Host processes (any run, or `run_id`'s) found by their OWNER_ENV; Linux (/proc) only."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        marker = next((v[len(OWNER_ENV) + 1:].decode(errors="replace") for v in environ if v.startswith(OWNER_ENV.encode() + b"=")), None)
        owner = Owner.parse(marker) if marker is not None else None
        if owner is None or run_id not in (None, owner.run):
            continue
        if include_live or not owner.alive():
            found.append(int(proc.name))
    return sorted(found)


def stop_stale_processes(*, include_live: bool = False) -> int:
    """Kill the host processes whose run no longer exists (each is its own process group)."""
    pids = [pid for pid in run_processes(include_live=include_live) if pid != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


__all__ = [
    "CURRENT", "LABEL_CONTENT_HASH", "LABEL_HOST", "LABEL_MANAGED", "LABEL_OWNER", "LABEL_PID", "LABEL_ROLE", "LABEL_RUN",
    "OWNER_ENV", "OWNER_FILE", "RUN_ID", "Owner", "pid_start",
    "owner_alive", "owner_labels", "owner_value", "pid_alive", "remove_stale_tempdirs", "run_processes", "run_tempdir",
    "run_tempdirs", "scratch_dir", "stale_staging_dirs", "stop_stale_processes",
]
