"""The one adapter in front of Docker.

Everything else in the harness talks to `Engine` and `Container`; nothing else
imports docker or testcontainers. Resources are labeled (`io.mlrepro.*`, with
a run id) and are context managers that remove what they create in `finally`,
so a crash, a timeout or Ctrl-C leaves nothing behind, and `mlrepro clean`
can find whatever a killed process could not remove.

testcontainers' reaper (Ryuk) is disabled: its image cannot be pulled on
offline engines, and our own labels + `finally` do its job.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import socket
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Mapping

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker  # noqa: E402
import docker.errors  # noqa: E402
import requests.exceptions  # noqa: E402
from docker.utils.build import exclude_paths  # noqa: E402
from testcontainers.core.config import testcontainers_config  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from harness.errors import BuildError, EngineError, StepError, tail  # noqa: E402
from harness.streams import LineReader  # noqa: E402

testcontainers_config.ryuk_disabled = True

LABEL_MANAGED = "io.mlrepro.managed"
LABEL_RUN = "io.mlrepro.run"
LABEL_ROLE = "io.mlrepro.role"
LABEL_CONTENT_HASH = "io.mlrepro.content-hash"
LABEL_PID = "io.mlrepro.pid"  # the creating process: `mlrepro clean` removes only what dead processes left
LABEL_HOST = "io.mlrepro.host"  # ... on this host (a pid means nothing on another machine sharing the engine)
_RUN_ID_FORMAT = re.compile(r"[a-z0-9][a-z0-9_.]{0,31}")  # no '-': it separates the parts of temp dir names


def _run_id() -> str:
    # A caller (CI, a test) may choose the id so it can find what a run made; it must be unique per process.
    chosen = os.environ.get("MLREPRO_RUN_ID")
    if chosen is None:
        return uuid.uuid4().hex[:12]
    if not _RUN_ID_FORMAT.fullmatch(chosen):
        raise EngineError(f"MLREPRO_RUN_ID: expected 1-32 characters of a-z, 0-9, '_', '.', found {chosen!r}; fix or unset it")
    return chosen


#: One id per process: every resource this process creates (containers, volumes,
#: temporary directories) carries it.
RUN_ID = _run_id()

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the legacy builder colours stderr lines
START_HINT = "start one (Docker Desktop, 'sudo systemctl start docker', or scripts/ensure-docker.sh as root on Debian)"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class Resource:
    """Something the harness created on the engine, found by its labels."""

    kind: str  # "container", "volume" or "network"
    id: str
    labels: Mapping[str, str]

    @property
    def owner_alive(self) -> bool:
        """Whether the process that created it may still be running.

        Unlabeled owners (resources older than the owner labels) count as gone;
        owners on another host count as alive (their pid cannot be checked here).
        """
        pid, host = self.labels.get(LABEL_PID, ""), self.labels.get(LABEL_HOST, "")
        if not pid.isdigit():
            return False  # made before owners were labeled: nobody to wait for
        return host != socket.gethostname() or pid_alive(int(pid))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_labels(role: str) -> dict[str, str]:
    """The labels of everything this process creates: managed, run id, role, owner."""
    return {LABEL_MANAGED: "true", LABEL_RUN: RUN_ID, LABEL_ROLE: role, LABEL_PID: str(os.getpid()), LABEL_HOST: socket.gethostname()}


def context_files(context: Path, dockerfile: Path) -> list[str]:
    """The files the engine will receive as build context, honouring .dockerignore.

    docker-py's own implementation, so the content hash covers exactly what
    the build sees.
    """
    ignore = context / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        patterns = [
            line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")
        ]
    rel_dockerfile = os.path.relpath(dockerfile, context)
    return sorted(p for p in exclude_paths(str(context), patterns, dockerfile=rel_dockerfile) if (context / p).is_file())


class Engine:
    """A connected Docker engine (docker-py client underneath, reachable as `.client`)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: float = 10) -> "Engine":
        try:
            client = docker.from_env(timeout=int(timeout))
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            where = os.environ.get("DOCKER_HOST", "the default socket")
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise EngineError(f"no Docker engine answers at {where} ({reason}); {START_HINT}") from None
        return cls(client)

    def architecture(self) -> str:
        """The engine's CPU architecture as Python names it (x86_64, aarch64)."""
        arch = self.client.info().get("Architecture", "x86_64")
        return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)

    # Images -----------------------------------------------------------------

    def image_id(self, ref: str) -> str | None:
        try:
            return self.client.images.get(ref).id
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            raise EngineError(f"the engine could not inspect image {ref} ({exc.explanation}); check the engine") from None

    def image_attrs(self, ref: str) -> dict:
        return self.client.images.get(ref).attrs

    def try_pull(self, ref: str) -> bool:
        """Pull `ref` if a registry serves it; False (not an error) when none does."""
        try:
            self.client.images.pull(ref)
            return True
        except (docker.errors.APIError, docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def tag(self, image_id: str, ref: str) -> None:
        repo, _, tag = ref.rpartition(":")
        self.client.images.get(image_id).tag(repo, tag)

    def build(
        self,
        *,
        context: Path,
        dockerfile: Path,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        timeout: float,
        on_line: Callable[[str], None] = lambda line: None,
        nocache: bool = False,
    ) -> str:
        """Build and tag an image; return its ID. Raises BuildError with the log tail."""
        log: list[str] = []
        image_id = None
        stream = None
        try:
            stream = self.client.api.build(
                path=str(context),
                dockerfile=os.path.relpath(dockerfile, context),
                tag=tag,
                buildargs=dict(buildargs),
                labels=dict(labels),
                rm=True,
                forcerm=True,  # intermediate containers go even when a step fails
                pull=False,
                nocache=nocache,
                decode=True,
                timeout=int(timeout),
            )
            for chunk in stream:
                if "stream" in chunk:
                    for line in _ANSI.sub("", chunk["stream"]).splitlines():
                        if line.strip():
                            log.append(line)
                            on_line(line)
                elif "errorDetail" in chunk or "error" in chunk:
                    message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                    log.append(message)
                    raise BuildError(f"image build failed: {_build_failure(log, message)}", evidence=tail("\n".join(log), 40))
                elif "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except docker.errors.APIError as exc:
            # The engine answered, and refused: a Dockerfile it cannot parse, a bad build argument.
            explanation = str(exc.explanation or exc).strip()
            raise BuildError(
                f"image build failed: the engine refused it ({explanation.splitlines()[0][:240] if explanation else exc.status_code}); fix {os.path.relpath(dockerfile, context)}",
                evidence=tail("\n".join([*log, explanation]), 40),
            ) from None
        except requests.exceptions.RequestException as exc:
            raise BuildError(
                f"image build failed: the engine did not complete it ({str(exc).splitlines()[0][:200]}); {START_HINT}",
                evidence=tail("\n".join(log), 40),
            ) from None
        finally:
            # Closing the stream drops the last reference to the HTTP response, so the
            # connection closes now, also on Ctrl-C: the engine then cancels the build
            # and (forcerm) removes its intermediate container.
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
        if image_id is None:
            image_id = self.image_id(tag)
        if image_id is None:
            raise BuildError("image build ended without an image; see the build log tail", evidence=tail("\n".join(log), 40))
        return image_id

    def import_rootfs(self, tar_path: Path, ref: str, changes: list[str]) -> str:
        """`docker import` of a root filesystem tarball; returns the image ID."""
        repo, _, tag = ref.rpartition(":")
        try:
            # From a path, docker-py sends a sized body; import_image_from_stream's chunked
            # upload of a file object is refused by the engine ("invalid byte in chunk length").
            result = self.client.api.import_image(src=str(tar_path), repository=repo, tag=tag, changes=changes)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"docker import of {ref} failed ({str(exc).splitlines()[0][:200]}); check the engine and free disk space") from None
        text = result.decode(errors="replace") if isinstance(result, bytes) else str(result)
        if '"error' in text:
            raise EngineError(f"docker import of {ref} failed: {text[:300]}")
        image_id = self.image_id(ref)
        if image_id is None:
            raise EngineError(f"docker import of {ref} produced no image")
        return image_id

    # Containers -------------------------------------------------------------

    @contextlib.contextmanager
    def container(
        self,
        image: str,
        *,
        role: str,
        env: Mapping[str, str] | None = None,
        mem_limit: str | None = None,
        network: str = "none",
        writable: str | None = None,
    ) -> Iterator["Container"]:
        """A started, labeled container idling until removed on exit (whatever happens).

        With `writable` (an absolute path) the container is locked down: read-only
        root filesystem, no capabilities, no privilege gain; a labeled volume
        mounted at `writable` is the only place it can write, and it is removed
        with the container. (A volume, not a tmpfs: the engine can copy files
        out of a volume, not out of a tmpfs.)
        """
        labels = run_labels(role)
        kwargs: dict = {"labels": labels, "network": network}
        if mem_limit:
            kwargs["mem_limit"] = mem_limit
            kwargs["memswap_limit"] = mem_limit  # no swap: a memory limit must really bite
        volume = None
        if writable:
            try:
                volume = self.client.volumes.create(name=f"mlrepro-{RUN_ID}-{uuid.uuid4().hex[:8]}", labels=labels)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise EngineError(f"could not create a volume for {writable} ({str(exc).splitlines()[0][:200]}); {START_HINT}") from None
            kwargs.update(read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"])
        tc = DockerContainer(image, command=["sleep", "infinity"], env=dict(env or {})).with_kwargs(**kwargs)
        if volume is not None:
            tc.with_volume_mapping(volume.name, writable, mode="rw")
        try:
            try:
                tc.start()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise EngineError(f"could not start a container from {image} ({str(exc).splitlines()[0][:200]}); check the image and the engine") from None
            yield Container(tc.get_wrapped_container())
        finally:
            _quiet_stop(tc)
            if volume is not None:
                _remove_volume(volume)

    def managed_resources(self, run_id: str | None = None) -> list[Resource]:
        """Containers, volumes and networks labeled by the harness (any run, or `run_id`'s)."""
        labels = [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])
        try:
            found = [Resource("container", c.id, c.labels) for c in self.client.containers.list(all=True, filters={"label": labels})]
            found += [Resource("volume", v.name, v.attrs.get("Labels") or {}) for v in self.client.volumes.list(filters={"label": labels})]
            found += [Resource("network", n.id, n.attrs.get("Labels") or {}) for n in self.client.networks.list(filters={"label": labels})]
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"could not list the harness's resources ({str(exc).splitlines()[0][:200]}); {START_HINT}") from None
        return found

    def leftovers(self, run_id: str | None = None) -> list[str]:
        """IDs of containers, volumes and networks labeled by the harness (any run, or `run_id`'s) still on the engine."""
        return [r.id for r in self.managed_resources(run_id)]

    def remove_leftovers(self, *, include_live: bool = False, run_id: str | None = None) -> dict[str, int]:
        """Remove what runs left behind: by default only what processes no longer running made.

        Returns counts by kind, plus "skipped" for resources of runs still in
        progress (kept unless `include_live`: removing them would break those runs).
        `run_id` limits it to one run (this process's own, on an interrupt).
        """
        counts = {"container": 0, "volume": 0, "network": 0, "skipped": 0}
        # Containers first: a volume or network in use cannot be removed.
        for res in sorted(self.managed_resources(run_id), key=lambda r: ("container", "network", "volume").index(r.kind)):
            if res.owner_alive and not include_live:
                counts["skipped"] += 1
                continue
            getter = {"container": self.client.containers, "volume": self.client.volumes, "network": self.client.networks}[res.kind]
            try:
                item = getter.get(res.id)
                if res.kind == "container":
                    item.remove(force=True, v=True)
                elif res.kind == "volume":
                    item.remove(force=True)
                else:
                    item.remove()
            except docker.errors.NotFound:
                continue
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise EngineError(f"could not remove {res.kind} {res.id[:12]} ({str(exc).splitlines()[0][:200]}); retry 'mlrepro clean'") from None
            counts[res.kind] += 1
        return counts

    # Registries (mlrepro release) ---------------------------------------------

    def push(self, ref: str, *, auth_config: Mapping[str, str] | None = None,
             on_layer: Callable[["LayerProgress"], None] = lambda event: None, secrets: tuple[str, ...] = ()) -> str:
        """Push `ref` (REGISTRY/REPOSITORY:TAG); return the manifest digest the registry stored.

        Every line of the stream is scanned (`scan_registry_stream`): the engine
        reports a failed push as an `errorDetail` line inside an HTTP 200
        stream, and the digest only in the final `aux` line. `auth_config` is
        sent with this request only (nothing is written to a docker config).
        """
        repository, tag = _split_tag(ref)
        try:
            stream = self.client.api.push(repository, tag=tag, stream=True, decode=True,
                                          auth_config=dict(auth_config) if auth_config else None)
            outcome = scan_registry_stream(stream, action=f"push of {ref}", on_layer=on_layer, secrets=secrets)
        except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
            raise EngineError(f"the engine failed during the push of {ref} ({_redacted_first(exc, secrets)}); {START_HINT}") from None
        if not outcome.digest:
            from harness.release.registry import PushError

            raise PushError(f"the push of {ref} ended without a digest (no final aux line); nothing can be claimed as released, retry the push",
                            evidence=tail("\n".join(outcome.lines), 40))
        return outcome.digest

    def pull(self, ref: str, *, auth_config: Mapping[str, str] | None = None,
             on_layer: Callable[["LayerProgress"], None] = lambda event: None, secrets: tuple[str, ...] = ()) -> str:
        """Pull `ref` (a tag or REPOSITORY@sha256:...), scanning the stream for errors; return the image ID."""
        repository, sep, digest = ref.partition("@")
        if not sep:
            repository, digest = _split_tag(ref)
        try:
            stream = self.client.api.pull(repository, tag=digest, stream=True, decode=True,
                                          auth_config=dict(auth_config) if auth_config else None)
            scan_registry_stream(stream, action=f"pull of {ref}", on_layer=on_layer, secrets=secrets)
        except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
            raise EngineError(f"the engine failed during the pull of {ref} ({_redacted_first(exc, secrets)}); {START_HINT}") from None
        image_id = self.image_id(ref)
        if image_id is None:
            raise EngineError(f"the pull of {ref} reported success but the engine has no such image; retry the pull")
        return image_id

    def untag(self, ref: str) -> bool:
        """Remove the name `ref` (tag or digest reference), never the image: False when it is the image's only name."""
        try:
            attrs = self.client.images.get(ref).attrs
        except docker.errors.ImageNotFound:
            return False
        names = [*(attrs.get("RepoTags") or []), *(attrs.get("RepoDigests") or [])]
        if not [name for name in names if name != ref]:
            return False
        with contextlib.suppress(docker.errors.ImageNotFound):
            self.client.api.remove_image(ref, noprune=True)
        return True

    def registry_credentials(self, registry: str) -> tuple[str, str] | None:
        """(user, password) the user's docker config holds for `registry` (credential helpers included), or None.

        An identity token comes back as ("<token>", token), docker's own convention.
        """
        import docker.auth

        try:
            found = docker.auth.load_config().resolve_authconfig(registry)
        except docker.errors.DockerException:
            return None
        if not found:
            return None
        if found.get("IdentityToken"):
            return ("<token>", found["IdentityToken"])
        user, password = found.get("Username") or found.get("username"), found.get("Password") or found.get("password")
        return (user, password) if user and password else None


def _build_failure(log: list[str], engine_message: str) -> str:
    """The most telling line of a failed build: a Dockerfile's own `error:` line, else the engine's."""
    for line in reversed(log):
        if line.strip().lower().startswith("error:"):
            return line.strip()[6:].strip()[:300]
    return (engine_message.strip().splitlines() or ["no message"])[-1][:300] + "; the build log tail follows"


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

    def exec(self, command: list[str], *, timeout: float, env: Mapping[str, str] | None = None, workdir: str | None = None, step: str = "") -> ExecResult:
        """Run `command`; past `timeout` the container is killed and StepError raised."""
        result: dict = {}

        def run() -> None:
            try:
                code, output = self.raw.exec_run(command, environment=dict(env or {}), workdir=workdir, demux=False)
                result["value"] = ExecResult(code if code is not None else -1, (output or b"").decode("utf-8", "replace"))
            except Exception as exc:  # reported below, in the caller's thread
                result["error"] = exc

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            with contextlib.suppress(Exception):
                self.raw.kill()
            raise StepError(
                f"step {step or command[0]} in the container exceeded its timeout of {timeout:g} s and was killed; raise steps[].timeout or make the step faster",
                where="image", step=step, exit_code_seen=None,
            )
        if "error" in result:
            exc = result["error"]
            raise EngineError(
                f"the engine failed while running step {step or command[0]} ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}); "
                "once it answers again (restart Docker, or scripts/ensure-docker.sh as root on Debian), run 'mlrepro clean' to remove what this run left on it"
            ) from None
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


# Registry streams (push, pull) ----------------------------------------------------------------


@dataclass(frozen=True)
class LayerProgress:
    """One progress line of a push or pull: a layer's status and, while moving, bytes done of total."""

    layer: str
    status: str
    current: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class StreamOutcome:
    digest: str | None
    lines: tuple[str, ...]


_STREAM_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# How the engine words a registry's refusal / absence in a stream's error line (distribution, ACR, ECR, Docker Hub).
_AUTH_FAILURES = ("unauthorized", "authentication required", "denied: requested access", "no basic auth credentials",
                  "incorrect username or password")
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "connection reset", "dial tcp", "server misbehaving")


def scan_registry_stream(chunks: Iterable[Mapping], *, action: str, on_layer: Callable[[LayerProgress], None] = lambda e: None,
                         secrets: tuple[str, ...] = ()) -> StreamOutcome:
    """Pure: read a push/pull stream to its end; raise on the first error line, else the digest it reported.

    The engine answers HTTP 200 and reports failure as a line with `error` /
    `errorDetail`, so every line is looked at. The digest is taken from the
    final `aux` line (the `TAG: digest: ... size: N` status line as fallback).
    Errors are classified: credentials refused -> RegistryAuthError, nothing
    answering -> RegistryUnreachable, anything else -> PushError; the
    (redacted) stream tail travels as evidence.
    """
    from harness.release.registry import PushError, RegistryAuthError, RegistryUnreachable, redact

    lines: list[str] = []
    digest = None
    status_digest = None
    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = redact(str(chunk.get("error") or detail.get("message") or "unknown error").strip(), secrets)
            lines.append(f"error: {message}")
            evidence = tail("\n".join(lines), 40)
            lowered = message.lower()
            if any(word in lowered for word in _AUTH_FAILURES):
                raise RegistryAuthError(f"{action} failed: the registry refused the credentials ({message[:300]}); "
                                        "check the user name and password or token, and its push permission", evidence=evidence)
            if any(word in lowered for word in _UNREACHABLE):
                raise RegistryUnreachable(f"{action} failed: the registry does not answer ({message[:300]}); check the registry address, or start it",
                                          evidence=evidence)
            raise PushError(f"{action} failed ({message[:300]}); nothing was released, fix the cause and retry", evidence=evidence)
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            digest = str(aux["Digest"])
            continue
        status = str(chunk.get("status", ""))
        layer = chunk.get("id")
        if layer and status:
            progress = chunk.get("progressDetail") or {}
            on_layer(LayerProgress(str(layer), status, progress.get("current"), progress.get("total")))
            if status not in ("Pushing", "Downloading", "Extracting"):  # the per-chunk lines would drown the evidence
                lines.append(f"{layer}: {status}")
        elif status:
            lines.append(redact(status, secrets))
            found = _STREAM_DIGEST.search(status) or (re.match(r"Digest: (sha256:[0-9a-f]{64})", status))
            if found:
                status_digest = found.group(1)
    return StreamOutcome(digest or status_digest, tuple(lines))


def _split_tag(ref: str) -> tuple[str, str]:
    """REGISTRY[:PORT]/REPOSITORY:TAG -> (REGISTRY[:PORT]/REPOSITORY, TAG); the registry's port is not a tag."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"ref={ref!r}: expected REPOSITORY:TAG")
    return repository, tag


def _redacted_first(exc: BaseException, secrets: tuple[str, ...]) -> str:
    from harness.release.registry import redact

    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return redact(text, secrets)
