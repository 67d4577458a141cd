"""Rebuild reproducibility: two independent no-cache builds of the current tree, compared file by file.

Verification proves that one built image computes what the host computes; it
says nothing about the next build of the same commit. This builds the tree
twice, each time from its own copy of the build context (other paths; files
given the modes a fresh checkout gets under umask 022 and under umask 002, so
a Dockerfile that copies host modes into the image shows), at different times,
with no layer cache, and compares the two final filesystems and image configs
(`harness.compare.filesystems`).

The builds never touch the content-hash tag that a verification report names:
they are tagged `<image_name>-rebuild:<run id>-<n>`, labeled as this run's,
and removed in `finally` with every image their build made, earlier stages'
included (each right after its export, so the disk holds one at a time).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.compare.filesystems import FileEntry, RebuildComparison, compare_builds, config_fields, manifest
from harness.config import Config
from harness.docker.engine import Engine, context_files
from harness.docker.filesystem import ENGINE_PATHS, exported_members, remove_build
from harness.image.build import BuildPlan, build_planned, plan_build
from harness.lock import Lock
from harness.ownership import RUN_ID, owner_labels, scratch_dir

__all__ = ["UMASKS", "Build", "RebuildResult", "copy_context", "rebuild_check"]

#: The umask each build's copy of the context is made under (the two common defaults).
UMASKS = (0o022, 0o002)


@dataclass(frozen=True)
class Build:
    """One of the two builds: how it was varied, what it produced, how long it took."""

    umask: int
    image_id: str
    files: int
    build_seconds: float
    export_seconds: float


@dataclass(frozen=True)
class RebuildResult:
    """The comparison of two builds of one tree, with what is needed to say what was compared."""

    project: str
    image_name: str
    content_hash: str
    builder: str
    builds: tuple[Build, Build]
    comparison: RebuildComparison

    @property
    def ids_compared(self) -> bool:
        """Only buildah's builds can share an ID: the legacy builder stamps the build time into the config."""
        return self.builder == "buildah"

    @property
    def ids_equal(self) -> bool:
        return self.builds[0].image_id == self.builds[1].image_id

    @property
    def identical(self) -> bool:
        return self.comparison.identical and (self.ids_equal or not self.ids_compared)

    @property
    def verdict(self) -> str:
        return "IDENTICAL CONTENT" if self.identical else "DIFFERS"

    def to_json(self) -> dict[str, Any]:
        """Deterministic for a reproducible tree: no times, durations, paths or (legacy-built) image IDs."""
        data = {
            "project": self.project,
            "image_name": self.image_name,
            "content_hash": self.content_hash,
            "builder": self.builder,
            "variations": [{"build": n, "umask": f"{b.umask:03o}", "files": b.files} for n, b in enumerate(self.builds, 1)],
            **self.comparison.to_json(),
            "verdict": self.verdict,
        }
        if self.ids_compared:
            data["image_ids"] = [b.image_id for b in self.builds]
            data["image_ids_equal"] = self.ids_equal
        return data


def copy_context(context: Path, dockerfile: Path, dest: Path, umask: int) -> int:
    """Copy what the build sees (the Dockerfile, .dockerignore, the filtered context) to `dest`; return the file count.

    Modes are those a fresh checkout gets under `umask` (0777 or 0666, minus
    the umask, by the executable bit), not the source's: that is the
    variation a builder copying host modes would pass into the image.
    """
    names = set(context_files(context, dockerfile))
    for extra in (os.path.relpath(dockerfile, context), ".dockerignore"):
        if (context / extra).is_file() and not extra.startswith(".."):
            names.add(extra)
    for rel in sorted(names):
        source, target = context / rel, dest / rel
        for parent in reversed(target.relative_to(dest).parents[:-1]):
            (dest / parent).mkdir(exist_ok=True)
            os.chmod(dest / parent, 0o777 & ~umask)
        shutil.copyfile(source, target)
        os.chmod(target, (0o777 if os.access(source, os.X_OK) else 0o666) & ~umask)
    os.chmod(dest, 0o777 & ~umask)
    return len(names)


def _one_build(engine: Engine, config: Config, plan: BuildPlan, n: int, umask: int,
               progress: Callable[[str], None]) -> tuple[Build, dict[str, FileEntry], dict[str, Any]]:
    tag = f"{config.build.image_name}-rebuild:{RUN_ID}-{n}"
    with scratch_dir(f"rebuild{n}") as workdir:
        context = workdir / "context"
        context.mkdir()
        count = copy_context(config.build.context, config.build.dockerfile, context, umask)
        progress(f"build {n}/2: {tag} with {plan.builder}, no cache, context of {count} files copied under umask {umask:03o}")
        started = time.perf_counter()
        log: list[str] = []
        try:
            image_id = build_planned(engine, config, plan, tag=tag, context=context, extra_labels=owner_labels("rebuild-check"),
                                     progress=progress, no_cache=True, log=log)
            build_seconds = time.perf_counter() - started
            progress(f"build {n}/2 done in {build_seconds:.1f} s ({image_id[7:19]}); exporting its filesystem")
            started = time.perf_counter()
            with exported_members(engine, tag, role="rebuild-check") as members:
                files = manifest(members, exclude=ENGINE_PATHS)
            export_seconds = time.perf_counter() - started
            fields = config_fields(engine.image_attrs(tag))
        finally:
            remove_build(engine, tag, log)  # also the untagged last images of earlier stages
    progress(f"build {n}/2: {len(files)} files hashed in {export_seconds:.1f} s")
    return Build(umask, image_id, len(files), build_seconds, export_seconds), files, fields


def rebuild_check(engine: Engine, config: Config, lock: Lock, *, mtimes: bool = False, reproducible: bool = False,
                  progress: Callable[[str], None] = print) -> RebuildResult:
    """Build the tree twice (no cache, other umask and path, other time) and compare the two images."""
    plan = plan_build(engine, config, lock, reproducible=reproducible)
    first, first_files, first_fields = _one_build(engine, config, plan, 1, UMASKS[0], progress)
    second, second_files, second_fields = _one_build(engine, config, plan, 2, UMASKS[1], progress)
    progress(f"comparing {len(set(first_files) | set(second_files))} paths and the image configs")
    comparison = compare_builds(first_files, second_files, first_fields, second_fields, mtimes=mtimes)
    return RebuildResult(config.project, config.build.image_name, plan.content_hash, plan.builder, (first, second), comparison)
