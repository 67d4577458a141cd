"""Line-oriented reading of a child process's stdout, wherever the process runs.

A persistent worker answers one JSON line per request, in the container
(through an exec socket, `engine.ExecStream`) or on the host (through a pipe,
`worker.HostStream`). Both split bytes into lines the same way; only how bytes
arrive differs, so that is the one method a stream implements.
"""

from __future__ import annotations

import time


class LineReader:
    """stdout lines over `_receive`, which appends to `_stdout` and sets `_eof` at the end."""

    def __init__(self) -> None:
        self._stdout = bytearray()
        self._eof = False

    def _receive(self, timeout: float) -> bool:
        """Wait up to `timeout` for output; False if none came."""
        raise NotImplementedError

    def _ended(self) -> bool:
        return self._eof

    def readline(self, timeout: float) -> bytes:
        """The next stdout line (with its newline); b"" once stdout has ended; TimeoutError past `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._stdout.find(b"\n")
            if end >= 0:
                line = bytes(self._stdout[: end + 1])
                del self._stdout[: end + 1]
                return line
            if self._ended():
                line = bytes(self._stdout)
                self._stdout.clear()
                return line
            left = deadline - time.monotonic()
            if left <= 0 or not self._receive(left):
                raise TimeoutError(f"no output line within {timeout:g} s")
