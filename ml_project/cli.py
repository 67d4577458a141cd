"""Shared CLI plumbing: usage errors and ProjectErrors both become one `error: ` line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ml_project.errors import EXIT_BAD_INPUT, EXIT_OK, ProjectError


def print_error(message: str) -> None:
    """Write `error: <message>` to stderr as exactly one line."""
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"error: {one_line}\n")
    sys.stderr.flush()


def print_warning(message: str) -> None:
    """Write `warning: <message>` to stderr as exactly one line (the run still succeeds)."""
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"warning: {one_line}\n")
    sys.stderr.flush()


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but its usage errors are one `error:` line too (exit code stays 2)."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())
        print_error(f"{message}; expected {usage!r}; run with --help for details")
        raise SystemExit(EXIT_BAD_INPUT)


def run(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], None],
) -> int:
    """Parse argv, run body, map errors to exit codes; returns instead of exiting (testable)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        body(args)
    except ProjectError as exc:
        print_error(str(exc))
        return exc.exit_code
    return EXIT_OK
