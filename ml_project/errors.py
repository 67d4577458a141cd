"""The project's one error type: a problem with the caller's input or environment, never a bug.

Its message must say what was expected, what was found and what to do; the CLIs
print it as a single `error: ` line and exit with EXIT_BAD_INPUT.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2


class ProjectError(Exception):
    """Bad input, usage or environment; reported on one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT
