"""`mlrepro`: a thin command line over the library.

Parse, call, map the outcome to an exit code: 0 reproducible / done, 1 drift
found, 2 usage, configuration or infrastructure error (one line on stderr,
`error: ...`, never a traceback). Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Callable

import click
from rich.console import Console

from harness.errors import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, MlreproError
from harness.files import write_atomic  # noqa: F401 - re-exported for the command modules

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def progress(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", markup=True, soft_wrap=True)


def check_writable(path: Path) -> None:
    """Fail now, not after minutes of work, when `path` cannot be written; writes nothing."""
    existing = next(p for p in (path.parent.absolute(), *path.parent.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):  # access() reports a read-only filesystem even to root
        reason = "a file is in the way" if not existing.is_dir() else f"{existing} is not writable"
        raise MlreproError(f"cannot write {path}: {reason}; choose a writable path")


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


class _Group(click.Group):
    """click, but a usage error is one `error: ` line and exit 2 like every other error."""

    def main(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "mlrepro"
            message = " ".join(exc.format_message().split()).rstrip(".")
            err.print(f"error: {message}; see '{where} --help'", markup=False, soft_wrap=True)
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            err.print(f"error: {' '.join(exc.format_message().split())}", markup=False, soft_wrap=True)
            sys.exit(EXIT_ERROR)
        except click.Abort:
            err.print("error: interrupted; nothing this run created was left behind", markup=False)
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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

        from harness.lock import read_lock
        from harness.report import render
        from harness.verify import verify as do_verify

        config = _config(config_path)
        if host_mode:
            config = dataclasses.replace(config, host=dataclasses.replace(config.host, mode=host_mode))
        # Every local input is checked before the engine is asked for anything.
        read_lock(config.lock)
        if json_path:
            check_writable(Path(json_path))
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
        out.print(f"{name} {image_id}", markup=False, soft_wrap=True)
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
        from harness.lock import read_lock
        from harness.verify import prepare

        config = _config(config_path)
        read_lock(config.lock)  # a broken lock fails before the engine is asked for anything
        _, image = prepare(config, Engine.connect(), progress=progress, no_cache=no_cache)
        out.print(f"{image.tag} {image.image_id}", markup=False, soft_wrap=True)
        return EXIT_OK

    run(body)


@main.command()
@click.option("--all", "include_live", is_flag=True, help="Also remove what runs still in progress are using (they will fail).")
def clean(include_live: bool) -> None:
    """Remove what crashed or killed runs left behind: labeled containers, volumes, networks, temp dirs."""

    def body() -> int:
        from harness.engine import Engine
        from harness.runner import remove_stale_tempdirs, stop_stale_processes

        procs = stop_stale_processes(include_live=include_live)
        dirs = remove_stale_tempdirs(include_live=include_live)
        counts = Engine.connect().remove_leftovers(include_live=include_live)
        out.print(f"removed {counts['container']} container(s), {counts['volume']} volume(s), {counts['network']} network(s), "
                  f"{dirs} temporary director{'y' if dirs == 1 else 'ies'} and {procs} host process(es) left by runs", markup=False, soft_wrap=True)
        if counts["skipped"]:
            progress(f"kept {counts['skipped']} resource(s) of runs still in progress; 'mlrepro clean --all' removes them too")
        return EXIT_OK

    run(body)


# Commands with modules of their own, registered once `main` exists (they import this module).
from harness.demo_cli import demo_command  # noqa: E402
from harness.lock_cli import lock_command  # noqa: E402
from harness.release_cli import release_command  # noqa: E402

main.add_command(demo_command, "demo")
main.add_command(lock_command, "lock")
main.add_command(release_command, "release")

if __name__ == "__main__":
    main()
