"""One writer at a time: a second run waits for the first, is told so, and goes on when it is done."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import MlreproError
from harness.exclusive import exclusive

ROOT = Path(__file__).resolve().parents[2]
WAITER = """
import sys, time
from pathlib import Path
from harness.exclusive import exclusive
with exclusive(Path(sys.argv[1]), "the test state", progress=lambda m: print(m, flush=True)):
    print("got it", flush=True)
"""


def test_a_second_writer_waits_says_so_and_proceeds(tmp_path: Path) -> None:
    lock = tmp_path / "state.lock"
    with exclusive(lock, "the test state"):
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, str(lock)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert waiter.stdout.readline().startswith("waiting for another run to finish with the test state")
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting while we hold it
    out, _ = waiter.communicate(timeout=60)
    assert out == "got it\n" and waiter.returncode == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    lock = tmp_path / "state.lock"
    holder = subprocess.Popen([sys.executable, "-c", WAITER.replace('print("got it", flush=True)', 'print("got it", flush=True); time.sleep(60)'),
                               str(lock)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "got it\n"
    holder.kill()
    holder.wait()
    started = time.monotonic()
    with exclusive(lock, "the test state"):
        assert time.monotonic() - started < 5


def test_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(MlreproError, match=r"cannot create the lock file .*; make .* writable"):
        with exclusive(tmp_path / "file" / "state.lock", "the test state"):
            pass
