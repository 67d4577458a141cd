"""Runs: the configured steps, the same way in a container of the image and on the host.

Each side gets a fresh output directory, the configured inputs, and the
environment probe run by the very interpreter the steps use. Commands whose
first word is `python`/`python3` run with the side's interpreter: the image's
(on its PATH) or the host's (the current one, or a venv synced from the lock).
The container has no network and runs as the image's (non-root) user.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from harness.sides import probe as probe_module
from harness.config import Config, Step
from harness.docker.engine import RUN_ID, Engine, pid_alive
from harness.errors import MlreproError, StepError, tail

PROBE_SOURCE = Path(probe_module.__file__).read_bytes()


@dataclass(frozen=True)
class RunResult:
    where: str  # "image" or "host"
    probe: Mapping
    files: Mapping[str, bytes]  # every file the steps wrote, relative to {out}
    logs: Mapping[str, str] = field(default_factory=dict)  # step name -> combined output


def expand(command: tuple[str, ...], *, out: str, inputs: str, python: str) -> list[str]:
    words = [part.format(out=out, inputs=inputs) for part in command]
    if words and words[0] in ("python", "python3"):
        words[0] = python
    return words


def forwarded_env(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What both sides compute under: host variables matching `run.pass_env`, then `run.env`."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if any(fnmatch.fnmatchcase(k, pat) for pat in config.run.pass_env)}
    env.update(config.run.env)
    return env


def _probe_args(config: Config) -> list[str]:
    return [arg for name in config.probe_env for arg in ("--env", name)]


def _parse_probe(where: str, output: str) -> Mapping:
    import json

    try:
        return json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise StepError(f"the environment probe failed in the {where}: {tail(output, 1) or 'no output'}; is Python >= 3.8 on its PATH?",
                        where=where, step="probe", exit_code_seen=None, evidence=tail(output)) from None


def _step_failed(where: str, step: Step, code: int, output: str, killed: str = "") -> StepError:
    last = tail(output, 1) or "no output"
    why = (killed or "killed (out of memory or SIGKILL)") if code in (137, -9) else f"exit {code}"
    place = "on the host" if where == "host" else f"in the {where}"
    return StepError(f"step '{step.name}' failed {place} ({why}): {last[:240]}", where=where, step=step.name,
                     exit_code_seen=code, evidence=tail(output, 40))


def run_step_in_container(box, step: Step, *, out: str, inputs: str) -> str:  # noqa: ANN001 - engine.Container
    """Run one configured step in a container; its output, or StepError saying why it failed."""
    started = time.time()
    result = box.exec(expand(step.command, out=out, inputs=inputs, python="python"), timeout=step.timeout)
    if result.timed_out:
        raise StepError(f"step {step.name} in the container exceeded its timeout of {step.timeout:g} s and was killed; raise steps[].timeout or make the step faster",
                        where="image", step=step.name, exit_code_seen=None)
    if result.exit_code != 0:
        killed = box.kill_reason(started - 1) if result.exit_code == 137 else ""
        raise _step_failed("image", step, result.exit_code, result.output, killed)
    return result.output


def run_step_on_host(step: Step, *, python: str, out: Path, inputs: Path, cwd: Path, env: Mapping[str, str]) -> str:
    """Run one configured step on the host; its output, or StepError saying why it failed."""
    cmd = expand(step.command, out=str(out), inputs=str(inputs), python=python)
    code, output = HOST_PROCESSES.run(cmd, cwd=cwd, env=env, timeout=step.timeout)
    if code is None:
        raise StepError(f"step '{step.name}' on the host exceeded its timeout of {step.timeout:g} s and was killed; raise steps[].timeout or make the step faster",
                        where="host", step=step.name, exit_code_seen=None, evidence=tail(output, 40))
    if code != 0:
        raise _step_failed("host", step, code, output)
    return output


def run_in_image(engine: Engine, config: Config, image: str, *, progress: Callable[[str], None] = print) -> RunResult:
    wd = config.run.workdir_in_image
    out, inputs = f"{wd}/out", f"{wd}/in"
    # Read-only root filesystem: the steps can write only under the workdir (a volume).
    with engine.container(image, role="verify", env=forwarded_env(config), mem_limit=config.run.mem_limit, writable=wd) as box:
        files = {"probe.py": PROBE_SOURCE, **{f"in/{p.name}": p.read_bytes() for p in config.inputs}}
        box.put_files(wd, files, dirs=("out",))
        # The probe only reads the environment: it runs alongside the steps, off the critical path.
        probing = _alongside(box.exec, ["python", f"{wd}/probe.py", *_probe_args(config)], timeout=120)
        logs: dict[str, str] = {}
        for step in config.steps:
            progress(f"image: {step.name}")
            logs[step.name] = run_step_in_container(box, step, out=out, inputs=inputs)
        result = probing.result()
        if result.exit_code != 0:
            raise _step_failed("image", Step("probe", (), 120), result.exit_code, result.output)
        return RunResult("image", _parse_probe("image", result.output), box.get_dir(out), logs)


def _alongside(fn: Callable, *args, **kwargs) -> Future:
    """Start `fn` in a thread of its own; the caller collects it with `.result()`."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever calls .result()
            future.set_exception(exc)

    threading.Thread(target=work, daemon=True, name="mlrepro-probe").start()
    return future


#: Set in the environment of every host step: its run id and owning process, so
#: `mlrepro clean` can find (in /proc) a step whose run was killed and stop it.
OWNER_ENV = "MLREPRO_OWNER"


def owner_value() -> str:
    return f"{RUN_ID}:{os.getpid()}"


class HostProcesses:
    """The host subprocesses in flight, so an interrupt can stop them all."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run(self, cmd: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> tuple[int | None, str]:
        env = {**env, OWNER_ENV: owner_value()}
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        try:
            output, _ = proc.communicate(timeout=timeout)
            return proc.returncode, output
        except subprocess.TimeoutExpired:
            self._kill(proc)
            output, _ = proc.communicate()
            return None, output
        finally:
            with self._lock:
                self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            self._kill(proc)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


HOST_PROCESSES = HostProcesses()


TEMP_PREFIX = "mlrepro-"


def run_tempdir(kind: str) -> Path:
    """A new temporary directory named after this run and process (`mlrepro-<run id>-<pid>-<kind>-...`).

    The name is its label: `mlrepro clean` recognises one that a killed run
    left behind (its process no longer exists) and removes it.
    """
    try:
        return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{RUN_ID}-{os.getpid()}-{kind}-"))
    except OSError as exc:
        raise MlreproError(f"cannot create a temporary directory in {tempfile.gettempdir()}: {exc.strerror or exc}; "
                           "free space there or point TMPDIR at a writable directory") from None


@contextlib.contextmanager
def scratch_dir(kind: str):
    """`run_tempdir` as a context manager: removed on exit, whatever happens."""
    path = run_tempdir(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_tempdirs(run_id: str | None = None, *, include_live: bool = True) -> list[Path]:
    """Temporary directories made by `run_tempdir` (any run, or `run_id`'s), by default also of live processes."""
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{run_id or '*'}-*-*-*"):
        parts = path.name[len(TEMP_PREFIX):].split("-")  # run id, pid, kind, random
        pid = int(parts[1]) if parts[1].isdigit() else None
        if path.is_dir() and pid is not None and (include_live or not pid_alive(pid)):
            found.append(path)
    return sorted(found)


def run_processes(run_id: str | None = None, *, include_live: bool = True) -> list[int]:
    """Host step processes (any run, or `run_id`'s) found by their OWNER_ENV; Linux (/proc) only."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        marker = next((v[len(OWNER_ENV) + 1:].decode(errors="replace") for v in environ if v.startswith(OWNER_ENV.encode() + b"=")), None)
        if marker is None or ":" not in marker:
            continue
        owner_run, _, owner_pid = marker.rpartition(":")
        if run_id not in (None, owner_run) or not owner_pid.isdigit():
            continue
        if include_live or not pid_alive(int(owner_pid)):
            found.append(int(proc.name))
    return sorted(found)


def stop_stale_processes(*, include_live: bool = False) -> int:
    """Kill the host steps whose run no longer exists (each is its own process group)."""
    pids = [pid for pid in run_processes(include_live=include_live) if pid != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_stale_tempdirs(*, include_live: bool = False) -> int:
    """Remove the temporary directories of runs whose process no longer exists (or all, with `include_live`)."""
    stale = run_tempdirs(include_live=include_live)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def run_on_host(config: Config, python: str, *, progress: Callable[[str], None] = print) -> RunResult:
    tmp = run_tempdir("host")
    try:
        out, inputs = tmp / "out", tmp / "in"
        try:
            out.mkdir()
            inputs.mkdir()
            for p in config.inputs:
                shutil.copyfile(p, inputs / p.name)
            (tmp / "probe.py").write_bytes(PROBE_SOURCE)
        except OSError as exc:
            raise MlreproError(f"cannot prepare the host run in {tmp.parent}: {exc.strerror or exc}; "
                               "free space there or point TMPDIR at a writable directory") from None
        env = {**os.environ, **forwarded_env(config)}
        probing = _alongside(HOST_PROCESSES.run, [python, str(tmp / "probe.py"), *_probe_args(config)], cwd=config.host.workdir, env=env, timeout=120)
        logs: dict[str, str] = {}
        for step in config.steps:
            progress(f"host: {step.name}")
            logs[step.name] = run_step_on_host(step, python=python, out=out, inputs=inputs, cwd=config.host.workdir, env=env)
        code, output = probing.result()
        if code != 0:
            raise _step_failed("host", Step("probe", (), 120), code if code is not None else -9, output)
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        return RunResult("host", _parse_probe("host", output), files, logs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def host_python(config: Config, *, progress: Callable[[str], None] = print) -> str:
    """The host interpreter: this one, or a venv synced from the lock with pip-sync (offline, from the wheelhouse)."""
    if config.host.mode == "current":
        return sys.executable
    venv = config.host.venv
    python = venv / "bin" / "python"
    if not python.exists():
        progress(f"creating host venv {venv}")
        base = getattr(sys, "_base_executable", sys.executable)
        proc = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise MlreproError(f"could not create the host venv {venv}: {tail(proc.stderr, 1)}", evidence=proc.stderr)
    progress(f"syncing host venv {venv.name} to {config.lock.name} with pip-sync")
    sync = [sys.executable, "-m", "piptools", "sync", "--python-executable", str(python),
            "--pip-args", f"--no-index --find-links {config.wheelhouse.dir} --require-hashes", str(config.lock)]
    proc = subprocess.run(sync, capture_output=True, text=True, cwd=config.root)
    if proc.returncode != 0:
        raise MlreproError(f"pip-sync of the host venv failed: {tail(proc.stderr or proc.stdout, 1)}; run 'mlrepro wheelhouse' and retry",
                           evidence=tail(proc.stderr + proc.stdout))
    return str(python)


__all__ = ["RunResult", "run_in_image", "run_on_host", "host_python", "forwarded_env", "expand", "HOST_PROCESSES",
           "run_tempdir", "scratch_dir"]
