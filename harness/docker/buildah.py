"""A second builder that can set timestamps: buildah (`mlrepro build --reproducible`).

The legacy Docker builder stamps every layer, file and the image's `Created`
with the build time, so two builds of one commit never share an image ID and
can only be compared by content (`mlrepro rebuild-check`). `buildah bud
--timestamp 0` sets all of them to the epoch: equal inputs give equal layers
and an equal config, hence an equal image ID. The image is then handed to the
Docker engine (`buildah push ... docker-daemon:`), which keeps the config
bytes and so the ID.

buildah runs as a subprocess with its storage in a run-named temporary
directory (vfs driver: no mounts, nothing outside that directory), removed in
`finally`; the base image is copied in from the Docker engine, never pulled
from a registry, and every build starts from empty storage (no cache).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, Mapping

from harness.docker.engine import Engine
from harness.errors import BuildError, MlreproError, tail
from harness.ownership import scratch_dir

__all__ = ["INSTALL_HINT", "BuildahMissing", "buildah_build", "buildah_path", "require_buildah"]

INSTALL_HINT = "install buildah (Debian/Ubuntu: apt-get install buildah; `make test` installs it as root)"


class BuildahMissing(MlreproError):
    """A reproducible build was asked for but buildah is not installed: install it, or compare content only (`mlrepro rebuild-check`)."""


def buildah_path() -> str | None:
    """The buildah executable on PATH, or None."""
    return shutil.which("buildah")


def require_buildah() -> str:
    """The buildah executable; BuildahMissing (one line, exit 2) when the engine only has its legacy builder."""
    executable = buildah_path()
    if executable is None:
        raise BuildahMissing("a reproducible build needs buildah (it sets every timestamp, so equal inputs give an equal image ID), "
                             "found only the Docker engine's legacy builder, with which two builds can only be compared by content "
                             f"('mlrepro rebuild-check'); {INSTALL_HINT}")
    return executable


def _run(command: list[str], *, timeout: float, what: str, on_line: Callable[[str], None] = lambda line: None) -> str:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise BuildError(f"buildah {what} did not finish within {timeout:.0f} s; raise [tool.mlrepro.build] timeout or check the build",
                         evidence=tail(output, 40)) from None
    except OSError as exc:
        raise BuildahMissing(f"buildah could not be started ({exc.strerror or exc}); {INSTALL_HINT}") from None
    for line in proc.stdout.splitlines():
        on_line(line)
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        last = next((line.strip() for line in reversed(log.splitlines()) if line.strip()), "no output")
        raise BuildError(f"buildah {what} failed (exit {proc.returncode}): {last[:300]}", evidence=tail(log, 40))
    return proc.stdout


def buildah_build(engine: Engine, *, context: Path, dockerfile: Path, tag: str, base: str, buildargs: Mapping[str, str],
                  labels: Mapping[str, str], timeout: float, on_line: Callable[[str], None] = lambda line: None) -> str:
    """Build with every timestamp at the epoch, load the image into the Docker engine as `tag`; return its ID.

    `base` (the FROM image) is copied from the Docker engine into buildah's
    empty storage first, so nothing is pulled from a registry.
    """
    executable = require_buildah()
    with scratch_dir("buildah") as storage:
        buildah = [executable, "--root", str(storage / "root"), "--runroot", str(storage / "runroot"), "--storage-driver", "vfs"]
        _run([*buildah, "pull", "--quiet", f"docker-daemon:{base}"], timeout=timeout, what=f"copy of the base image {base}")
        command = [*buildah, "bud", "--timestamp", "0", "--isolation", "chroot", "--pull-never", "--layers=false",
                   "--format", "oci", "--file", str(dockerfile), "--tag", tag]
        for key in sorted(buildargs):
            command += ["--build-arg", f"{key}={buildargs[key]}"]
        for key in sorted(labels):
            command += ["--label", f"{key}={labels[key]}"]
        _run([*command, str(context)], timeout=timeout, what=f"build of {tag}", on_line=on_line)
        _run([*buildah, "push", "--quiet", tag, f"docker-daemon:{tag}"], timeout=timeout, what=f"hand-over of {tag} to the Docker engine")
    image_id = engine.image_id(tag)
    if image_id is None:
        raise BuildError(f"buildah built {tag} and handed it to the Docker engine, which does not list it; check 'docker images'")
    return image_id
