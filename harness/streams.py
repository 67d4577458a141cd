"""Reading a child process's output, wherever the process runs: bounded tails, and lines.

`Tail` keeps the last bytes of an output of any size: a step that prints a
gigabyte costs a megabyte (the evidence is the end of the output, where the
error is), never the whole output in memory.


`LineReader`: a persistent worker answers one JSON line per request, in the container
(through an exec socket, `engine.ExecStream`) or on the host (through a pipe,
`worker.HostStream`). Both split bytes into lines the same way; only how bytes
arrive differs, so that is the one method a stream implements.
"""

from __future__ import annotations

import threading
import time

#: How much of a step's output is kept (its end): enough for any error message and log tail.
OUTPUT_TAIL = 1 << 20


class Tail:
    """The last `limit` bytes appended (thread-safe), and how many bytes were dropped before them."""

    def __init__(self, limit: int = OUTPUT_TAIL) -> None:
        self.limit, self.dropped = limit, 0
        self._buf = bytearray()
        self._lock = threading.Lock()

    def append(self, chunk: bytes) -> None:
        with self._lock:
            self._buf += chunk
            extra = len(self._buf) - self.limit
            if extra > 0:
                del self._buf[:extra]
                self.dropped += extra

    def text(self) -> str:
        """The kept bytes as text, saying first how much was left out."""
        with self._lock:
            body = bytes(self._buf).decode("utf-8", "replace")
            dropped = self.dropped
        if dropped:
            body = body.partition("\n")[2] if "\n" in body else body  # start at a line boundary
            return f"[mlrepro: the first {dropped} bytes of this output were left out; the last {self.limit} are kept]\n" + body
        return body


__all__ = ["OUTPUT_TAIL", "LineReader", "Tail"]


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
