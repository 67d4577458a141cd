"""`mlrepro base-image`, `wheelhouse` and `build`: the image and what goes into it, each step alone."""

from __future__ import annotations

import click

from harness.cli.options import EXIT_OK, config_option, load, out, progress, run


@click.command("base-image")
@config_option
@click.option("--force-local", is_flag=True, help="Build the local Debian base even when the public one is available.")
@click.option("--mirror", default=None, help="Debian mirror for debootstrap (default: the one apt uses).")
def base_image_command(config_path: str | None, force_local: bool, mirror: str | None) -> None:
    """Make sure a base image exists: the configured one, or a local one built from Debian packages."""

    def body() -> int:
        from harness.image.base import ensure_base
        from harness.docker.engine import Engine

        config = load(config_path)
        name, image_id, _ = ensure_base(Engine.connect(), config.build, force_local=force_local, mirror=mirror, progress=progress)
        out.print(f"{name} {image_id}", markup=False, soft_wrap=True)
        return EXIT_OK

    run(body)


@click.command("wheelhouse")
@config_option
def wheelhouse_command(config_path: str | None) -> None:
    """Fetch exactly the locked wheels for the image's platform (hashes checked)."""

    def body() -> int:
        from harness.docker.engine import Engine
        from harness.lock import read_lock
        from harness.image.wheelhouse import Target, fetch

        config = load(config_path)
        lock = read_lock(config.lock)
        target = Target(config.wheelhouse.python_version, Engine.connect().architecture(), config.wheelhouse.glibc)
        if not fetch(config.wheelhouse.dir, config.lock, lock, target, progress=progress):
            progress(f"wheelhouse is up to date for {target.key()} and lock {lock.sha256[:12]}")
        return EXIT_OK

    run(body)


@click.command("build")
@config_option
@click.option("--no-cache", is_flag=True, help="Rebuild from scratch: no image reuse, no layer cache.")
@click.option("--reproducible", is_flag=True, help="Build with buildah, every timestamp at the epoch: the same tree gives the same image ID.")
def build_command(config_path: str | None, no_cache: bool, reproducible: bool) -> None:
    """Build the image (or reuse it when its content hash is unchanged); print its tag and ID."""

    def body() -> int:
        from harness.docker.engine import Engine
        from harness.lock import read_lock
        from harness.verify import prepare

        config = load(config_path)
        read_lock(config.lock)  # a broken lock fails before the engine is asked for anything
        if reproducible:
            from harness.docker.buildah import require_buildah

            require_buildah()  # before the wheelhouse and the engine: one line, exit 2, naming how to install it
        _, image = prepare(config, Engine.connect(), progress=progress, no_cache=no_cache, reproducible=reproducible)
        out.print(f"{image.tag} {image.image_id}", markup=False, soft_wrap=True)
        return EXIT_OK

    run(body)
