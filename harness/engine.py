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
import tarfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker  # noqa: E402
import docker.errors  # noqa: E402
import requests.exceptions  # noqa: E402
from docker.utils.build import exclude_paths  # noqa: E402
from testcontainers.core.config import testcontainers_config  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from harness.errors import BuildError, EngineError, StepError, tail  # noqa: E402

testcontainers_config.ryuk_disabled = True

LABEL_MANAGED = "io.mlrepro.managed"
LABEL_RUN = "io.mlrepro.run"
LABEL_ROLE = "io.mlrepro.role"
LABEL_CONTENT_HASH = "io.mlrepro.content-hash"
#: One id per process: every resource this process creates carries it.
RUN_ID = uuid.uuid4().hex[:12]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the legacy builder colours stderr lines
START_HINT = "start one (Docker Desktop, 'sudo systemctl start docker', or scripts/ensure-docker.sh as root on Debian)"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


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
        except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
            raise BuildError(
                f"image build failed: the engine did not complete it ({str(exc).splitlines()[0][:200]}); {START_HINT}",
                evidence=tail("\n".join(log), 40),
            ) from None
        if image_id is None:
            image_id = self.image_id(tag)
        if image_id is None:
            raise BuildError("image build ended without an image; see the build log tail", evidence=tail("\n".join(log), 40))
        return image_id

    def import_rootfs(self, tar_path: Path, ref: str, changes: list[str]) -> str:
        with open(tar_path, "rb") as fh:
            repo, _, tag = ref.rpartition(":")
            result = self.client.api.import_image_from_stream(fh, repository=repo, tag=tag, changes=changes)
        if isinstance(result, (bytes, str)) and b"error" in (result if isinstance(result, bytes) else result.encode()):
            raise EngineError(f"docker import of {ref} failed: {result!r}")
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
    ) -> Iterator["Container"]:
        """A started, labeled container idling until removed on exit (whatever happens)."""
        labels = {LABEL_MANAGED: "true", LABEL_RUN: RUN_ID, LABEL_ROLE: role}
        kwargs: dict = {"labels": labels, "network": network}
        if mem_limit:
            kwargs["mem_limit"] = mem_limit
            kwargs["memswap_limit"] = mem_limit  # no swap: a memory limit must really bite
        tc = DockerContainer(image, command=["sleep", "infinity"], env=dict(env or {})).with_kwargs(**kwargs)
        try:
            tc.start()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            _quiet_stop(tc)
            raise EngineError(f"could not start a container from {image} ({str(exc).splitlines()[0][:200]}); check the image and the engine") from None
        try:
            yield Container(tc.get_wrapped_container())
        finally:
            _quiet_stop(tc)

    def leftovers(self) -> list[str]:
        """IDs of containers labeled by the harness (any run) still on the engine."""
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
        return [c.id for c in found]

    def remove_leftovers(self) -> int:
        removed = 0
        for cid in self.leftovers():
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(cid).remove(force=True, v=True)
                removed += 1
        return removed


def _build_failure(log: list[str], engine_message: str) -> str:
    """The most telling line of a failed build: a Dockerfile's own `error:` line, else the engine's."""
    for line in reversed(log):
        if line.strip().lower().startswith("error:"):
            return line.strip()[6:].strip()[:300]
    return (engine_message.strip().splitlines() or ["no message"])[-1][:300] + "; the build log tail follows"


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

            rel_root = PurePosixPath(root.name)
            add_dir(rel_root)
            for d in dirs:
                add_dir(rel_root / d)
            for name, data in sorted(files.items()):
                path = rel_root / name
                add_dir(path.parent)
                info = tarfile.TarInfo(str(path))
                info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid_n, gid_n
                tar.addfile(info, io.BytesIO(data))
        if not self.raw.put_archive(str(root.parent), buf.getvalue()):
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
                f"the engine failed while running step {step or command[0]} ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}); {START_HINT}"
            ) from None
        return result["value"]
