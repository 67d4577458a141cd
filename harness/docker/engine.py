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
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.utils.build import exclude_paths
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from harness.errors import BuildError, EngineError, tail
from harness.docker.container import START_HINT, Container, _quiet_stop, _remove_volume
from harness.docker.registry_stream import LayerProgress, _redacted_first, _split_tag, scan_registry_stream
from harness.ownership import LABEL_MANAGED, LABEL_RUN, RUN_ID, owner_alive, owner_labels

testcontainers_config.ryuk_disabled = True

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the legacy builder colours stderr lines


@dataclass(frozen=True)
class Resource:
    """Something the harness created on the engine, found by its labels."""

    kind: str  # "container", "image", "volume" or "network"
    id: str
    labels: Mapping[str, str]

    @property
    def owner_alive(self) -> bool:
        """Whether the process that created it may still be running (see `harness.ownership.owner_alive`)."""
        return owner_alive(self.labels)


def _context_entries(context: Path, dockerfile: Path) -> list[str]:
    """Every path the engine receives as build context (files, directories, links), sorted, as docker-py lists them."""
    ignore = context / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():  # docker-py's own reading of .dockerignore (images.build)
        patterns = [line for line in (raw.strip() for raw in ignore.read_text().splitlines()) if line and line[0] != "#"]
    rel_dockerfile = os.path.relpath(dockerfile, context)
    return sorted(exclude_paths(str(context), patterns, dockerfile=rel_dockerfile))


def context_files(context: Path, dockerfile: Path) -> list[str]:
    """The regular files (or links to them) the engine will receive as build context, honouring .dockerignore."""
    return [p for p in _context_entries(context, dockerfile) if (context / p).is_file()]


class _HashSink:
    """A write-only file object that only hashes what is written (the tar is never kept)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def context_digest(context: Path, dockerfile: Path) -> str:
    """sha256 of exactly the context tar docker-py sends the engine, modification times (and user names) at zero.

    The same walk, the same entries and the same `tarfile` headers as
    `docker.utils.build.create_archive` (`write_context_tar`): every kind of
    entry the build sees (directories, symlinks with their targets, hard
    links, any byte sequence as a name), full permission bits, uid/gid,
    contents streamed in tarfile's chunks (bounded memory). Times are zeroed
    because a fresh checkout changes them and the engine's build cache ignores
    them; everything else that could change what the build does is in the hash.
    """
    sink = _HashSink()
    write_context_tar(context, dockerfile, sink)
    return sink.digest.hexdigest()


def write_context_tar(context: Path, dockerfile: Path, fileobj) -> None:
    """The context tar as docker-py builds it, times and user names zeroed, written to `fileobj`."""
    import tarfile

    with tarfile.open(mode="w", fileobj=fileobj) as archive:
        for path in _context_entries(context, dockerfile):
            full = os.path.join(context, path)
            info = archive.gettarinfo(full, arcname=path)
            if info is None:  # a socket: docker-py skips it too
                continue
            info.mtime, info.uname, info.gname = 0, "", ""
            if info.isfile():
                with open(full, "rb") as fh:
                    archive.addfile(info, fh)
            else:
                archive.addfile(info, None)


#: Seconds a call (other than the first ping) waits for the engine to start answering.
CALL_TIMEOUT = 120.0


class Engine:
    """A connected Docker engine (docker-py client underneath, reachable as `.client`)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: float = 10, *, call_timeout: float = CALL_TIMEOUT) -> "Engine":
        """Connect and ping within `timeout` seconds; later calls may wait `call_timeout` for the engine's answer.

        The ping's short wait says fast that no engine answers; a busy engine
        (an export of a large image, a build on 2 loaded cores) can take far
        longer than that before the first byte of a real answer.
        """
        try:
            client = docker.from_env(timeout=int(timeout))
            client.ping()
            client.api.timeout = int(call_timeout)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            where = os.environ.get("DOCKER_HOST", "the default socket")
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise EngineError(f"no Docker engine answers at {where} ({reason}); {START_HINT}") from None
        return cls(client)

    def machine(self) -> dict:
        """What the engine's machine is (CPUs, kernel, architecture, OS): where containers compute."""
        info = self.client.info()
        return {"cpus": info.get("NCPU"), "kernel": info.get("KernelVersion"), "arch": info.get("Architecture"),
                "os": info.get("OperatingSystem"), "memory": info.get("MemTotal")}

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
        labels = owner_labels(role)
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
        """Containers, images, volumes and networks labeled by the harness (any run, or `run_id`'s).

        Labeled images are only those a run makes for itself (a rebuild check's
        two builds): a verified image carries no owner label and is never listed.
        """
        labels = [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])
        try:
            found = [Resource("container", c.id, c.labels) for c in self.client.containers.list(all=True, filters={"label": labels})]
            found += [Resource("image", i.id, i.labels) for i in self.client.images.list(filters={"label": labels})]
            found += [Resource("volume", v.name, v.attrs.get("Labels") or {}) for v in self.client.volumes.list(filters={"label": labels})]
            found += [Resource("network", n.id, n.attrs.get("Labels") or {}) for n in self.client.networks.list(filters={"label": labels})]
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"could not list the harness's resources ({str(exc).splitlines()[0][:200]}); {START_HINT}") from None
        return found

    def leftovers(self, run_id: str | None = None) -> list[str]:
        """IDs of containers, images, volumes and networks labeled by the harness (any run, or `run_id`'s) still on the engine."""
        return [r.id for r in self.managed_resources(run_id)]

    def remove_leftovers(self, *, include_live: bool = False, run_id: str | None = None) -> dict[str, int]:
        """Remove what runs left behind: by default only what processes no longer running made.

        Returns counts by kind, plus "skipped" for resources of runs still in
        progress (kept unless `include_live`: removing them would break those runs).
        `run_id` limits it to one run (this process's own, on an interrupt).
        """
        counts = {"container": 0, "image": 0, "volume": 0, "network": 0, "skipped": 0}
        # Containers first: an image, volume or network in use cannot be removed.
        for res in sorted(self.managed_resources(run_id), key=lambda r: ("container", "image", "network", "volume").index(r.kind)):
            if res.owner_alive and not include_live:
                counts["skipped"] += 1
                continue
            getter = {"container": self.client.containers, "image": self.client.images, "volume": self.client.volumes, "network": self.client.networks}[res.kind]
            try:
                item = getter.get(res.id)
                if res.kind == "container":
                    item.remove(force=True, v=True)
                elif res.kind == "image":  # every tag it has is the run's own; untagged parents go with it
                    self.client.images.remove(res.id, force=True, noprune=False)
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
             on_layer: Callable[["LayerProgress"], None] = lambda event: None,
             redact: Callable[[str], str] = lambda text: text, idle_timeout: float | None = None) -> str:
        """Push `ref` (REGISTRY/REPOSITORY:TAG); return the manifest digest the registry stored.

        Every line of the stream is scanned (`scan_registry_stream`): the engine
        reports a failed push as an `errorDetail` line inside an HTTP 200
        stream (RegistryStreamError, with its `kind`), and the digest only in
        the final `aux` line (none: RegistryStreamError too). `auth_config` is
        sent with this request only (nothing is written to a docker config);
        `redact` scrubs the caller's secrets from every message and evidence.
        `idle_timeout` (default: the client's call timeout) is how long the
        stream may stay silent before the push counts as stalled (kind "stalled").
        """
        from harness.docker.registry_stream import RegistryStreamError

        repository, tag = _split_tag(ref)
        idle = float(idle_timeout or self.client.api.timeout or CALL_TIMEOUT)
        saved, self.client.api.timeout = self.client.api.timeout, idle  # docker-py reads it per request
        try:
            stream = self.client.api.push(repository, tag=tag, stream=True, decode=True,
                                          auth_config=dict(auth_config) if auth_config else None)
            outcome = scan_registry_stream(stream, action=f"push of {ref}", on_layer=on_layer, redact=redact, require_digest=True)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, TimeoutError) as exc:  # APIError included
            if not _is_read_timeout(exc):
                raise EngineError(f"the engine failed during the push of {ref} ({_redacted_first(exc, redact)}); {START_HINT}") from None
            raise RegistryStreamError(
                f"the push of {ref} stalled: the engine reported nothing for {idle:g} s (a slow or hanging registry); "
                "check the registry, or allow longer silences with --push-timeout SECONDS (MLREPRO_PUSH_TIMEOUT)",
                kind="stalled") from None
        finally:
            self.client.api.timeout = saved
        return outcome.digest

    def pull(self, ref: str, *, auth_config: Mapping[str, str] | None = None,
             on_layer: Callable[["LayerProgress"], None] = lambda event: None,
             redact: Callable[[str], str] = lambda text: text) -> str:
        """Pull `ref` (a tag or REPOSITORY@sha256:...), scanning the stream for errors; return the image ID."""
        repository, sep, digest = ref.partition("@")
        if not sep:
            repository, digest = _split_tag(ref)
        try:
            stream = self.client.api.pull(repository, tag=digest, stream=True, decode=True,
                                          auth_config=dict(auth_config) if auth_config else None)
            scan_registry_stream(stream, action=f"pull of {ref}", on_layer=on_layer, redact=redact)
        except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
            raise EngineError(f"the engine failed during the pull of {ref} ({_redacted_first(exc, redact)}); {START_HINT}") from None
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

    def discard(self, ref: str) -> None:
        """Remove the name `ref`, and the image too when that was its only name and nothing uses it."""
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            if not self.untag(ref):
                self.client.api.remove_image(ref)

    def registry_credentials(self, registry: str) -> tuple[str, str] | None:
        """(user, password) the user's docker config holds for `registry` (see `docker_config_credentials`)."""
        return docker_config_credentials(registry)


def docker_config_credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) the user's docker config holds for `registry` (credential helpers included), or None.

    No engine is asked: `mlrepro check` reads credentials this way on a machine without Docker.
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


def _is_read_timeout(exc: BaseException) -> bool:
    """A read that timed out, however urllib3 and requests wrap it while a stream is iterated."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
            return True
        if "Read timed out" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
    return False


def _build_failure(log: list[str], engine_message: str) -> str:
    """The most telling line of a failed build: a Dockerfile's own `error:` line, else the engine's."""
    for line in reversed(log):
        if line.strip().lower().startswith("error:"):
            return line.strip()[6:].strip()[:300]
    return (engine_message.strip().splitlines() or ["no message"])[-1][:300] + "; the build log tail follows"


