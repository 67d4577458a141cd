"""The image: built once per content hash, reused while nothing that goes into it changes.

The content hash covers exactly what determines the image: every file of the
build context (as .dockerignore filters it, via docker-py's own rules), the
Dockerfile's path, the build args, and the base image's ID. The image is
tagged `<image_name>:<hash[:16]>`, so an unchanged tree is a lookup (no build
at all), and a changed one can never be mistaken for the verified one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from typing import Callable, Mapping

from harness.image.base import resolve_base
from harness.config import Config
from harness.docker.engine import Engine, context_files
from harness.ownership import LABEL_CONTENT_HASH
from harness.errors import BuildError
from harness.lock import Lock
from harness.report import ImageInfo


def content_hash(context: Path, dockerfile: Path, buildargs: Mapping[str, str], base_image_id: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"dockerfile={os.path.relpath(dockerfile, context)}\n".encode())
    for key in sorted(buildargs):
        digest.update(f"arg {key}={buildargs[key]}\n".encode())
    digest.update(f"base={base_image_id}\n".encode())
    for rel in context_files(context, dockerfile):
        path = context / rel
        file_digest = hashlib.sha256(path.read_bytes()).hexdigest()
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"file {rel} {mode} {file_digest}\n".encode())
    return digest.hexdigest()


def git_provenance(root: Path) -> dict[str, str]:
    """Revision and commit time (not the wall clock: rebuilding the same commit labels it the same)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    return {
        "VCS_REF": git("rev-parse", "HEAD") or "unknown",
        "CREATED": git("log", "-1", "--format=%cI") or "1970-01-01T00:00:00Z",
        "VCS_SOURCE": without_credentials(git("config", "--get", "remote.origin.url")) or "unknown",
    }


def without_credentials(url: str) -> str:
    """A remote URL fit for a label: `https://user:token@host/x` would put a secret in every image."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def build_args(config: Config, lock: Lock, base: str) -> dict[str, str]:
    args = {**git_provenance(config.root), "LOCK_SHA256": lock.sha256, **config.build.build_args}
    args["BASE_IMAGE"] = base
    return args


def ensure_image(engine: Engine, config: Config, lock: Lock, *, progress: Callable[[str], None] = print, no_cache: bool = False) -> ImageInfo:
    """The image for the current tree: reused when its content hash is on the engine, built otherwise.

    `no_cache` rebuilds from scratch (no image reuse, no layer cache): the same
    bytes go in, so the same tag comes out.
    """
    if not config.build.dockerfile.is_file():
        raise BuildError(f"build.dockerfile: expected a Dockerfile at {config.build.dockerfile}, found none; fix [tool.mlrepro.build] dockerfile")
    base, base_id = resolve_base(engine, config.build)
    args = build_args(config, lock, base)
    chash = content_hash(config.build.context, config.build.dockerfile, args, base_id)
    tag = f"{config.build.image_name}:{chash[:16]}"
    image_id = None if no_cache else engine.image_id(tag)
    if image_id:
        progress(f"image {tag} is up to date (content hash unchanged); no build")
    else:
        progress(f"building {tag} from {base} (content changed or first build)")
        image_id = engine.build(
            context=config.build.context,
            dockerfile=config.build.dockerfile,
            tag=tag,
            buildargs=args,
            labels={LABEL_CONTENT_HASH: chash, "io.mlrepro.base-image": base, "io.mlrepro.base-image-id": base_id},
            timeout=config.build.timeout,
            on_line=lambda line: progress("  " + line) if line.startswith("Step ") else None,
            nocache=no_cache,
        )
        progress(f"built {tag} ({image_id[7:19]})")
    return ImageInfo(tag=tag, image_id=image_id, content_hash=chash, base_image=base, base_image_id=base_id)
