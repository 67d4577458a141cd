"""Running configured steps on a side: the same words, the same rules, whatever the side.

`run_steps` is the one way a run happens: the environment probe alongside
(it only reads the environment, so it stays off the critical path), the steps
in order, then the outputs collected. `run_step` is the one way a step runs
and fails: a non-zero exit, a kill (with the side's reason when it has one)
or a timeout becomes a `StepError` carrying the step's output as evidence.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.config import Config, Step
from harness.errors import EngineError, StepError, tail
from harness.sides.side import Side, Workspace

#: The probe's source, copied to every side (it is stdlib only and runs under any Python >= 3.8).
PROBE_SOURCE = Path(__file__).with_name("probe.py").read_bytes()
PROBE_TIMEOUT = 120.0


@dataclass(frozen=True)
class RunResult:
    where: str  # the side's name: "image", "host", ...
    probe: Mapping
    files: Mapping[str, bytes]  # every file the steps wrote, relative to {out}
    logs: Mapping[str, str] = field(default_factory=dict)  # step name -> combined output
    #: {"key": sha256 of the probe's key, "cached": whether it came from the probe cache}; None: not cacheable.
    probe_cache: Mapping[str, Any] | None = None


def fill(word: str, workspace: Workspace, python: str) -> str:
    """One configured word with `{out}`, `{inputs}` and `{python}` as this side sees them."""
    return word.format(out=workspace.out, inputs=workspace.inputs, python=python)


def expand(command: Sequence[str], workspace: Workspace, python: str) -> list[str]:
    """A configured command as the side runs it: placeholders filled, a leading `python` made the side's."""
    words = [fill(part, workspace, python) for part in command]
    if words and words[0] in ("python", "python3"):
        words[0] = python
    return words


def expand_env(env: Mapping[str, str], workspace: Workspace, python: str) -> dict[str, str]:
    """An env table (`run.env`, a step's `env`) with its placeholders filled for this side."""
    return {name: fill(value, workspace, python) for name, value in env.items()}


def forwarded_env(config: Config, environ: Mapping[str, str] | None = None, *, workspace: Workspace | None = None,
                  python: str = "python") -> dict[str, str]:
    """What both sides compute under: host variables matching `run.pass_env`, then `run.env`.

    With a `workspace`, `run.env`'s placeholders are filled for that side (a
    project reading `DATA_DIR` gets the side's own inputs directory).
    """
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if any(fnmatch.fnmatchcase(k, pat) for pat in config.run.pass_env)}
    env.update(config.run.env if workspace is None else expand_env(config.run.env, workspace, python))
    return env


#: Host variables that are credentials: a host step never sees them unless `run.pass_env` names them.
CREDENTIAL_VARIABLES = (
    "MLREPRO_REGISTRY_*", "AWS_*", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE*", "AZURE_PASSWORD", "ARM_CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS", "DOCKER_AUTH_CONFIG", "DOCKER_PASSWORD", "REGISTRY_PASSWORD",
    "GITHUB_TOKEN", "GH_TOKEN", "CI_JOB_TOKEN", "NPM_TOKEN", "PYPI_TOKEN", "TWINE_PASSWORD", "HF_TOKEN",
    "*_TOKEN", "*_PASSWORD", "*_SECRET", "*_SECRET_*", "*_API_KEY", "*_ACCESS_KEY",
)


def host_environment(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host environment a host step starts from: everything but credentials (unless `run.pass_env` names them)."""
    environ = os.environ if environ is None else environ

    def passed(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pat) for pat in config.run.pass_env)

    return {k: v for k, v in environ.items()
            if passed(k) or not any(fnmatch.fnmatchcase(k, pat) for pat in CREDENTIAL_VARIABLES)}


def interpreter_path(python: str, path: str) -> str:
    """`PATH` with the directory of `python` first, so `sh -c "python ..."` and console scripts are the side's."""
    directory = os.path.dirname(python)
    if not directory:
        return path
    return os.pathsep.join([directory, *(p for p in path.split(os.pathsep) if p and p != directory)])


def step_failed(side: Side, step_name: str, code: int, output: str, started: float) -> StepError:
    """The StepError for a step (or the probe) that exited with `code`; a kill is explained when the side can."""
    last = tail(output, 1) or "no output"
    if code in (137, -9):
        why = side.kill_reason(started - 1) or "killed (out of memory or SIGKILL)"
    else:
        why = f"exit {code}"
    return StepError(f"step '{step_name}' failed {side.place} ({why}): {last[:240]}", where=side.where, step=step_name,
                     exit_code_seen=code, evidence=tail(output, 40))


def run_step(side: Side, step: Step, *, progress: Callable[[str], None] = lambda message: None) -> str:
    """Run one configured step on `side`; its output, or StepError saying why it failed."""
    started = time.time()
    env = expand_env(step.env, side.workspace, side.python) if step.env else None
    try:
        done = side.execute(expand(step.command, side.workspace, side.python), timeout=step.timeout, env=env)
    except EngineError as exc:  # the adapter speaks of commands; say which step it was
        raise EngineError(f"the engine failed while running step '{step.name}' {side.place} ({exc.cause or exc.message}); "
                          f"{EngineError.RECOVER}", cause=exc.cause) from None
    if done.leftovers:
        # A daemon a step leaves would run on after us from a deleted directory: it was killed; say so.
        note = (f"step '{step.name}' left {len(done.leftovers)} process(es) running {side.place}; "
                f"they were killed: {'; '.join(done.leftovers)}")
        progress(f"{side.where}: {note}")
        done = dataclasses.replace(done, output=f"{done.output}mlrepro: {note}\n")
    if done.timed_out:
        raise StepError(f"step '{step.name}' {side.place} exceeded its timeout of {step.timeout:g} s and was killed; "
                        "raise steps[].timeout or make the step faster",
                        where=side.where, step=step.name, exit_code_seen=None, evidence=tail(done.output, 40))
    if done.exit_code != 0:
        raise step_failed(side, step.name, done.exit_code, done.output, started)  # type: ignore[arg-type]
    return done.output


def probe_argv(config: Config, side: Side) -> list[str]:
    return [side.python, side.workspace.probe, *(arg for name in config.probe_env for arg in ("--env", name))]


def parse_probe(side: Side, output: str) -> Mapping:
    try:
        return json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise StepError(f"the environment probe failed {side.place}: {tail(output, 1) or 'no output'}; is Python >= 3.8 on its PATH?",
                        where=side.where, step="probe", exit_code_seen=None, evidence=tail(output)) from None


def run_probe(config: Config, side: Side) -> Mapping:
    started = time.time()
    done = side.execute(probe_argv(config, side), timeout=PROBE_TIMEOUT)
    if done.timed_out:
        raise StepError(f"the environment probe {side.place} did not finish within {PROBE_TIMEOUT:g} s; check the side's interpreter",
                        where=side.where, step="probe", exit_code_seen=None, evidence=tail(done.output))
    if done.exit_code != 0:
        raise step_failed(side, "probe", done.exit_code, done.output, started)  # type: ignore[arg-type]
    return parse_probe(side, done.output)


def run_steps(side: Side, config: Config, steps: Sequence[Step] | None = None, *,
              progress: Callable[[str], None] = print) -> RunResult:
    """The probe alongside the steps (all configured ones by default), then every output file."""
    cache, slot, key, cached = _cached_probe(config, side, progress)
    probing = alongside(run_probe, config, side) if cached is None else None
    logs: dict[str, str] = {}
    try:
        for step in config.steps if steps is None else steps:
            progress(f"{side.where}: {step.name}")
            logs[step.name] = run_step(side, step, progress=progress)
        probe = probing.result() if probing is not None else cached
    except BaseException:
        side.abort()  # the probe must not keep running once the run has failed
        raise
    record = None
    if key is not None:
        from harness.sides.probe_cache import key_sha256

        record = {"key": key_sha256(key), "cached": cached is not None}
        if cached is None:
            note = cache.store(slot, key, probe)
            if note:
                progress(f"{side.where}: {note}")
    return RunResult(side.where, probe, side.outputs(), logs, probe_cache=record)


def _cached_probe(config: Config, side: Side, progress: Callable[[str], None]):
    """(cache, slot, key, probe or None): the side's probe from the cache when its key is unchanged."""
    probe_key = getattr(side, "probe_key", None)
    if not config.run.probe_cache or probe_key is None:
        return None, None, None, None
    from harness.sides.probe_cache import ProbeCache

    found = probe_key()
    if found is None:
        return None, None, None, None
    slot, key = found
    cache = ProbeCache(config.root / ".mlrepro" / "probe-cache")
    probe, note = cache.load(slot, key)
    if note:
        progress(f"{side.where}: {note}")
    elif probe is not None:
        progress(f"{side.where}: environment probe from the cache (its key is unchanged)")
    return cache, slot, key, probe


def alongside(fn: Callable, *args, **kwargs) -> Future:
    """Start `fn` in a thread of its own; the caller collects it with `.result()`."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever calls .result()
            future.set_exception(exc)

    threading.Thread(target=work, daemon=True, name="mlrepro-alongside").start()
    return future


__all__ = ["PROBE_SOURCE", "RunResult", "alongside", "expand", "expand_env", "fill", "forwarded_env", "interpreter_path", "run_probe", "run_step", "run_steps", "step_failed"]
