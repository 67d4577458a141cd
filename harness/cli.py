"""`mlrepro`: a thin command line over the library.

Parse, call, map the outcome to an exit code: 0 reproducible / done, 1 drift
found, 2 usage, configuration or infrastructure error (one line on stderr,
`error: ...`, never a traceback). Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable

import click
from rich.console import Console

from harness.errors import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, MlreproError

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def progress(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", markup=True, soft_wrap=True)


def write_atomic(path: Path, text: str) -> None:
    """Write all of `text` or nothing: a temp file beside `path`, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise MlreproError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp creates 0600; keep the mode of the file we replace, else the usual 0644 (umask).
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise MlreproError(f"cannot write {path}: {exc.strerror or exc}; free space or choose another path") from None


def _sigterm(signum, frame):  # noqa: ANN001
    raise KeyboardInterrupt


def run(action: Callable[[], int]) -> None:
    """Run a command body, turning every expected failure into one line and an exit code."""
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        code = action()
    except MlreproError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        if exc.evidence:
            err.print("\n".join("  | " + line for line in exc.evidence.splitlines()), markup=False, style="dim", soft_wrap=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        err.print("error: interrupted; nothing this run created was left behind", markup=False)
        code = EXIT_ERROR
    except Exception as exc:  # a bug, not an expected failure: still one line, unless debugging
        if os.environ.get("MLREPRO_DEBUG"):
            raise
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        err.print(f"error: unexpected {type(exc).__name__}: {first} (a bug in mlrepro; rerun with MLREPRO_DEBUG=1 for the traceback and report it)", markup=False)
        code = EXIT_ERROR
    sys.exit(code)


def _config(path: str | None):
    from harness.config import load_config

    return load_config(Path(path) if path else None)


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=True), default=None,
                             help="pyproject.toml (or its directory) holding [tool.mlrepro]; default: nearest one.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlrepro")
def main() -> None:
    """Prove that an ML container computes exactly what was tested."""


@main.command()
@config_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the full report as JSON here.")
@click.option("--host-mode", type=click.Choice(["current", "venv"]), default=None, help="Host side: this interpreter, or a venv synced from the lock.")
def verify(config_path: str | None, json_path: str | None, host_mode: str | None) -> None:
    """Build the image, run train and predict in it and on the host, compare everything."""

    def body() -> int:
        import dataclasses

        from harness.report import render
        from harness.verify import verify as do_verify

        config = _config(config_path)
        if host_mode:
            config = dataclasses.replace(config, host=dataclasses.replace(config.host, mode=host_mode))
        report = do_verify(config, progress=progress)
        render(report, out)
        if json_path:
            write_atomic(Path(json_path), report.to_json())
            progress(f"JSON report written to {json_path}")
        return EXIT_OK if report.reproducible else EXIT_DRIFT

    run(body)


@main.command("base-image")
@config_option
@click.option("--force-local", is_flag=True, help="Build the local Debian base even when the public one is available.")
@click.option("--mirror", default=None, help="Debian mirror for debootstrap (default: the one apt uses).")
def base_image(config_path: str | None, force_local: bool, mirror: str | None) -> None:
    """Make sure a base image exists: the configured one, or a local one built from Debian packages."""

    def body() -> int:
        from harness.baseimage import ensure_base
        from harness.engine import Engine

        config = _config(config_path)
        name, image_id, _ = ensure_base(Engine.connect(), config.build, force_local=force_local, mirror=mirror, progress=progress)
        out.print(f"{name} {image_id}", markup=False)
        return EXIT_OK

    run(body)


@main.command()
@config_option
def wheelhouse(config_path: str | None) -> None:
    """Fetch exactly the locked wheels for the image's platform (hashes checked)."""

    def body() -> int:
        from harness.engine import Engine
        from harness.lock import read_lock
        from harness.wheelhouse import Target, fetch

        config = _config(config_path)
        lock = read_lock(config.lock)
        target = Target(config.wheelhouse.python_version, Engine.connect().architecture(), config.wheelhouse.glibc)
        if not fetch(config.wheelhouse.dir, config.lock, lock, target, progress=progress):
            progress(f"wheelhouse is up to date for {target.key()} and lock {lock.sha256[:12]}")
        return EXIT_OK

    run(body)


@main.command()
@config_option
@click.option("--no-cache", is_flag=True, help="Rebuild from scratch: no image reuse, no layer cache.")
def build(config_path: str | None, no_cache: bool) -> None:
    """Build the image (or reuse it when its content hash is unchanged); print its tag and ID."""

    def body() -> int:
        from harness.engine import Engine
        from harness.verify import prepare

        config = _config(config_path)
        _, image = prepare(config, Engine.connect(), progress=progress, no_cache=no_cache)
        out.print(f"{image.tag} {image.image_id}", markup=False)
        return EXIT_OK

    run(body)


@main.command()
def clean() -> None:
    """Remove every container a crashed or killed run left behind (labeled io.mlrepro.managed)."""

    def body() -> int:
        from harness.engine import Engine

        removed = Engine.connect().remove_leftovers()
        out.print(f"removed {removed} leftover container(s)")
        return EXIT_OK

    run(body)


from harness.demo_cli import demo_command  # noqa: E402 - registered after main exists

main.add_command(demo_command, "demo")

from harness.lock_cli import lock_command  # noqa: E402

main.add_command(lock_command, "lock")

if __name__ == "__main__":
    main()
