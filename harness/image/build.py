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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from harness.image.base import resolve_base
from harness.config import Config
from harness.docker.engine import Engine, context_digest, context_files
from harness.image.secret_scan import scan
from harness.ownership import LABEL_CONTENT_HASH
from harness.errors import BuildError
from harness.git import provenance as git_provenance  # the build args VCS_REF, CREATED, VCS_SOURCE
from harness.lock import Lock
from harness.report import ImageInfo


def content_hash(context: Path, dockerfile: Path, buildargs: Mapping[str, str], base_image_id: str, *, builder: str = "docker") -> str:
    """What the build depends on: the Dockerfile's place, the build args, the base image ID, and the context
    as the bytes of the tar the engine receives (`harness.docker.engine.context_digest`).

    `builder` other than the default enters the hash: a buildah image never takes a Docker-built one's tag.
    """
    digest = hashlib.sha256()
    digest.update(f"dockerfile={os.path.relpath(dockerfile, context)}\n".encode())
    if builder != "docker":
        digest.update(f"builder={builder}\n".encode())
    for key in sorted(buildargs):
        digest.update(f"arg {len(key)}:{key}={len(buildargs[key])}:{buildargs[key]}\n".encode())
    digest.update(f"base={base_image_id}\n".encode())
    digest.update(f"context-tar={context_digest(context, dockerfile)}\n".encode())
    return digest.hexdigest()


def build_args(config: Config, lock: Lock, base: str) -> dict[str, str]:
    args = {**git_provenance(config.root), "LOCK_SHA256": lock.sha256, **config.build.build_args}
    args["BASE_IMAGE"] = base
    return args


@dataclass(frozen=True)
class BuildPlan:
    """What a build of the current tree takes: the base, the build args, the content hash and the image's labels."""

    base: str
    base_id: str
    args: Mapping[str, str]
    content_hash: str
    builder: str  # "docker" (the engine's legacy builder) or "buildah" (timestamps at the epoch)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_CONTENT_HASH: self.content_hash, "io.mlrepro.base-image": self.base, "io.mlrepro.base-image-id": self.base_id}


def refuse_secrets(config: Config) -> None:
    """Refuse a build whose context holds what looks like a secret (`image.secret_scan`): one line naming it."""
    context, dockerfile = config.build.context, config.build.dockerfile
    found = scan(context, context_files(context, dockerfile), config.build.allow_secrets)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more: {', '.join(f.path for f in found[1:4])})" if len(found) > 1 else ""
        raise BuildError(f"the build context holds {first.reason}: {first.path}{more}; it would be copied into the image and pushed "
                         f"with it: remove it from the context (.dockerignore), or allow it with [tool.mlrepro.build] "
                         f"allow_secrets = [{first.path!r}]")


def plan_build(engine: Engine, config: Config, lock: Lock, *, reproducible: bool = False) -> BuildPlan:
    if not config.build.dockerfile.is_file():
        raise BuildError(f"build.dockerfile: expected a Dockerfile at {config.build.dockerfile}, found none; fix [tool.mlrepro.build] dockerfile")
    refuse_secrets(config)
    base, base_id = resolve_base(engine, config.build)
    args = build_args(config, lock, base)
    builder = "buildah" if reproducible else "docker"
    chash = content_hash(config.build.context, config.build.dockerfile, args, base_id, builder=builder)
    return BuildPlan(base, base_id, args, chash, builder)


def build_planned(engine: Engine, config: Config, plan: BuildPlan, *, tag: str, context: Path | None = None,
                  extra_labels: Mapping[str, str] | None = None, progress: Callable[[str], None] = print, no_cache: bool = False,
                  log: list[str] | None = None) -> str:
    """Build `plan` as `tag` and return the image ID; `context` replaces the configured one (the Dockerfile at the same place in it).

    The one place an image is built: `ensure_image` and the rebuild check both come here.
    `log`, when given, receives every line of the build log (to find the images a build made).
    """
    context = context or config.build.context
    dockerfile = context / os.path.relpath(config.build.dockerfile, config.build.context)
    labels = {**plan.labels, **(extra_labels or {})}

    def on_line(line: str) -> None:
        if log is not None:
            log.append(line)
        if line.startswith(("Step ", "STEP ")):
            progress("  " + line)
    if plan.builder == "buildah":
        from harness.docker.buildah import buildah_build

        return buildah_build(engine, context=context, dockerfile=dockerfile, tag=tag, base=plan.base, buildargs=plan.args,
                             labels=labels, timeout=config.build.timeout, on_line=on_line)
    return engine.build(context=context, dockerfile=dockerfile, tag=tag, buildargs=plan.args, labels=labels,
                        timeout=config.build.timeout, on_line=on_line, nocache=no_cache)


def reuse_problem(tag: str, labels: Mapping[str, str], content_hash: str) -> str | None:
    """Why the image under `tag` must not be reused for `content_hash` (None: reuse it). Pure.

    The tag holds 16 hex digits of the hash; the label holds all of it. An
    image that was tagged by hand, or whose label disagrees, was not built
    from this tree: trusting the tag would verify other bytes.
    """
    found = labels.get(LABEL_CONTENT_HASH)
    if found == content_hash:
        return None
    what = f"its {LABEL_CONTENT_HASH} label is {found[:24]}..." if found else f"it has no {LABEL_CONTENT_HASH} label"
    return f"image {tag} exists but {what}, not {content_hash[:24]}...: it was not built from this tree; building it again"


def ensure_image(engine: Engine, config: Config, lock: Lock, *, progress: Callable[[str], None] = print, no_cache: bool = False,
                 reproducible: bool = False) -> ImageInfo:
    """The image for the current tree: reused when its content hash is on the engine, built otherwise.

    `no_cache` rebuilds from scratch (no image reuse, no layer cache); when
    the tag already names an image (that a report may name), a rebuild with
    another ID gets `<tag>-<id>` and the tag stays where it was. A context
    that changes during the build fails it (the image may hold either
    content) and nothing is kept. `reproducible` builds with buildah
    (every timestamp at the epoch: the same tree gives the same image ID),
    under its own content hash.
    """
    plan = plan_build(engine, config, lock, reproducible=reproducible)
    tag = f"{config.build.image_name}:{plan.content_hash[:16]}"
    existing = engine.image_id(tag)
    if existing:
        problem = reuse_problem(tag, (engine.image_attrs(existing).get("Config") or {}).get("Labels") or {}, plan.content_hash)
        if problem:  # not this tree's image: never reused, and its tag is not one a report of this tree names
            progress(problem)
            existing = None
    image_id = None if no_cache else existing
    if image_id:
        progress(f"image {tag} is up to date (content hash unchanged); no build")
    else:
        how = " with buildah, timestamps at the epoch" if reproducible else ""
        progress(f"building {tag} from {plan.base}{how} (content changed or first build)")
        # A no-cache rebuild never moves a tag a report may name: it builds under a name of its own first.
        build_tag = f"{tag}-rebuild" if existing else tag
        image_id = build_planned(engine, config, plan, tag=build_tag, progress=progress, no_cache=no_cache)
        after = content_hash(config.build.context, config.build.dockerfile, plan.args, plan.base_id, builder=plan.builder)
        if after != plan.content_hash:
            engine.discard(build_tag)
            raise BuildError(f"the build context changed while {tag} was built (content hash {plan.content_hash[:16]} before, "
                             f"{after[:16]} after): the image may hold either; it was not kept; run again once nothing writes "
                             f"into {config.build.context}")
        if existing:
            if image_id != existing:
                tag = f"{tag}-{image_id[7:19]}"
                engine.tag(image_id, tag)
                progress(f"the no-cache build gave image {image_id[7:19]}; {existing[7:19]} keeps its tag (a report may name it)")
            engine.untag(build_tag)
        progress(f"built {tag} ({image_id[7:19]})")
    return ImageInfo(tag=tag, image_id=image_id, content_hash=plan.content_hash, base_image=plan.base, base_image_id=plan.base_id)
