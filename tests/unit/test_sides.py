"""Sides through the fake engine: `run_both`, the container side, the host side, workers on either.

No Docker: `tests.fakes.FakeEngine` runs the container side's commands as host
processes in a directory that plays the container's filesystem, so the real
steps of a real configuration run, and what the harness does around them
(timeouts, kills, cleanup, messages) is what is tested.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest

from harness.config import parse_config
from harness.docker import ExecResult
from harness.errors import MlreproError, StepError
from harness.ownership import CURRENT, OWNER_ENV, RUN_ID, Owner, run_processes, run_tempdirs
from harness.parity import ContainerWorker, HostWorker, WorkerSide
from harness.report import ImageInfo
from harness.sides import ContainerSide, HostSide, run_step, run_steps
from harness.verify import run_both
from tests.fakes import FakeEngine

IMAGE = ImageInfo(tag="fake/project:0123456789abcdef", image_id="sha256:" + "1" * 64, content_hash="2" * 64,
                  base_image="fake/base:1", base_image_id="sha256:" + "3" * 64)

WRITE = """
import os, sys
out = sys.argv[1]
with open(os.path.join(out, "result.txt"), "w") as fh:
    fh.write("same on every side " + os.environ.get("MLREPRO_TEST_VALUE", "unset") + "\\n")
print("wrote", os.path.join(out, "result.txt"))
"""
SLEEP = "import sys, time\nprint('sleeping', flush=True)\ntime.sleep(float(sys.argv[1]))\n"
FORK = """
import os, sys, time
if os.fork() == 0:
    time.sleep(60)   # a child that keeps the step's stdout open
    os._exit(0)
print("parent done", flush=True)
"""
DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()                      # out of the step's process group
    if os.fork() == 0:               # and reparented away from it: a daemon
        with open(sys.argv[1], "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
time.sleep(1)
print("started a daemon", flush=True)
"""
LOUD = "import sys\nfor _ in range(5 * 1024):\n    sys.stdout.write('x' * 1023 + '\\n')\nprint('the end')\n"
ECHO = """
import json, os, sys
print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps({"id": req["id"], "labels": [0] * len(req["rows"]), "proba": [[r.get("x", 0.0)] for r in req["rows"]]}), flush=True)
"""


def project(tmp_path: Path, *steps: dict, **extra) -> object:
    """A configuration of a tiny project whose scripts are its inputs (so both sides have them)."""
    for name, text in (("write.py", WRITE), ("sleep.py", SLEEP), ("fork.py", FORK), ("echo.py", ECHO), ("daemon.py", DAEMON),
                       ("loud.py", LOUD)):
        (tmp_path / name).write_text(text)
    data = {
        "project": "tiny",
        "inputs": ["write.py", "sleep.py", "fork.py", "echo.py", "daemon.py", "loud.py"],
        "steps": list(steps) or [{"name": "write", "command": ["python", "{inputs}/write.py", "{out}"], "timeout": 30}],
        "artifacts": [{"path": "result.txt"}],
        "run": {"env": {"MLREPRO_TEST_VALUE": "42"}, "pass_env": []},
        **extra,
    }
    return parse_config(data, tmp_path)


# What this run owned before the test: the session's own long-lived resources (e.g. the
# parity workers of tests/integration, which live until the session ends) are not the test's.
_BEFORE: tuple[set, set] = (set(), set())


@pytest.fixture(autouse=True)
def _owned_before() -> None:
    global _BEFORE
    _BEFORE = (set(run_tempdirs(RUN_ID)), set(run_processes(RUN_ID)))


def new_processes() -> list[int]:
    """Host processes of this run that the current test started and left."""
    return [pid for pid in run_processes(RUN_ID) if pid not in _BEFORE[1]]


def no_leftovers(engine: FakeEngine) -> None:
    assert engine.live_containers() == []
    assert [p for p in run_tempdirs(RUN_ID) if "fake" not in p.name and p not in _BEFORE[0]] == []
    assert new_processes() == []


def test_run_both_runs_the_same_steps_on_both_sides_and_removes_everything(tmp_path: Path) -> None:
    engine = FakeEngine()
    config = project(tmp_path)
    image_run, host_run = run_both(config, engine, IMAGE, progress=lambda m: None, python=sys.executable)
    assert image_run.where == "image" and host_run.where == "host"
    assert image_run.files == host_run.files == {"result.txt": b"same on every side 42\n"}
    assert "wrote" in image_run.logs["write"] and "wrote" in host_run.logs["write"]
    assert image_run.probe["python"]["version"] == host_run.probe["python"]["version"]
    (box,) = engine.containers
    assert box.role == "verify" and box.env["MLREPRO_TEST_VALUE"] == "42" and box.labels["io.mlrepro.run"] == RUN_ID
    assert any(argv[1].endswith("/probe.py") for argv in box.execs)  # the probe ran in the container too
    no_leftovers(engine)
    assert engine.leftover_removals == 0


def test_a_failing_image_step_aborts_the_host_side_and_touches_nothing_else(tmp_path: Path) -> None:
    engine = FakeEngine()
    config = project(tmp_path, {"name": "train", "command": ["python", "{inputs}/sleep.py", "60"], "timeout": 120})

    def fail_train(box, argv):  # noqa: ANN001
        if argv[1].endswith("sleep.py"):
            time.sleep(0.5)  # the host side is asleep in its step by now
            return ExecResult(3, "training diverged: loss is nan\n")
        return None

    engine.on_exec = fail_train
    started = time.monotonic()
    with pytest.raises(StepError) as failure:
        run_both(config, engine, IMAGE, progress=lambda m: None, python=sys.executable)
    assert time.monotonic() - started < 30  # the host's 60 s step was killed, not waited for
    assert str(failure.value) == "step 'train' failed in the image (exit 3): training diverged: loss is nan"
    assert failure.value.where == "image" and failure.value.exit_code_seen == 3
    no_leftovers(engine)
    assert engine.leftover_removals == 0  # cleanup is what this call made, never a sweep of the run id


def test_a_step_past_its_timeout_is_named_the_same_way_on_both_sides(tmp_path: Path) -> None:
    config = project(tmp_path, {"name": "slow", "command": ["python", "{inputs}/sleep.py", "30"], "timeout": 1})
    engine = FakeEngine()
    for side in (ContainerSide(engine, config, IMAGE.tag), HostSide(config, sys.executable)):
        with side, pytest.raises(StepError) as failure:
            run_step(side, config.steps[0])
        assert str(failure.value).startswith(f"step 'slow' {side.place} exceeded its timeout of 1 s and was killed")
        assert failure.value.exit_code_seen is None
    no_leftovers(engine)


def test_a_killed_container_step_says_why(tmp_path: Path) -> None:
    engine = FakeEngine()
    config = project(tmp_path)

    def die(box, argv):  # noqa: ANN001
        box.kill()
        return ExecResult(137, "")

    engine.on_exec = die
    with ContainerSide(engine, config, IMAGE.tag) as side, pytest.raises(StepError, match=r"\(killed: the container stopped"):
        run_step(side, config.steps[0])
    no_leftovers(engine)


def test_a_step_that_leaves_a_child_holding_stdout_does_not_hold_the_run(tmp_path: Path) -> None:
    config = project(tmp_path, {"name": "fork", "command": ["python", "{inputs}/fork.py"], "timeout": 120})
    started = time.monotonic()
    with HostSide(config, sys.executable) as side:
        assert "parent done" in run_step(side, config.steps[0])
    assert time.monotonic() - started < 20  # not the child's 60 s
    assert new_processes() == []  # the child went with the step's process group


def test_a_daemon_a_step_leaves_is_found_killed_and_reported(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    config = project(tmp_path, {"name": "serve", "command": ["python", "{inputs}/daemon.py", str(pidfile)], "timeout": 60})
    said: list[str] = []
    with HostSide(config, sys.executable) as side:
        output = run_step(side, config.steps[0], progress=said.append)
    pid = int(pidfile.read_text())
    assert f"step 'serve' left 1 process(es) running on the host; they were killed: pid {pid}:" in output
    assert said and said[0].startswith("host: step 'serve' left 1 process(es)")
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"


def test_a_step_that_prints_megabytes_costs_a_bounded_tail(tmp_path: Path) -> None:
    config = project(tmp_path, {"name": "loud", "command": ["python", "{inputs}/loud.py"], "timeout": 60})
    with HostSide(config, sys.executable) as host, ContainerSide(FakeEngine(), config, IMAGE.tag) as image:
        for side in (host, image):
            output = run_step(side, config.steps[0])
            assert output.startswith("[mlrepro: the first ") and output.endswith("the end\n")
            assert len(output) < (1 << 20) + 200


def test_host_processes_carry_the_owner_and_no_stdin(tmp_path: Path) -> None:
    config = project(tmp_path)
    with HostSide(config, sys.executable) as side:
        done = side.execute([sys.executable, "-c", f"import os, sys; print(os.environ['{OWNER_ENV}'], repr(sys.stdin.read()))"], timeout=30)
    marker, stdin = done.output.split()
    assert done.exit_code == 0 and Owner.parse(marker) == CURRENT and stdin == "''"


def test_an_unopened_side_refuses_work(tmp_path: Path) -> None:
    with pytest.raises(MlreproError, match="not open"):
        HostSide(project(tmp_path), sys.executable).workspace  # noqa: B018


def test_run_steps_on_the_container_side_collects_outputs_and_logs(tmp_path: Path) -> None:
    engine = FakeEngine()
    config = project(tmp_path)
    with ContainerSide(engine, config, IMAGE.tag) as side:
        run = run_steps(side, config, progress=lambda m: None)
    assert run.files == {"result.txt": b"same on every side 42\n"} and set(run.logs) == {"write"}
    assert run.probe["schema"] == 1
    no_leftovers(engine)


@pytest.mark.parametrize("make", ["container", "host"])
def test_a_worker_runs_on_either_side_and_is_removed(tmp_path: Path, make: str) -> None:
    engine = FakeEngine()
    config = project(tmp_path, worker={"command": ["python", "{inputs}/echo.py"], "setup": ["write"], "schema": "result.txt:x"})
    side: WorkerSide = ContainerWorker(engine, config, IMAGE.tag) if make == "container" else HostWorker(config, sys.executable)
    with side as worker:
        assert worker.predict([{"x": -0.0}, {"x": 5e-324}]).proba == ((-0.0,), (5e-324,))
        assert side.side.output("result.txt") == b"same on every side 42\n"  # the setup step ran first
        assert "wrote" in side.setup_logs["write"]
    assert side.stream is not None and side.stream.exit_code() is not None
    no_leftovers(engine)


def test_a_host_worker_is_owner_labelled_while_it_runs(tmp_path: Path) -> None:
    config = project(tmp_path, worker={"command": ["python", "{inputs}/echo.py"], "setup": [], "schema": "result.txt:x"})
    side = HostWorker(config, sys.executable)
    with side:
        assert side.stream.pid in run_processes(RUN_ID)  # `mlrepro clean` finds it if this process dies
    assert side.stream.pid not in run_processes(RUN_ID)


def test_a_worker_whose_setup_fails_leaves_nothing(tmp_path: Path) -> None:
    engine = FakeEngine()
    config = project(tmp_path, worker={"command": ["python", "{inputs}/echo.py"], "setup": ["write"], "schema": "result.txt:x"})
    engine.on_exec = lambda box, argv: ExecResult(1, "no model\n") if argv[1].endswith("write.py") else None
    with pytest.raises(StepError, match="step 'write' failed in the image \\(exit 1\\): no model"):
        ContainerWorker(engine, config, IMAGE.tag).start()
    no_leftovers(engine)


def test_config_without_worker_is_refused(tmp_path: Path) -> None:
    config = dataclasses.replace(project(tmp_path), worker=None)
    with pytest.raises(MlreproError, match=r"\[tool.mlrepro.worker\] is not configured"):
        HostWorker(config, sys.executable)
