"""Verification: build (or reuse) the image, run both sides concurrently, compare, report.

This is the only module that sequences the others; each step it calls is
usable alone (the pytest plugin's fixtures call them one by one).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Mapping

from harness.compare import compare_artifact, compare_environments, compare_packages
from harness.config import Config
from harness.docker import Engine
from harness.errors import InterruptedRun
from harness.exclusive import exclusive, project_lock
from harness.image.build import ensure_image
from harness.image.wheelhouse import Target, fetch
from harness.lock import Lock, read_lock
from harness.report import ImageInfo, Report
from harness.sides import ContainerSide, HostSide, RunResult, Side, run_in_image, run_steps
from harness.settings import verified_settings

if TYPE_CHECKING:
    from harness.reference import Reference


def prepare(config: Config, engine: Engine, *, progress: Callable[[str], None] = print, no_cache: bool = False,
            reproducible: bool = False) -> tuple[Lock, ImageInfo]:
    """The lock and the image for the current tree (wheelhouse fetched, image built or reused; `reproducible`: with buildah)."""
    lock = read_lock(config.lock)
    target = Target(config.wheelhouse.python_version, engine.architecture(), config.wheelhouse.glibc)
    # One writer per project: a concurrent run waits, then finds the wheelhouse and the image ready.
    with exclusive(project_lock(config.root), "the wheelhouse and the image", progress=progress):
        fetch(config.wheelhouse.dir, config.lock, lock, target, progress=progress)
        return lock, ensure_image(engine, config, lock, progress=progress, no_cache=no_cache, reproducible=reproducible)


def run_sides(config: Config, image_side: Side, host_side: Side, *, progress: Callable[[str], None] = print,
              host_progress: Callable[[str], None] | None = None) -> tuple[RunResult, RunResult]:
    """Run the steps on two sides at the same time; (image run, host run).

    On any failure or interrupt, the other side is aborted and both are
    closed before the error propagates: each removes exactly what it made,
    nothing of another run (or of a pytest session's workers) is touched.
    """
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlrepro-run")

    def run(side: Side, report: Callable[[str], None]) -> RunResult:
        with side:
            return run_steps(side, config, progress=report)

    try:
        in_image = pool.submit(run, image_side, progress)
        on_host = pool.submit(run, host_side, host_progress or progress)
        return in_image.result(), on_host.result()
    except BaseException as exc:
        for side in (image_side, host_side):
            side.abort()
        if isinstance(exc, KeyboardInterrupt):
            pool.shutdown(wait=True, cancel_futures=True)
            raise InterruptedRun("interrupted; the containers and host processes of this run were removed") from None
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_both(config: Config, engine: Engine, image: ImageInfo, *, progress: Callable[[str], None] = print,
             python: str | None = None, host_progress: Callable[[str], None] | None = None) -> tuple[RunResult, RunResult]:
    """The steps in the image and on the host at the same time.

    `python` overrides the configured host interpreter (the demo's drifted
    venv); `host_progress` the host side's progress lines.
    """
    return run_sides(config, ContainerSide(engine, config, image.tag), HostSide(config, python, progress=progress),
                     progress=progress, host_progress=host_progress)


def compare_runs(config: Config, lock: Lock, image: ImageInfo, image_run: RunResult, host_run: RunResult) -> Report:
    """Pure: everything measured in, the report out."""
    differences = compare_packages(
        lock.versions, image_run.probe.get("packages", {}), host_run.probe.get("packages", {}),
        ignore=config.compare.ignore_packages, host_extras=config.compare.host_extras,
    )
    differences += compare_environments(image_run.probe, host_run.probe, python_policy=config.compare.python_policy)
    artifacts = tuple(compare_artifact(rule, image_run.files.get(rule.path), host_run.files.get(rule.path)) for rule in config.artifacts)
    return Report(
        project=config.project,
        image=image,
        lock_sha256=lock.sha256,
        environments={"image": dict(image_run.probe), "host": dict(host_run.probe)},
        differences=tuple(differences),
        artifacts=artifacts,
        ignored_packages=tuple(sorted(config.compare.ignore_packages)),
        settings=verified_settings(config),
        probe_cache={run.where: run.probe_cache for run in (image_run, host_run) if getattr(run, "probe_cache", None)},
    )


def verify(config: Config, *, engine: Engine | None = None, progress: Callable[[str], None] = print,
           against: "Reference | None" = None, logs: dict[str, Mapping[str, str]] | None = None) -> Report:
    """Build or reuse the image, run it and the host side, compare.

    With `against` (a recorded `harness.reference.Reference`) only the image
    side runs and is compared with the reference instead of the host; the
    report names the reference by sha256. `logs`, when given, receives each
    side's step output (side name -> step name -> output) of the first run:
    the Report itself carries no logs, the HTML page shows them.
    """
    config.require_steps(), config.require_artifacts()  # before the engine is asked for anything
    if against is not None:
        against.require_lock(read_lock(config.lock).sha256, source="given to verify()", lock_name=config.lock.name)
    engine = engine or Engine.connect()
    lock, image = prepare(config, engine, progress=progress)
    if against is None:
        image_run, host_run = run_both(config, engine, image, progress=progress)
        if logs is not None:
            logs.update(image=dict(image_run.logs), host=dict(host_run.logs))
        report = compare_runs(config, lock, image, image_run, host_run)
        if config.compare.repeat > 1:
            report = with_consistency(report, config, repeat_runs(config, engine, image, (image_run, host_run), progress=progress))
        return report
    image_run = run_in_image(engine, config, image.tag, progress=progress)
    if logs is not None:
        logs.update(image=dict(image_run.logs))
    report = compare_runs(config, lock, image, image_run, against.run_result())
    return replace(report, reference_sha256=against.sha256)


def repeat_runs(config: Config, engine: Engine, image: ImageInfo, first: tuple[RunResult, RunResult], *,
                progress: Callable[[str], None] = print) -> dict[str, list[RunResult]]:
    """Runs 2..`compare.repeat` of the host side (both sides with `compare.repeat_image`), after the first pair.

    Each run is a fresh side (new workspace, new container), so nothing of an
    earlier run can make a later one agree with it.
    """
    runs: dict[str, list[RunResult]] = {"host": [first[1]], "image": [first[0]]}
    for number in range(2, config.compare.repeat + 1):
        progress(f"repeat {number} of {config.compare.repeat}" + (" (image and host)" if config.compare.repeat_image else " (host)"))
        if config.compare.repeat_image:
            image_run, host_run = run_both(config, engine, image, progress=progress)
            runs["image"].append(image_run)
        else:
            with HostSide(config, progress=progress) as side:
                host_run = run_steps(side, config, progress=progress)
        runs["host"].append(host_run)
    return runs


def with_consistency(report: Report, config: Config, runs: dict[str, list[RunResult]]) -> Report:
    """`report` with the self-consistency of every side that ran more than once (pure)."""
    from harness.selfcheck import consistency

    checked = tuple(consistency(side, config.artifacts, [(r.files, r.probe) for r in side_runs])
                    for side, side_runs in runs.items() if len(side_runs) > 1)
    return replace(report, consistency=checked)


__all__ = ["compare_runs", "prepare", "repeat_runs", "run_both", "run_sides", "verify", "with_consistency"]
