"""Fault injection (issue 8): every fault ends in one clear line, exit 2, and nothing left behind.

Each case runs the real CLI (`python -m harness.cli`) as a subprocess against a real
engine, on a tiny project made here (a few-line job on the local base image, so its
image builds in seconds and is then reused by content hash). Each subprocess gets a
known MLREPRO_RUN_ID, so afterwards the test lists exactly what that run labeled
(containers, volumes, networks), its temporary directories and its host processes,
and asserts there are none. docs/faults.md tabulates what each case produced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.plugin import missing_prerequisite
from harness.image.base import resolve_base
from harness.config import load_config
from harness.docker.engine import Engine
from harness.ownership import run_processes, run_tempdirs
from harness.image.wheelhouse import Target, write_stamp
from harness.lock import parse_lock

ROOT = Path(__file__).resolve().parents[2]

# The job every step runs: a few lines whose behaviour the step's first argument picks.
# The image runs it as uid 10001, the host as whoever runs the tests: a fault can hit one side only.
JOB = '''\
import os, sys, time
in_image = os.getuid() == 10001
mode, out = sys.argv[1], sys.argv[2]
print(f"job {mode} started in the {'image' if in_image else 'host'}", flush=True)
if mode == "sleep" or (mode == "sleep-on-host" and not in_image):
    time.sleep(120)
elif mode == "fail-in-image" and in_image:
    print("epoch 1: loss=0.693", flush=True)
    time.sleep(0.2)  # stdout and stderr travel apart: keep their order
    print("training diverged: loss is nan", file=sys.stderr, flush=True)
    sys.exit(3)
elif mode == "oom-in-image" and in_image:
    block = bytearray(1 << 30)  # 1 GiB, zero-filled: every page touched
elif mode == "big-output":
    with open(os.path.join(out, "big.bin"), "wb") as fh:
        fh.write(b"x" * (256 * 1024))
elif mode == "write-outside":
    open("/tmp/escaped.txt", "w").write("x")
with open(os.path.join(out, "result.txt"), "w") as fh:
    fh.write("ok\\n")
'''

DOCKERFILE = '''\
ARG BASE_IMAGE=mlrepro/python:3.11-bookworm
FROM ${{BASE_IMAGE}}
RUN command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python
{extra}COPY job.py /job/job.py
WORKDIR /job
USER 10001:10001
'''


@dataclass
class Outcome:
    """A finished CLI run: exit code, output, and the run id its resources carry."""

    code: int
    stdout: str
    stderr: str
    run_id: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]

    @property
    def evidence(self) -> str:
        return "\n".join(line for line in self.stderr.splitlines() if line.startswith("  | "))


def new_run_id() -> str:
    return "ft" + uuid.uuid4().hex[:10]


def cli_env(run_id: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MLREPRO_RUN_ID": run_id, "COLUMNS": "400", **extra}
    env.pop("MLREPRO_DEBUG", None)
    return env


def mlrepro(*args: str, timeout: float = 300, **env: str) -> Outcome:
    run_id = new_run_id()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=cli_env(run_id, **env),
                          capture_output=True, text=True, timeout=timeout)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, run_id)


class Running:
    """A CLI run in the background whose stderr is read line by line as it comes."""

    def __init__(self, *args: str, **env: str) -> None:
        self.run_id = new_run_id()
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=cli_env(self.run_id, **env),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stdout: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=lambda: self._stdout.append(self.proc.stdout.read()), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, *needles: str, timeout: float = 120) -> None:
        """Block until every needle has appeared on stderr (in any line)."""
        deadline = time.monotonic() + timeout
        while not all(any(n in line for line in self.lines) for n in needles):
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"never saw {needles} on stderr; got:\n" + "\n".join(self.lines))
            self.lines.append(line)

    def finish(self, timeout: float = 60) -> Outcome:
        self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return Outcome(self.proc.returncode, "".join(self._stdout), "\n".join(self.lines), self.run_id)


def left_behind(engine: Engine, run_id: str) -> list[str]:
    """Everything run `run_id` still has: labeled engine resources, temp dirs, host processes."""
    return engine.leftovers(run_id) + [str(p) for p in run_tempdirs(run_id)] + [f"pid {p}" for p in run_processes(run_id)]


def assert_clean_failure(outcome: Outcome, engine: Engine, *needles: str) -> str:
    """Exit 2, exactly one `error:` line holding every needle, no traceback, nothing left behind."""
    assert outcome.code == 2, outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    line = outcome.error_lines[0]
    print(f"exit {outcome.code}: {line}")  # shown with -rP: what docs/faults.md quotes
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    # The step's own traceback may be evidence ("  | " lines); the harness itself never prints one.
    assert not [line for line in outcome.stderr.splitlines() if "Traceback" in line and not line.startswith("  | ")]
    assert left_behind(engine, outcome.run_id) == []
    return line


# --------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def base_image(engine) -> str:
    name, _ = resolve_base(engine, load_config(ROOT).build)
    return name


@pytest.fixture
def make_project(tmp_path, engine, base_image):
    """make_project(mode, ...) -> the directory of a one-step project whose job behaves as `mode`."""
    arch = engine.architecture()

    def make(mode: str = "ok", *, timeout: float = 120, mem_limit: str | None = None, dockerfile_extra: str = "",
             dockerfile: str | None = None, name: str = "proj") -> Path:
        root = tmp_path / name
        root.mkdir()
        (root / "job.py").write_text(JOB)
        (root / "Dockerfile").write_text(dockerfile if dockerfile is not None else DOCKERFILE.format(extra=dockerfile_extra))
        (root / ".dockerignore").write_text("*\n!Dockerfile\n!job.py\n")
        (root / "data.csv").write_text("x\n1\n")
        # A lock of one pin and a wheelhouse stamped fresh for it: prepare() then needs no index.
        # The image installs nothing (the job needs only the standard library).
        wheel = b"not installed by this image"
        lock = f"tiny==1.0 \\\n    --hash=sha256:{hashlib.sha256(wheel).hexdigest()}\n"
        (root / "requirements.txt").write_text(lock)
        (root / "wheels").mkdir()
        (root / "wheels" / "tiny-1.0-py3-none-any.whl").write_bytes(wheel)
        write_stamp(root / "wheels", parse_lock(lock), Target("3.11", arch, "2.36"))
        run = f'\n[tool.mlrepro.run]\nmem_limit = "{mem_limit}"\n' if mem_limit else ""
        (root / "pyproject.toml").write_text(f'''\
[tool.mlrepro]
project = "faults"
inputs = ["data.csv"]

[tool.mlrepro.build]
image_name = "mlrepro-test/faults"
base_image = "{base_image}"
timeout = 300

[tool.mlrepro.wheelhouse]
dir = "wheels"

[[tool.mlrepro.steps]]
name = "train"
command = ["python3", "job.py", "{mode}", "{{out}}"]
timeout = {timeout}

[[tool.mlrepro.artifacts]]
path = "result.txt"
{run}''')
        return root

    return make


# --------------------------------------------------------------------- the engine


def test_no_engine_at_start_says_how_to_start_one(tmp_path, engine, make_project):
    project = make_project()
    report = tmp_path / "report.json"
    for docker_host in (f"unix://{tmp_path}/no-engine.sock", "tcp://127.0.0.1:9"):
        for args in (("verify", "--config", str(project), "--json", str(report)), ("build", "--config", str(project)), ("clean",)):
            outcome = mlrepro(*args, DOCKER_HOST=docker_host)
            assert_clean_failure(outcome, engine, "no Docker engine answers at", docker_host, "scripts/ensure-docker.sh")
            assert outcome.stdout == ""
    assert not report.exists()


class SecondEngine:
    """A dockerd of our own (own socket, data root, exec root, network namespace): this one may be killed.

    Its own network namespace matters: a dockerd started with `--bridge none` deletes
    the host's docker0 interface (breaking the shared engine's builds), and one with a
    bridge would share the host's docker0. In a namespace of its own it touches neither.
    Its containers get a cgroup parent of their own too, and `stop` ends whatever
    still runs from its state directory (shims and their containers outlive a
    killed engine).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = f"unix://{root}/docker.sock"
        self.cgroup_parent = root.name
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30, attempts: int = 3) -> None:
        # Right after a SIGKILL, the next containerd may time out starting: try again a moment later.
        for attempt in range(1, attempts + 1):
            try:
                return self._start(timeout)
            except RuntimeError:
                if attempt == attempts:
                    raise
                self.stop()
                time.sleep(2)

    def _start(self, timeout: float) -> None:
        log = open(self.root / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--", "dockerd", "--host", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"), "--iptables=false", "--ip-masq=false",
             "--cgroup-parent", self.cgroup_parent],
            stdout=log, stderr=log, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.proc.returncode}): {self.log_tail()}")
            if subprocess.run(["docker", "-H", self.host, "version"], capture_output=True).returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"dockerd did not answer within {timeout} s: {self.log_tail()}")

    def labeled(self, run_id: str) -> dict[str, int]:
        """How many containers and volumes of run `run_id` this engine holds."""
        def count(*args: str) -> int:
            listing = subprocess.run(["docker", "-H", self.host, *args, "-q", "--filter", f"label=io.mlrepro.run={run_id}"],
                                     capture_output=True, text=True, check=True)
            return len(listing.stdout.split())

        return {"container": count("ps", "-a"), "volume": count("volume", "ls")}

    def log_tail(self) -> str:
        return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-5:])

    def kill(self) -> None:
        """SIGKILL to dockerd and its containerd, as when a machine stops its processes abruptly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._end_containerd(signal.SIGKILL)
        time.sleep(1.5)  # a containerd started sooner times out (its shims are still letting go)

    def _end_containerd(self, signum: int) -> None:
        """End the containerd this dockerd started (found by its pid file, checked by its command line)."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.root / "exec" / "containerd" / "containerd.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            if "containerd" in cmdline and str(self.root) in cmdline:
                os.kill(pid, signum)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text():
                        break
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._end_containerd(signal.SIGTERM)  # if it outlived its dockerd
        self._end_strays()

    def _end_strays(self) -> None:
        """SIGKILL what still runs from our state directory (containerd shims) and their children (containers)."""
        ours = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if str(self.root) in (proc / "cmdline").read_text(errors="replace") and int(proc.name) != os.getpid():
                    ours.append(int(proc.name))
        children = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) in ours:
                    children.append(int(proc.name))
        for pid in children + ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5 if children or ours else 0)
        for cgroup in sorted(Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}/*"), reverse=True) + sorted(Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}")):
            if cgroup.is_dir():
                with contextlib.suppress(OSError):
                    cgroup.rmdir()


@pytest.fixture
def second_engine(engine, base_image):
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("unshare") is None:
        missing_prerequisite("a second dockerd needs root, dockerd and unshare; the engine-stopped fault cannot be injected here")
    root = Path(f"/tmp/mlrepro-fault-{uuid.uuid4().hex[:8]}")
    root.mkdir()
    second = SecondEngine(root)
    host_bridge = Path("/sys/class/net/docker0").exists()
    try:
        try:
            second.start()
        except RuntimeError as exc:
            missing_prerequisite(f"a second dockerd cannot start here ({exc}); the engine-stopped fault cannot be injected")
        save = subprocess.Popen(["docker", "save", base_image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", second.host, "load"], stdin=save.stdout, capture_output=True, text=True)
        save.stdout.close()
        assert save.wait() == 0 and load.returncode == 0, load.stderr
        yield second
    finally:
        second.stop()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line.split()[1]]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    # The shared engine's bridge must have survived our engine (see SecondEngine).
    assert Path("/sys/class/net/docker0").exists() or not host_bridge


def test_engine_stopped_during_a_run(second_engine, make_project):
    project = make_project("sleep")
    run = Running("verify", "--config", str(project), DOCKER_HOST=second_engine.host)
    run.wait_for("image: train", "host: train", timeout=240)
    time.sleep(1)
    second_engine.kill()
    outcome = run.finish()
    assert outcome.code == 2, outcome.stderr
    (line,) = outcome.error_lines
    print(f"exit {outcome.code}: {line}")
    assert "the engine failed while running step 'train' in the image (" in line and "run 'mlrepro clean'" in line, line
    # The host side is stopped and its directory removed although the engine is gone.
    assert run_tempdirs(outcome.run_id) == [] and run_processes(outcome.run_id) == []
    # What the dead engine held cannot be removed before it is back; then `mlrepro clean` removes it.
    second_engine.start()
    assert second_engine.labeled(outcome.run_id) == {"container": 1, "volume": 1}
    cleaned = mlrepro("clean", DOCKER_HOST=second_engine.host)
    assert cleaned.code == 0, cleaned.stderr
    assert "removed 1 container(s), 1 volume(s)" in cleaned.stdout
    assert second_engine.labeled(outcome.run_id) == {"container": 0, "volume": 0}


# --------------------------------------------------------------------- the container


def test_container_exiting_non_zero_reports_its_logs(engine, make_project):
    outcome = mlrepro("verify", "--config", str(make_project("fail-in-image")))
    assert_clean_failure(outcome, engine, "step 'train' failed in the image (exit 3)", "training diverged: loss is nan")
    assert "epoch 1: loss=0.693" in outcome.evidence


def test_container_over_its_memory_limit_is_reported_as_out_of_memory(engine, make_project):
    outcome = mlrepro("verify", "--config", str(make_project("oom-in-image", mem_limit="64m")))
    assert_clean_failure(outcome, engine, "step 'train' failed in the image (killed: out of memory", "64 MiB", "run.mem_limit")
    assert "job oom-in-image started in the image" in outcome.evidence


def test_container_killed_during_training(engine, make_project):
    run = Running("verify", "--config", str(make_project("sleep")))
    run.wait_for("image: train", "host: train")
    time.sleep(1)
    (box,) = engine.client.containers.list(filters={"label": f"io.mlrepro.run={run.run_id}"})
    box.kill()
    outcome = run.finish()
    assert_clean_failure(outcome, engine, "step 'train' failed in the image (killed: the container stopped while the step ran")
    assert "job sleep started in the image" in outcome.evidence


@pytest.mark.parametrize("where", ["image", "host"])
def test_step_exceeding_its_timeout(engine, make_project, where):
    started = time.monotonic()
    outcome = mlrepro("verify", "--config", str(make_project("sleep" if where == "image" else "sleep-on-host", timeout=3)))
    expected = f"step 'train' {'in the image' if where == 'image' else 'on the host'} exceeded its timeout of 3 s"
    assert_clean_failure(outcome, engine, expected, "raise steps[].timeout")
    assert time.monotonic() - started < 60


# --------------------------------------------------------------------- interrupts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_a_run(engine, make_project, signum):
    run = Running("verify", "--config", str(make_project("sleep")))
    run.wait_for("image: train", "host: train")
    time.sleep(1)
    assert engine.leftovers(run.run_id) and run_processes(run.run_id)  # the run is really in flight
    run.proc.send_signal(signum)
    outcome = run.finish(timeout=60)
    assert_clean_failure(outcome, engine, "interrupted", "removed")


def test_sigint_during_a_build(engine, make_project):
    marker = uuid.uuid4().hex
    project = make_project(dockerfile_extra=f"RUN sleep 120 # {marker}\n")
    run = Running("build", "--config", str(project))
    run.wait_for(f"RUN sleep 120 # {marker}")

    def build_containers() -> list:
        # One list call (its Command field): containers.list() inspects each one, and the build's own container
        # may be removed between the list and the inspect (a NotFound that is no failure of the harness).
        return [c["Id"] for c in engine.client.api.containers(all=True) if marker in (c.get("Command") or "")]

    deadline = time.monotonic() + 30
    while not build_containers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert build_containers(), "the build never started its RUN step"
    run.proc.send_signal(signal.SIGINT)
    outcome = run.finish(timeout=60)
    assert_clean_failure(outcome, engine, "interrupted")
    # The engine cancels the build when the client goes, and forcerm removes its container.
    deadline = time.monotonic() + 30
    while build_containers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert build_containers() == []
    assert not any(marker in str(image.history()) for image in engine.client.images.list(name="mlrepro-test/faults"))


# --------------------------------------------------------------------- builds


def test_build_with_a_dockerfile_syntax_error(engine, make_project):
    project = make_project(dockerfile="FROMM mlrepro/python:3.11-bookworm\nCOPY job.py /job/\n")
    outcome = mlrepro("build", "--config", str(project))
    assert_clean_failure(outcome, engine, "image build failed: the engine refused it", "unknown instruction: FROMM", "fix Dockerfile")
    assert "dockerfile parse error line 1" in outcome.evidence


def test_build_with_a_missing_file_carries_the_build_log_tail(engine, make_project):
    project = make_project(dockerfile_extra="COPY weights.bin /job/weights.bin\n")
    outcome = mlrepro("build", "--config", str(project))
    assert_clean_failure(outcome, engine, "image build failed: COPY failed", "weights.bin")
    assert "Step 1/" in outcome.evidence and "COPY weights.bin" in outcome.evidence
    assert outcome.stdout == ""


# --------------------------------------------------------------------- output directories


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A small tmpfs mounted at `path` (root only), unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        missing_prerequisite(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): unwritable/full directories cannot be simulated as root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("state", ["read-only", "full"])
def test_json_report_into_an_unwritable_or_full_directory(engine, make_project, tmp_path, state):
    project = make_project("ok")
    options = "ro,size=64k" if state == "read-only" else "size=64k"
    with tmpfs(tmp_path / "reports", options) as reports:
        if state == "full":
            with contextlib.suppress(OSError), open(reports / "filler", "wb") as fh:
                fh.write(b"\0" * 128 * 1024)
        before = sorted(os.listdir(reports))
        outcome = mlrepro("verify", "--config", str(project), "--json", str(reports / "report.json"))
        # A read-only directory is refused before the run; a full one only when the report is written.
        expected = f"{reports} is not writable; choose a writable path" if state == "read-only" else "No space left on device; free space or choose another path"
        assert_clean_failure(outcome, engine, f"cannot write {reports / 'report.json'}", expected)
        assert sorted(os.listdir(reports)) == before  # no report, no temp file
        assert bool(outcome.stdout.strip()) == (state == "full")  # the report is still shown when only writing it failed


def test_host_run_into_a_full_temporary_directory(engine, make_project, tmp_path):
    project = make_project("big-output")
    with tmpfs(tmp_path / "tmp", "size=128k") as tmp:
        outcome = mlrepro("verify", "--config", str(project), TMPDIR=str(tmp))
        assert_clean_failure(outcome, engine, "step 'train' failed on the host (exit 1)", "No space left on device")
        assert "OSError: [Errno 28]" in outcome.evidence
        assert os.listdir(tmp) == []


# --------------------------------------------------------------------- crashes and `mlrepro clean`


def test_clean_removes_what_a_killed_run_left_and_spares_live_runs(engine, make_project):
    project = make_project("sleep")
    crashed = Running("verify", "--config", str(project))
    crashed.wait_for("image: train", "host: train")
    time.sleep(1)
    crashed.proc.kill()  # SIGKILL: no finally runs
    crashed.finish()
    left = left_behind(engine, crashed.run_id)
    assert len(engine.leftovers(crashed.run_id)) == 2 and run_tempdirs(crashed.run_id) and run_processes(crashed.run_id), left
    # A killed rebuild check leaves its builds: images tagged <image_name>-rebuild:<run>-N with the run's owner labels.
    # (Made here by committing the crashed run's container with those labels; a real killed rebuild takes minutes.)
    (box,) = engine.client.containers.list(all=True, filters={"label": f"io.mlrepro.run={crashed.run_id}"})
    rebuild_tag = f"mlrepro-test/killed-rebuild:{crashed.run_id}-1"
    rebuilt = box.commit(repository=rebuild_tag.split(":")[0], tag=rebuild_tag.split(":")[1],
                         conf={"Labels": {**box.labels, "io.mlrepro.role": "rebuild-check"}})
    assert rebuilt.id in engine.leftovers(crashed.run_id)
    live = Running("verify", "--config", str(make_project("sleep", name="live")))
    try:
        live.wait_for("image: train", "host: train")
        cleaned = mlrepro("clean")
        assert cleaned.code == 0, cleaned.stderr
        assert left_behind(engine, crashed.run_id) == [] and engine.image_id(rebuild_tag) is None
        assert engine.leftovers(live.run_id) and run_tempdirs(live.run_id)  # a run in progress is not touched
        # At least the crashed run's container, volume, image, directory and host step (other runs' stale leftovers may add to it).
        assert re.search(r"removed [1-9]\d* container\(s\), [1-9]\d* volume\(s\), \d+ network\(s\), [1-9]\d* image\(s\), "
                         r"[1-9]\d* temporary director(y|ies) "
                         r"and [1-9]\d* host process\(es\)", cleaned.stdout), cleaned.stdout
    finally:
        live.proc.send_signal(signal.SIGINT)
        assert live.finish().code == 2
    assert left_behind(engine, live.run_id) == []


def test_a_wheelhouse_fetch_killed_mid_download_is_cleaned_up(tmp_path, engine):
    """Issue 13, item 8: SIGKILL to `mlrepro wheelhouse` while pip downloads leaves the staging directory beside
    the wheelhouse (its pip dies with it, or is an orphan `mlrepro clean` stops); `mlrepro clean --config` removes it."""

    from tests.lock_projects import make_project

    project = make_project(tmp_path / "p", (ROOT / "requirements.in").read_text())
    shutil.copy(ROOT / "requirements.txt", project / "requirements.txt")
    run = Running("wheelhouse", "--config", str(project))
    run.wait_for("fetching 11 locked wheels")
    deadline = time.monotonic() + 30
    while not (staging := list(project.glob(".wheelhouse-staging-*"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.proc.kill()
    run.finish(timeout=30)
    assert staging, "the fetch never made its staging directory"
    cleaned = mlrepro("clean", "--config", str(project))
    assert cleaned.code == 0, cleaned.stderr
    assert not list(project.glob(".wheelhouse-staging-*")) and not (project / "wheelhouse").exists()
    assert run_processes(run.run_id) == []
    removed = re.search(r"(\d+) temporary director(?:y|ies) and (\d+) host process", cleaned.stdout)
    assert removed and int(removed[1]) >= 1  # the staging directory (clean also removes what other dead runs left)
