"""Running configured steps on a side: the same words, the same rules, whatever the side.

`run_steps` is the one way a run happens: the environment probe alongside
(it only reads the environment, so it stays off the critical path), the steps
in order, then the outputs collected. `run_step` is the one way a step runs
and fails: a non-zero exit, a kill (with the side's reason when it has one)
or a timeout becomes a `StepError` carrying the step's output as evidence.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from harness.config import Config, Step
from harness.errors import StepError, tail
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


def expand(command: Sequence[str], workspace: Workspace, python: str) -> list[str]:
    """A configured command as the side runs it: placeholders filled, a leading `python` made the side's."""
    words = [part.format(out=workspace.out, inputs=workspace.inputs) for part in command]
    if words and words[0] in ("python", "python3"):
        words[0] = python
    return words


def forwarded_env(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What both sides compute under: host variables matching `run.pass_env`, then `run.env`."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if any(fnmatch.fnmatchcase(k, pat) for pat in config.run.pass_env)}
    env.update(config.run.env)
    return env


def step_failed(side: Side, step_name: str, code: int, output: str, started: float) -> StepError:
    """The StepError for a step (or the probe) that exited with `code`; a kill is explained when the side can."""
    last = tail(output, 1) or "no output"
    if code in (137, -9):
        why = side.kill_reason(started - 1) or "killed (out of memory or SIGKILL)"
    else:
        why = f"exit {code}"
    return StepError(f"step '{step_name}' failed {side.place} ({why}): {last[:240]}", where=side.where, step=step_name,
                     exit_code_seen=code, evidence=tail(output, 40))


def run_step(side: Side, step: Step) -> str:
    """Run one configured step on `side`; its output, or StepError saying why it failed."""
    started = time.time()
    done = side.execute(expand(step.command, side.workspace, side.python), timeout=step.timeout)
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
    probing = alongside(run_probe, config, side)
    logs: dict[str, str] = {}
    try:
        for step in config.steps if steps is None else steps:
            progress(f"{side.where}: {step.name}")
            logs[step.name] = run_step(side, step)
        probe = probing.result()
    except BaseException:
        side.abort()  # the probe must not keep running once the run has failed
        raise
    return RunResult(side.where, probe, side.outputs(), logs)


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


__all__ = ["PROBE_SOURCE", "RunResult", "alongside", "expand", "forwarded_env", "run_probe", "run_step", "run_steps", "step_failed"]
