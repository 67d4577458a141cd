"""What reaches a terminal: text made safe, and output that can never change a verdict.

Text that comes from a project (artifact summaries, step output, package
names, environment values) may hold control sequences that move the cursor,
clear the line or paint a fake verdict. `safe()` replaces every control
character but newline and tab with U+FFFD, one character for one, so rich's
style spans stay aligned. `SafeConsole` applies it to everything printed as a
string or a `Text`; renderers that build tables call `safe()` on each cell.

A closed stdout or stderr (`mlrepro verify | head -1`) must not change the
exit code or lose the JSON report: `SafeStream` swallows the broken pipe and
drops the rest of the output, and `silence_broken()` points the dead file
descriptors at /dev/null before the interpreter's final flush.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REPLACEMENT = "\ufffd"


def safe(text: str) -> str:
    """`text` with every control character except newline and tab replaced by U+FFFD (same length)."""
    return _CONTROL.sub(REPLACEMENT, text)


class SafeStream:
    """`sys.stdout` or `sys.stderr` (looked up at each write, so test runners can capture it), turning a
    broken pipe into silence: the rest of the output is dropped."""

    def __init__(self, name: str) -> None:
        self.name, self.broken = name, False

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self.name)

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except OSError as exc:
                if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                    raise
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except OSError as exc:
                if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                    raise
                self.broken = True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


class SafeConsole(Console):
    """A rich Console whose strings and Text objects are made `safe()` before they are printed."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - rich's own name
        cleaned = []
        for obj in objects:
            if isinstance(obj, str):
                obj = safe(obj)
            elif isinstance(obj, Text):
                obj = obj.copy()
                obj.plain = safe(obj.plain)
            cleaned.append(obj)
        super().print(*cleaned, **kwargs)


def silence_broken(*streams: SafeStream) -> None:
    """Point the file descriptor of every broken stream at /dev/null, so the final flush cannot fail."""
    for stream in streams:
        if stream.broken:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


STDOUT = SafeStream("stdout")
STDERR = SafeStream("stderr")

__all__ = ["REPLACEMENT", "STDERR", "STDOUT", "SafeConsole", "SafeStream", "safe", "silence_broken"]
