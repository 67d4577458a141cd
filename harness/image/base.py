"""The base image: the configured public one when the engine has or can pull it,
else a local Python image made from Debian packages.

Engines that cannot reach a registry (air-gapped CI, this project's own CI)
still need a `FROM`. `make_local_base` builds one with debootstrap (minbase +
python3 + python3-venv) and `docker import`: same Debian release as the public
slim image, Python from Debian instead of python.org (a patch-level
difference the report shows). Which base was used is recorded by name and ID
in the image labels and in every report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from harness.config import BuildConfig
from harness.docker.engine import Engine
from harness.errors import BaseImageError, tail
from harness.ownership import run_tempdir
from harness.sides.process import HostProcesses

DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: About a minute natively, a few under emulation; a stalled mirror must not hang us forever.
DEBOOTSTRAP_TIMEOUT = 1800.0


def apt_mirror(sources: str) -> str | None:
    """The first Debian mirror named by apt's sources (deb822 or one-line format)."""
    for line in sources.splitlines():
        line = line.strip()
        m = re.match(r"URIs:\s*(\S+)", line) or re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", line)
        if m and "security" not in m.group(1) and "debian" in m.group(1):
            return m.group(1).rstrip("/")
    return None


def host_mirror() -> str:
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    return apt_mirror("\n".join(texts)) or DEFAULT_MIRROR


def resolve_base(engine: Engine, build: BuildConfig) -> tuple[str, str]:
    """(name, image ID) of the base to build from.

    Local images first (the configured one, then the local fallback), a pull
    only when neither exists: a verification must not depend on a registry
    that may have moved the tag since the last run.
    """
    for ref in (build.base_image, build.fallback_base_image):
        image_id = engine.image_id(ref)
        if image_id:
            return ref, image_id
    if engine.try_pull(build.base_image):
        image_id = engine.image_id(build.base_image)
        if image_id:
            return build.base_image, image_id
    raise BaseImageError(
        f"no base image: {build.base_image} is not on the engine and cannot be pulled, and the local fallback "
        f"{build.fallback_base_image} does not exist; run 'mlrepro base-image' to build it from Debian packages"
    )


def ensure_base(engine: Engine, build: BuildConfig, *, force_local: bool = False, mirror: str | None = None,
                suite: str = "bookworm", progress: Callable[[str], None] = print) -> tuple[str, str, bool]:
    """Make sure a base image exists; return (name, id, created). Idempotent."""
    if not force_local:
        try:
            name, image_id = resolve_base(engine, build)
        except BaseImageError:
            pass
        else:
            progress(f"base image {name} is available ({image_id[7:19]}); nothing to build")
            return name, image_id, False
    image_id = engine.image_id(build.fallback_base_image)
    if image_id:
        progress(f"local base image {build.fallback_base_image} exists ({image_id[7:19]}); nothing to build")
        return build.fallback_base_image, image_id, False
    return build.fallback_base_image, make_local_base(engine, build.fallback_base_image, mirror=mirror or host_mirror(), suite=suite, progress=progress), True


def make_local_base(engine: Engine, ref: str, *, mirror: str, suite: str, progress: Callable[[str], None]) -> str:
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None)
    if debootstrap is None:
        raise BaseImageError("debootstrap is not installed; install it ('apt-get install debootstrap' as root on Debian) or make the public base image available to the engine")
    if os.geteuid() != 0:
        raise BaseImageError("building the local base image needs root (debootstrap); run 'sudo mlrepro base-image' or make the public base image available")

    work = run_tempdir("base")
    rootfs = work / "rootfs"
    try:
        progress(f"building {ref} from Debian {suite} packages ({mirror}); about a minute")
        cmd = [debootstrap, "--variant=minbase", "--include=python3,python3-venv,ca-certificates", suite, str(rootfs), mirror]
        announced: set[str] = set()

        def on_line(line: str) -> None:
            # One line per phase, not one per package.
            for phase in ("Retrieving", "Validating", "Extracting", "Installing", "Configuring", "Base system installed"):
                if line.startswith(f"I: {phase}") and phase not in announced:
                    announced.add(phase)
                    progress(f"  debootstrap: {phase.lower()}...")

        done = HostProcesses().run(cmd, timeout=DEBOOTSTRAP_TIMEOUT, on_line=on_line)
        if done.exit_code != 0:
            why = f"did not finish within {DEBOOTSTRAP_TIMEOUT:g} s" if done.timed_out else f"exit {done.exit_code}"
            raise BaseImageError(f"debootstrap of {suite} from {mirror} failed ({why}); check that the mirror is reachable", evidence=tail(done.output))
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftovers).glob("*"):
                if item.is_file():
                    item.unlink()
        tar_path = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar_path), "."], check=True)
        progress(f"importing {ref} into the engine")
        image_id = engine.import_rootfs(tar_path, ref, [
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
        ])
        progress(f"local base image {ref} ready ({image_id[7:19]})")
        return image_id
    finally:
        shutil.rmtree(work, ignore_errors=True)
