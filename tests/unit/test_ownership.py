"""Run ownership: an owner is more than a pid and a hostname, and unknown means alive.

The case behind it: `mlrepro clean` run from a CI container with `--network
host` (same hostname, another pid namespace) removed a live run's resources,
because a pid that does not exist *there* looked dead.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.ownership import (
    CURRENT,
    LABEL_OWNER,
    OWNER_FILE,
    TEMP_PREFIX,
    Owner,
    owner_alive,
    owner_labels,
    pid_start,
    run_processes,
    run_tempdirs,
)
from harness.sides.process import HostProcesses

field = st.text("abcdefABCDEF0123456789-._[]", max_size=40)  # what ids, counters and namespaces are made of


@given(run=field, pid=st.integers(1, 2**22), start=field, pidns=field, boot=field, machine=field)
def test_an_owner_survives_its_encoding(run: str, pid: int, start: str, pidns: str, boot: str, machine: str) -> None:
    owner = Owner(run, pid, start, pidns, boot, machine)
    assert Owner.parse(owner.encode()) == owner


def test_older_markers_still_parse_and_nonsense_does_not() -> None:
    assert Owner.parse("abc123:4242") == Owner("abc123", 4242)
    assert Owner.parse("no pid here") is None and Owner.parse("a:b:c") is None


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_this_process_is_alive_and_a_finished_one_is_not() -> None:
    assert CURRENT.alive()
    assert pid_start(CURRENT.pid) == CURRENT.start != ""
    assert not dataclasses.replace(CURRENT, pid=dead_pid(), start="").alive()


def test_a_reused_pid_is_another_process() -> None:
    assert not dataclasses.replace(CURRENT, start=str(int(CURRENT.start) + 1)).alive()


def test_another_pid_namespace_cannot_be_judged_so_it_counts_as_alive() -> None:
    assert dataclasses.replace(CURRENT, pid=dead_pid(), pidns="4026530000").alive()


def test_a_previous_boot_of_this_machine_is_over_and_another_machine_is_unknown() -> None:
    assert not dataclasses.replace(CURRENT, boot="another-boot").alive()
    assert dataclasses.replace(CURRENT, machine="another-machine", boot="another-boot", pid=dead_pid()).alive()


def test_engine_labels_carry_the_whole_identity() -> None:
    labels = owner_labels("verify")
    assert Owner.parse(labels[LABEL_OWNER]) == CURRENT and owner_alive(labels)
    foreign = {**labels, LABEL_OWNER: dataclasses.replace(CURRENT, pid=dead_pid(), pidns="1").encode()}
    assert owner_alive(foreign)  # the case that removed a live run's container
    gone = {**labels, LABEL_OWNER: dataclasses.replace(CURRENT, pid=dead_pid()).encode()}
    assert not owner_alive(gone)


def test_stale_temp_dirs_are_judged_by_the_owner_file(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pid = dead_pid()
    foreign = tmp_path / f"{TEMP_PREFIX}othern-{pid}-host-x"  # a live run in another pid namespace
    foreign.mkdir()
    (foreign / OWNER_FILE).write_text(dataclasses.replace(CURRENT, run="othern", pid=pid, pidns="1").encode())
    stale = tmp_path / f"{TEMP_PREFIX}stale-{pid}-host-y"  # a run of this namespace that died
    stale.mkdir()
    (stale / OWNER_FILE).write_text(dataclasses.replace(CURRENT, run="stale", pid=pid, start="").encode())
    old = tmp_path / f"{TEMP_PREFIX}old-{pid}-host-z"  # made before owner files existed: the pid decides
    old.mkdir()
    assert run_tempdirs(include_live=False) == sorted([stale, old])
    assert run_tempdirs(include_live=True) == sorted([foreign, stale, old])


def test_host_processes_are_found_by_their_owner_marker() -> None:
    processes = HostProcesses()
    stream = processes.spawn([sys.executable, "-c", "import sys; sys.stdin.read()"])
    try:
        assert stream.pid in run_processes(CURRENT.run)
        assert stream.pid not in run_processes(CURRENT.run, include_live=False)  # its owner (us) is alive
    finally:
        stream.close()
    assert stream.pid not in run_processes(CURRENT.run)


def test_a_killed_fetchs_staging_directory_is_found_only_when_its_owner_is_gone(tmp_path):
    """Issue 13: a killed `mlrepro wheelhouse` leaves `.wheelhouse-staging-*` beside the wheelhouse; clean knows it."""
    from harness.cli.clean import _project_leftovers
    from harness.image.wheelhouse import staging_prefix
    from harness.ownership import CURRENT, OWNER_FILE, Owner, stale_staging_dirs

    project = tmp_path / "p"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.mlrepro]\nproject = "p"\n')
    prefix = staging_prefix(project / "wheelhouse")
    dead, live, unmarked = (project / f"{prefix}{name}" for name in ("dead", "live", "unmarked"))
    for path in (dead, live, unmarked):
        path.mkdir()
        (path / "numpy-2.2.5-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"partial")
    gone = Owner("deadrun", 2**22 + 7, "1", CURRENT.pidns, CURRENT.boot, CURRENT.machine)  # no such pid
    (dead / OWNER_FILE).write_text(gone.encode() + "\n")
    (live / OWNER_FILE).write_text(CURRENT.encode() + "\n")
    assert stale_staging_dirs(project, prefix) == [dead]
    assert stale_staging_dirs(project, prefix, include_live=True) == [dead, live]
    assert _project_leftovers(str(project), include_live=False) == 1
    assert not dead.exists() and live.exists() and unmarked.exists()  # an unmarked directory is never someone's to remove
