"""What reaches a terminal: project text cannot drive it, and a closed pipe changes nothing."""

from __future__ import annotations

import io
import re
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from harness.terminal import REPLACEMENT, SafeConsole, SafeStream, safe

ROOT = Path(__file__).resolve().parents[2]
FAKE_VERDICT = "\x1b[2K\r\x1b[1A\x1b[32mREPRODUCIBLE: all good\x1b[0m"


@given(st.text())
def test_safe_keeps_length_and_leaves_no_control_character(text: str) -> None:
    cleaned = safe(text)
    assert len(cleaned) == len(text)
    assert all(ch in "\n\t" or not (ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F) for ch in cleaned)


def test_a_fake_verdict_from_a_project_cannot_move_the_cursor() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, force_terminal=True, color_system="standard", width=200, highlight=False)
    console.print(FAKE_VERDICT)
    console.print(Text(FAKE_VERDICT, style="bold"))
    shown = buffer.getvalue()
    assert "\r" not in shown
    # Only the console's own colour codes remain: nothing that erases a line or moves the cursor.
    assert set(re.findall(r"\x1b\[[0-9;]*[A-Za-z]", shown)) <= {"\x1b[1m", "\x1b[0m"}
    assert shown.count("\x1b") == len(re.findall(r"\x1b\[[0-9;]*m", shown)) > 0
    assert shown.count(REPLACEMENT) >= 2 * FAKE_VERDICT.count("\x1b")  # each of the project's ESCs, visibly replaced


def test_a_broken_pipe_is_silence_not_an_error(monkeypatch) -> None:  # noqa: ANN001
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        stream = SafeStream("stdout")
        assert stream.write("x" * 100_000) == 100_000  # pipe buffer overflows into EPIPE
        stream.flush()
        assert stream.broken
        assert stream.write("more") == 4  # dropped, quietly


def test_a_closed_stdout_leaves_the_exit_code_as_it_was() -> None:
    # `mlrepro lock --check | head -c 0`: fresh lock, exit 0, whatever happened to stdout.
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "lock", "--check"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"})
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr and b"Exception ignored" not in stderr


def test_a_network_error_that_escaped_is_one_line_not_a_bug() -> None:
    import urllib3.exceptions

    from harness.cli.options import network_failure

    stalled = urllib3.exceptions.ReadTimeoutError(None, "/v2/uploads", "Read timed out. (read timeout=10)")
    line = network_failure(stalled)
    assert line is not None and line.startswith("a network operation failed (ReadTimeoutError:") and "retry" in line
    assert network_failure(ValueError("a real bug")) is None
