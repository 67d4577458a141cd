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
from rich.text import Text

from harness.cli.signals import TERMINATING_SIGNALS
from harness.terminal import STDERR, STDOUT, SafeConsole, silence_broken
from harness.errors import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, MlreproError
from harness.files import write_atomic

# Safe consoles: project text cannot drive the terminal, and a closed pipe cannot change the exit code.
err = SafeConsole(file=STDERR, highlight=False)
out = SafeConsole(file=STDOUT, highlight=False)


def progress(message: str) -> None:
    err.print(Text.assemble(("·", "dim"), " ", message), soft_wrap=True)


def check_writable(path: Path) -> None:
    """Fail now, not after minutes of work, when `path` cannot be written; writes nothing."""
    existing = next(p for p in (path.parent.absolute(), *path.parent.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):  # access() reports a read-only filesystem even to root
        reason = "a file is in the way" if not existing.is_dir() else f"{existing} is not writable"
        raise MlreproError(f"cannot write {path}: {reason}; choose a writable path")


def network_failure(exc: BaseException) -> str | None:
    """One line for a network error that escaped its caller (a registry stalling, an engine gone), else None.

    Callers translate the errors they expect; this is the net under them, so a
    timeout is never reported as a bug in mlrepro.
    """
    import socket

    kinds: tuple[type[BaseException], ...] = (socket.timeout, ConnectionError, TimeoutError)
    try:
        import requests.exceptions
        import urllib3.exceptions

        kinds += (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)
    except ImportError:  # pragma: no cover - both come with docker-py
        pass
    if not isinstance(exc, kinds):
        return None
    first = str(exc).splitlines()[0][:240] if str(exc) else ""
    return (f"a network operation failed ({type(exc).__name__}: {first}); check that the engine, registry or index it "
            "talked to is reachable and not overloaded, then retry")


_interrupted: list[int] = []  # the signals `run` turned into interrupts


def _interrupt(signum, frame):  # noqa: ANN001
    _interrupted.append(signum)
    raise KeyboardInterrupt


def _exit(code: int) -> None:
    """sys.exit, except after an interrupt: then flush and leave at once with `code`.

    Everything the run made was removed while the interrupt unwound the body;
    what is left is interpreter shutdown, and a KeyboardInterrupt that crossed
    C code on its way (CPython then remembers it) would make the process kill
    itself with SIGINT at the very end: exit -2 after the one-line message,
    not the documented 2 (seen about once in 60 early signals by benchmarks/faults.py).
    """
    if not _interrupted:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run(action: Callable[[], int]) -> None:
    """Run a command body, turning every expected failure into one line and an exit code."""
    for signum in TERMINATING_SIGNALS:
        signal.signal(signum, _interrupt)
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
        network = network_failure(exc)
        if network:
            err.print(f"error: {network}", markup=False, soft_wrap=True)
            silence_broken(STDOUT, STDERR)
            _exit(EXIT_ERROR)
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        err.print(f"error: unexpected {type(exc).__name__}: {first} (a bug in mlrepro; rerun with MLREPRO_DEBUG=1 for the traceback and report it)", markup=False)
        code = EXIT_ERROR
    silence_broken(STDOUT, STDERR)
    _exit(code)


def load(path: str | None):
    """The configuration named by --config (default: the nearest pyproject.toml)."""
    from harness.config import load_config

    return load_config(Path(path) if path else None)


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=True), default=None,
                             help="pyproject.toml (or its directory) holding [tool.mlrepro]; default: nearest one.")


#: The private key that signs (the report with verify, the attestation with release); MLREPRO_SIGN_KEY when not given.
sign_key_option = click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False, path_type=Path), default=None,
                               envvar="MLREPRO_SIGN_KEY", show_envvar=True, metavar="KEY.pem",
                               help="PEM private key (ECDSA P-256 or Ed25519, mode 600) to sign with; "
                                    "an encrypted key's password comes from MLREPRO_SIGN_KEY_PASSWORD.")


def signer(path: Path | None):
    """The loaded signing key, or None; refused (one line, exit 2) before any work when unusable."""
    if path is None:
        return None
    from harness.attest.keys import load_signer

    return load_signer(path)


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
        except (click.Abort, KeyboardInterrupt):  # a signal (SIGTERM too: `run` makes it one) before or after the command body
            err.print("error: interrupted; nothing this run created was left behind", markup=False)
            _exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else EXIT_OK)



__all__ = ["EXIT_DRIFT", "EXIT_ERROR", "EXIT_OK", "Group", "check_writable", "config_option", "err", "load", "out", "progress", "run",
           "sign_key_option", "signer", "write_atomic"]
