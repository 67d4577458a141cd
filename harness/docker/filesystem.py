"""An image's final filesystem as a stream of tar members, and removing images a run made for itself.

For `mlrepro rebuild-check`: a stopped, labeled container is created from
the image (never started: nothing runs, nothing writes), the engine exports
its root filesystem (all layers applied, whiteouts honoured by the engine
itself), and the tar is read as it arrives: `tarfile`'s stream mode over the
HTTP chunks, so an image of any size costs one chunk of memory. The
container is removed in `finally`.

The engine adds an init layer to every container (`/.dockerenv`, the mount
points of /etc/hosts, /etc/hostname, /etc/resolv.conf, /dev, /proc, /sys); it
is not the image's content and the container overlays it at run time anyway, so
`ENGINE_PATHS` lists what a caller should leave out.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
from typing import IO, Iterable, Iterator

import docker.errors
import requests.exceptions

from harness.docker.container import START_HINT
from harness.docker.engine import Engine
from harness.errors import EngineError
from harness.ownership import owner_labels

__all__ = ["ENGINE_PATHS", "built_images", "exported_members", "remove_build", "remove_image"]

#: Paths the engine's init layer creates in every container (moby's initlayer), plus what it mounts over.
ENGINE_PATHS = frozenset({"/.dockerenv", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab", "/dev", "/proc", "/sys"})

_CHUNK = 1 << 20
_STEP_IMAGE = re.compile(r"---> ([0-9a-f]{12,64})")  # the legacy builder's " ---> <id>" after each step


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (docker-py's export stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@contextlib.contextmanager
def exported_members(engine: Engine, ref: str, *, role: str) -> Iterator[Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]]:
    """The final filesystem of image `ref` as (member, reader) pairs, in the engine's order.

    Each reader (None for anything but a regular file) is valid only until the
    next pair is drawn: read it right away. The container made for the export
    is labeled (`owner_labels(role)`) and removed on exit, whatever happens.
    """
    container = None
    try:
        try:
            # Never started: a command is only needed because images without CMD cannot be created.
            container = engine.client.containers.create(ref, command=["true"], labels=owner_labels(role), network_disabled=True)
            chunks = container.export(chunk_size=_CHUNK)
        except docker.errors.ImageNotFound:
            raise EngineError(f"cannot export image {ref}: the engine has no such image; build it first") from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"could not export the filesystem of {ref} ({str(exc).splitlines()[0][:200]}); {START_HINT}") from None

        def members() -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
            try:
                with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(iter(chunks)), _CHUNK), mode="r|") as tar:
                    for info in tar:
                        yield info, tar.extractfile(info) if info.isreg() else None
            except (tarfile.TarError, requests.exceptions.RequestException, docker.errors.DockerException) as exc:
                raise EngineError(f"the export of {ref} broke off ({str(exc).splitlines()[0][:200]}); check the engine's disk and retry") from None

        yield members()
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)


def built_images(log: Iterable[str]) -> list[str]:
    """Short IDs of the images a legacy build made, from its log: one per step, the FROM steps' base images left out.

    A multi-stage build leaves each earlier stage's last image untagged: it is
    no parent of the tagged image, so removing the tag does not remove it.
    """
    found, from_step = [], False
    for line in log:
        if line.startswith("Step "):
            from_step = line.partition(" : ")[2].lstrip().upper().startswith("FROM ")
        elif (match := _STEP_IMAGE.fullmatch(line.strip())) and not from_step:
            found.append(match.group(1))
    return found


def remove_build(engine: Engine, ref: str, log: Iterable[str]) -> None:
    """Remove image `ref` and every untagged image its build made (`built_images`); never raises.

    Only for a build the caller made for itself, with no cache: each image of
    its log is then new. Newest first, so children go before their parents;
    an image someone tagged or built on since is left alone (the engine refuses).
    """
    remove_image(engine, ref)
    for short in reversed(built_images(log)):
        with contextlib.suppress(Exception):
            if not engine.client.images.get(short).tags:
                engine.client.images.remove(short, force=False, noprune=False)


def remove_image(engine: Engine, ref: str) -> None:
    """Remove the name `ref`, and the image when it was its last name; never raises (cleanup must not mask an error).

    Only for images the caller made for itself (a rebuild check's temporary
    builds): intermediate layers the build left untagged go with it.
    """
    with contextlib.suppress(Exception):
        engine.client.images.remove(ref, force=False, noprune=False)
