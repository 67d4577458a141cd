"""What every `mlrepro` command shares: consoles, progress, the error-to-exit-code runner, options.

Each command module imports this one, and only `harness.cli` (the group)
imports the command modules: no cycles. Exit codes: 0 reproducible / done,
1 drift found, 2 usage, configuration or infrastructure error (one line on
stderr, `error: ...`, never a traceback). Progress goes to stderr, results
to stdout.
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
from harness.files import write_atomic

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


def load(path: str | None):
    """The configuration named by --config (default: the nearest pyproject.toml)."""
    from harness.config import load_config

    return load_config(Path(path) if path else None)


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=True), default=None,
                             help="pyproject.toml (or its directory) holding [tool.mlrepro]; default: nearest one.")


class Group(click.Group):
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



__all__ = ["EXIT_DRIFT", "EXIT_ERROR", "EXIT_OK", "Group", "check_writable", "config_option", "err", "load", "out", "progress", "run", "write_atomic"]
