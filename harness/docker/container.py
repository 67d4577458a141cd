"""A running container: files in and out, commands run to their end, long-lived processes attached.

`Engine.container(...)` makes one (labeled, removed on exit); this module is
what a caller does with it. Errors are neutral: a timeout is a result
(`ExecResult.timed_out`), what it means is the caller's to say.
"""

from __future__ import annotations

import contextlib
import io
import select
import socket
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Mapping

import docker.errors
import requests.exceptions
from testcontainers.core.container import DockerContainer

from harness.errors import EngineError
from harness.streams import LineReader, Tail

START_HINT = "start one (Docker Desktop, 'sudo systemctl start docker', or scripts/ensure-docker.sh as root on Debian)"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str
    timed_out: bool = False  # killed at the caller's timeout: exit_code and output mean nothing then



def _remove_volume(volume, patience: float = 15) -> None:  # noqa: ANN001
    # The container may still be going (an interrupt removes it from another thread):
    # a volume in use cannot be removed, so retry for a while. Never raises.
    deadline = time.monotonic() + patience
    while True:
        try:
            volume.remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() > deadline:
                return
        except Exception:  # the engine is gone: `mlrepro clean` removes it later
            return
        time.sleep(0.2)


def _quiet_stop(tc: DockerContainer) -> None:
    # Removal must not mask the error that brought us here.
    with contextlib.suppress(Exception):
        tc.stop(force=True, delete_volume=True)


class Container:
    """A running container: put files in, run commands, get files out."""

    def __init__(self, raw) -> None:
        self.raw = raw  # the docker-py Container, for what this class does not cover

    def kill(self) -> None:
        """SIGKILL the container's processes (it stays until its owner removes it); never raises."""
        with contextlib.suppress(Exception):
            self.raw.kill()

    @property
    def user(self) -> str:
        return self.raw.attrs.get("Config", {}).get("User", "") or "0"

    def put_files(self, dest: str, files: Mapping[str, bytes], dirs: tuple[str, ...] = ()) -> None:
        """Write `files` (relative name -> bytes) under `dest`, owned by the container's user."""
        uid, _, gid = self.user.partition(":")
        uid_n = int(uid) if uid.isdigit() else 0
        gid_n = int(gid) if gid.isdigit() else uid_n
        buf = io.BytesIO()
        root = PurePosixPath(dest)
        # A read-only container accepts files only into a mounted volume, at its mount point exactly.
        into_mount = str(root) in {m.get("Destination") for m in self.raw.attrs.get("Mounts") or ()}
        with tarfile.open(fileobj=buf, mode="w") as tar:
            made: set[str] = set()

            def add_dir(path: PurePosixPath) -> None:
                for parent in reversed([path, *path.parents][:-1]):
                    if str(parent) in made or str(parent) == ".":
                        continue
                    made.add(str(parent))
                    info = tarfile.TarInfo(str(parent))
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid_n, gid_n
                    tar.addfile(info)

            rel_root = PurePosixPath(".") if into_mount else PurePosixPath(root.name)
            add_dir(rel_root)
            for d in dirs:
                add_dir(rel_root / d)
            for name, data in sorted(files.items()):
                path = rel_root / name
                add_dir(path.parent)
                info = tarfile.TarInfo(str(path))
                info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid_n, gid_n
                tar.addfile(info, io.BytesIO(data))
        try:
            copied = self.raw.put_archive(str(root if into_mount else root.parent), buf.getvalue())
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"could not copy files into the container at {dest} ({str(exc).splitlines()[0][:200]}); check the engine") from None
        if not copied:
            raise EngineError(f"could not copy files into the container at {dest}")

    def get_dir(self, path: str) -> dict[str, bytes]:
        """Every regular file under `path`, by path relative to it ({} if absent)."""
        try:
            stream, _ = self.raw.get_archive(path)
        except docker.errors.NotFound:
            return {}
        buf = io.BytesIO(b"".join(stream))
        out: dict[str, bytes] = {}
        with tarfile.open(fileobj=buf) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    rel = PurePosixPath(member.name)
                    rel = PurePosixPath(*rel.parts[1:]) if len(rel.parts) > 1 else rel
                    out[str(rel)] = tar.extractfile(member).read()
        return out

    def exec(self, command: list[str], *, timeout: float, env: Mapping[str, str] | None = None, workdir: str | None = None) -> ExecResult:
        """Run `command` to its end; past `timeout` the container is killed and the result says `timed_out`.

        What a timeout means (a step too slow, a resolver stuck) is the caller's to say.
        """
        result: dict = {}
        output = Tail()
        api = self.raw.client.api

        def run() -> None:
            try:
                exec_id = api.exec_create(self.raw.id, command, environment=dict(env or {}), workdir=workdir)["Id"]
                # Streamed, so output of any size costs a bounded tail, not the whole of it in memory.
                for chunk in api.exec_start(exec_id, stream=True, demux=False):
                    output.append(chunk)
                code = api.exec_inspect(exec_id).get("ExitCode")
                result["value"] = ExecResult(code if code is not None else -1, output.text())
            except Exception as exc:  # reported below, in the caller's thread
                result["error"] = exc

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            with contextlib.suppress(Exception):
                self.raw.kill()
            return ExecResult(-9, output.text(), timed_out=True)
        if "error" in result:
            exc = result["error"]
            cause = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise EngineError(f"the engine failed while running {command[0]} in a container ({cause}); {EngineError.RECOVER}",
                              cause=cause) from None
        return result["value"]

    def kill_reason(self, since: float) -> str:
        """Why a process in this container got SIGKILL after `since` (time.time()): evidence for the message."""
        try:
            events = self.raw.client.events(since=since, until=time.time(), decode=True,
                                            filters={"container": self.raw.id, "event": "oom"})
            if any(True for _ in events):
                limit = self.raw.attrs.get("HostConfig", {}).get("Memory") or 0
                return f"killed: out of memory (the container's limit is {limit // 2**20} MiB; raise run.mem_limit or use less memory)" if limit else "killed: out of memory"
            # A container killed from outside takes a moment to be reported stopped.
            with contextlib.suppress(requests.exceptions.RequestException):
                self.raw.wait(timeout=2)
            self.raw.reload()
            state = self.raw.attrs.get("State", {})
        except docker.errors.NotFound:
            return "killed: the container was removed while the step ran"
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return "killed: the engine stopped answering"
        if not state.get("Running"):
            return f"killed: the container stopped while the step ran (exit {state.get('ExitCode')}; killed from outside or by the engine)"
        return "killed by SIGKILL"

    def exec_stream(self, command: list[str], *, env: Mapping[str, str] | None = None, workdir: str | None = None) -> "ExecStream":
        """Start `command` with stdin/stdout/stderr attached (a long-lived worker); see ExecStream."""
        api = self.raw.client.api
        try:
            exec_id = api.exec_create(self.raw.id, command, stdin=True, stdout=True, stderr=True, tty=False,
                                      environment=dict(env or {}), workdir=workdir)["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"could not start {command[0]} in the container ({str(exc).splitlines()[0][:200]}); {START_HINT}") from None
        return ExecStream(api, exec_id, sock)


class ExecStream(LineReader):
    """A process running in a container with its stdin/stdout/stderr attached (no tty).

    docker multiplexes both output streams on one socket, each chunk framed
    by 8 bytes (stream type 1 = stdout / 2 = stderr, three zero bytes,
    big-endian uint32 length). `readline` reads and demultiplexes in the
    caller's thread (no reader thread: a request/response worker answers
    faster without the hand-off); stderr is collected into `stderr` as it
    passes, for evidence. `close()` half-closes the socket, which the engine
    turns into EOF on the process's stdin, then drains the output for a
    moment so the process can exit by itself.
    """

    def __init__(self, api, exec_id: str, sock) -> None:
        self._api, self.exec_id, self._wrapper = api, exec_id, sock
        self._sock = sock._sock  # the raw socket under docker-py's SocketIO wrapper
        self._sock.setblocking(True)
        super().__init__()  # _stdout: demultiplexed stdout not yet returned as lines
        self._frames = b""  # received, not yet demultiplexed
        self._stderr = bytearray()
        self._closed = False

    @property
    def stderr(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise BrokenPipeError(f"the process in the container no longer reads its stdin ({exc})") from None

    def _demux(self) -> None:
        frames = self._frames
        pos = 0
        while len(frames) - pos >= 8:
            size = int.from_bytes(frames[pos + 4 : pos + 8], "big")
            if len(frames) - pos - 8 < size:
                break
            target = self._stderr if frames[pos] == 2 else self._stdout
            target += frames[pos + 8 : pos + 8 + size]
            pos += 8 + size
        self._frames = frames[pos:]

    def _receive(self, timeout: float | None) -> bool:
        """Read what the socket has (waiting up to `timeout`); False on timeout."""
        if self._eof:
            return True
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = self._sock.recv(262144)
        except OSError:
            chunk = b""
        if chunk:
            self._frames += chunk
            self._demux()
        else:
            self._eof = True
        return True

    def _ended(self) -> bool:
        return self._eof or self._closed

    def exit_code(self) -> int | None:
        """The process's exit code, or None while it runs (or when the engine cannot tell)."""
        try:
            info = self._api.exec_inspect(self.exec_id)
        except Exception:  # the container is gone: no exit code to be had
            return None
        return None if info.get("Running") else info.get("ExitCode")

    def close(self, timeout: float = 5.0) -> None:
        """EOF on stdin, let the output end (up to `timeout`, stderr still collected), drop the connection."""
        if self._closed:
            return
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError, ValueError):
            while not self._eof and (left := deadline - time.monotonic()) > 0:
                self._receive(left)
        self._closed = True
        with contextlib.suppress(Exception):
            self._wrapper.close()
        with contextlib.suppress(OSError):
            self._sock.close()
