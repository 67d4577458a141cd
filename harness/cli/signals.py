"""Which signals end a run, and what they do before the command body starts.

Installed first by `harness.cli` while it imports the command modules and the
libraries they import, and restored after: a signal that arrives while the CLI
is still importing has nothing to clean up yet, so it ends the process at once
with one line and exit 2, instead of Python's KeyboardInterrupt traceback from
inside an import (found by benchmarks/faults.py). `options.run` installs the
handlers that turn a signal into an interrupt the body's `finally` blocks see.
"""

from __future__ import annotations

import os
import signal

#: Every signal whose default action ends the process and that can be caught (SIGKILL cannot be caught;
#: `mlrepro clean` is for that). SIGPIPE is left to Python, which ignores it (a closed pipe is an OSError).
TERMINATING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM",
                                       "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGIO", "SIGPWR", "SIGSTKFLT")
    if hasattr(signal, name)
)

STARTING_MESSAGE = b"error: interrupted while starting; nothing was done\n"


def _while_starting(signum, frame):  # noqa: ANN001
    os.write(2, STARTING_MESSAGE)
    os._exit(2)  # EXIT_ERROR; nothing exists yet that a `finally` would have to remove


def install_startup_handlers() -> dict:
    """Install the start-up handlers; the handlers they replace, for `restore_handlers`."""
    return {signum: signal.signal(signum, _while_starting) for signum in TERMINATING_SIGNALS}


def restore_handlers(saved: dict) -> None:
    """Put back what `install_startup_handlers` replaced (a library import of `harness.cli` leaves no trace)."""
    for signum, handler in saved.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


__all__ = ["STARTING_MESSAGE", "TERMINATING_SIGNALS", "install_startup_handlers", "restore_handlers"]
