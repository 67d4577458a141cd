"""`mlrepro rebuild-check`: do two no-cache builds of this tree hold the same files? Exit 0 identical, 1 differs, 2 error."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.options import EXIT_DRIFT, EXIT_OK, check_writable, config_option, load, out, progress, run, write_atomic

#: Differing files named on the console; --json lists them all.
SHOWN = 50


def render(result) -> list[str]:  # noqa: ANN001 (a RebuildResult; imported lazily like every command's library)
    """The console lines: each differing file with its reason, config differences, times, then the verdict line."""
    comparison = result.comparison
    lines = [f"{d.path}: {d.reason}" for d in comparison.files[:SHOWN]]
    if len(comparison.files) > SHOWN:
        lines.append(f"... and {len(comparison.files) - SHOWN} more differing files (--json PATH lists them all)")
    lines += [f"config {d.field}: {json.dumps(d.first, sort_keys=True)} in the first build, {json.dumps(d.second, sort_keys=True)} in the second"
              for d in comparison.config]
    lines += [f"{name} (a time, not compared): {first} / {second}" for name, (first, second) in sorted(comparison.times.items())]
    if result.ids_compared:
        ids = f"same image ID {result.builds[0].image_id}" if result.ids_equal else \
            f"image IDs differ: {result.builds[0].image_id} / {result.builds[1].image_id}"
        lines.append(f"{result.builder}, timestamps at the epoch: {ids}")
    compared = f"{comparison.files_compared} files and the image config of two no-cache builds of {result.image_name}"
    mtimes = "mtimes compared" if comparison.mtimes else "mtimes ignored"
    if result.identical:
        lines.append(f"IDENTICAL CONTENT: {compared} agree ({mtimes})")
    else:
        counts = ", ".join(f"{count} {reason}" for reason, count in comparison.reason_counts().items())
        what = [f"{len(comparison.files)} of {comparison.files_compared} files differ" + (f" ({counts})" if counts else "")]
        if comparison.config:
            what.append(f"{len(comparison.config)} config fields differ")
        if result.ids_compared and not result.ids_equal:
            what.append("the image IDs differ")
        lines.append(f"DIFFERS: {'; '.join(what)} ({mtimes})")
    return lines


@click.command("rebuild-check")
@config_option
@click.option("--mtimes", is_flag=True, help="Also compare modification times (the legacy builder stamps them with the build time).")
@click.option("--reproducible", is_flag=True, help="Build both with buildah, timestamps at the epoch, and compare the image IDs too.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write every compared difference as JSON here.")
def rebuild_check_command(config_path: str | None, mtimes: bool, reproducible: bool, json_path: str | None) -> None:
    """Build the tree twice from scratch (other time, path, umask) and compare both images file by file."""

    def body() -> int:
        from harness.docker.engine import Engine
        from harness.image.rebuild import rebuild_check
        from harness.lock import read_lock
        from harness.image.wheelhouse import Target, fetch

        config = load(config_path)
        if json_path:
            check_writable(Path(json_path))
        if reproducible:
            from harness.docker.buildah import require_buildah

            require_buildah()
        lock = read_lock(config.lock)
        engine = Engine.connect()
        target = Target(config.wheelhouse.python_version, engine.architecture(), config.wheelhouse.glibc)
        fetch(config.wheelhouse.dir, config.lock, lock, target, progress=progress)
        result = rebuild_check(engine, config, lock, mtimes=mtimes, reproducible=reproducible, progress=progress)
        if json_path:
            write_atomic(Path(json_path), json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        for line in render(result):
            out.print(line, markup=False, soft_wrap=True)
        return EXIT_OK if result.identical else EXIT_DRIFT

    run(body)
