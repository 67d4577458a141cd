"""The dependency-mismatch demo: the verified image next to a host venv with other pins.

`run_demo` makes (or reuses) a venv from a deliberately different lock (by
default `examples/drift/requirements.txt`), runs the configured steps in the
image and in that venv at the same time, and compares the two runs with
`harness.verify.compare_runs`: the very report `mlrepro verify` gives, with the
drifted venv as its host side. Then it loads the model the image trained in the
drifted venv, by running the project's own predict step there against the
image's output files, and records what really happens: exit code, warnings,
the error line, and (when it runs) how its outputs compare with the image's.
Nothing is simulated; every line shown was produced by a run.

The venv is reused while the lock is unchanged: a stamp inside it names the
sha256 of the lock and the interpreter it was made from, written only after
pip succeeded (`harness.sides.venv`, the one venv manager).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.compare import ArtifactResult, compare_artifact
from harness.config import Config
from harness.docker import Engine
from harness.errors import MlreproError
from harness.lock import read_lock
from harness.report import Report, render
from harness.sides import HostSide, RunResult, expand
from harness.sides.venv import ensure_venv

DEFAULT_DRIFT_LOCK = Path("examples/drift/requirements.txt")
DEFAULT_DRIFT_VENV = Path(".mlrepro/drift-venv")
DEFAULT_PREDICT_STEP = "predict"
ABSENT = "absent"
SCHEMA = 1



# ---------------------------------------------------------------- pure parts


def scrub(text: str, replacements: Mapping[str, str]) -> str:
    """Replace run-specific paths (temp dirs) by stable placeholders, longest first."""
    for old in sorted(replacements, key=len, reverse=True):
        if old:
            text = text.replace(old, replacements[old])
    return text


@dataclass(frozen=True)
class LoadCheck:
    """The image's trained model used by another environment's predict step."""

    step: str
    command: tuple[str, ...]  # as configured: `python`, `{out}`, `{inputs}` placeholders
    exit_code: int | None  # None: killed at the step's timeout
    lines: tuple[str, ...]  # the step's output, temp paths replaced by {out} / {inputs}
    artifacts: tuple[ArtifactResult, ...]  # outputs the step (re)wrote, compared with the image's

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(line for line in self.lines if "warning" in line.lower())

    @property
    def error(self) -> str | None:
        """The line that says why the step failed: its last `error:` line, else its last line."""
        if self.exit_code == 0:
            return None
        errors = [line for line in self.lines if line.startswith("error:")]
        if errors:
            return errors[-1]
        return self.lines[-1] if self.lines else None

    @property
    def outcome(self) -> str:
        """'timed out', 'failed', 'outputs differ', 'outputs identical' or 'ran' (nothing to compare)."""
        if self.exit_code is None:
            return "timed out"
        if self.exit_code != 0:
            return "failed"
        if any(a.status in ("differs", "missing") for a in self.artifacts):
            return "outputs differ"
        return "outputs identical" if self.artifacts else "ran"

    def summary(self) -> str:
        if self.exit_code is None:
            return f"step '{self.step}' was killed at its timeout"
        if self.exit_code != 0:
            return f"step '{self.step}' failed (exit {self.exit_code}): {self.error or 'no output'}"
        shown = "; ".join(a.summary for a in self.artifacts) or "it wrote none of the compared artifacts"
        extra = f" with {len(self.warnings)} warning line(s)" if self.warnings else ""
        return f"step '{self.step}' ran (exit 0){extra}: {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "command": list(self.command),
            "exit_code": self.exit_code,
            "outcome": self.outcome,
            "lines": list(self.lines),
            "warnings": list(self.warnings),
            "error": self.error,
            "artifacts": [
                {"path": a.path, "mode": a.mode, "status": a.status, "summary": a.summary, "details": a.details}
                for a in self.artifacts
            ],
        }


@dataclass(frozen=True)
class DemoResult:
    drift_lock: str  # relative to the project root when inside it
    drift_lock_sha256: str
    report: Report  # host side = the drifted venv
    load: LoadCheck
    logs: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False)  # side -> step -> output (page only)

    def version_changes(self) -> list[tuple[str, str, str]]:
        """(package, image version, drifted version) for every package the two sides disagree on."""
        changes = []
        for d in self.report.differences:
            if d.category == "package" and d.subject != "host extras":
                changes.append((d.subject, d.details.get("image") or ABSENT, d.details.get("host") or ABSENT))
        return changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "drift_lock": self.drift_lock,
            "drift_lock_sha256": self.drift_lock_sha256,
            "version_changes": [{"package": n, "image": i, "drifted": h} for n, i, h in self.version_changes()],
            "report": self.report.to_dict(),
            "load_check": self.load.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------- runs


def check_model_load(config: Config, image_run: RunResult, python: str, *, step_name: str = DEFAULT_PREDICT_STEP) -> LoadCheck:
    """Run step `step_name` with `python` against the image run's output files, and measure the result."""
    step = next((s for s in config.steps if s.name == step_name), None)
    if step is None:
        names = ", ".join(s.name for s in config.steps)
        raise MlreproError(f"no step named '{step_name}' in [tool.mlrepro] steps (found: {names}); name the step that loads the model")
    with HostSide(config, python, kind="demo") as side:
        side.seed(image_run.files)
        out = side.out_dir
        before = _snapshot(out)
        done = side.execute(expand(step.command, side.workspace, side.python), timeout=step.timeout)
        after = _snapshot(out)
        written = {rel for rel, stat in after.items() if before.get(rel) != stat}
        artifacts = tuple(
            compare_artifact(rule, image_run.files.get(rule.path), (out / rule.path).read_bytes())
            for rule in config.artifacts if done.exit_code == 0 and rule.path in written
        )
        ws = side.workspace
        placeholders = {ws.out: "{out}", ws.inputs: "{inputs}", ws.root: "{tmp}"}
        lines = tuple(scrub(line, placeholders) for line in done.output.splitlines() if line.strip())
        return LoadCheck(step.name, step.command, done.exit_code, lines, artifacts)


def _snapshot(directory: Path) -> dict[str, tuple[int, int, int]]:
    # Inode, mtime and size: an atomic rewrite changes the inode even when the bytes are the same.
    return {
        str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
        for p in directory.rglob("*") if p.is_file()
    }


def run_demo(config: Config, *, drift_lock: Path | None = None, venv: Path | None = None, engine: Engine | None = None,
             step_name: str = DEFAULT_PREDICT_STEP, progress: Callable[[str], None] = print) -> DemoResult:
    """The whole demo: venv and image prepared, both sides run, compared, and the cross-load measured."""
    from harness.verify import compare_runs, prepare, run_both

    drift_lock = (config.root / (drift_lock or DEFAULT_DRIFT_LOCK)).resolve()
    venv = (config.root / (venv or DEFAULT_DRIFT_VENV)).resolve()
    if not drift_lock.is_file():
        raise MlreproError(f"the drifted lock {drift_lock} does not exist; pass --drift-lock PATH (a pip-compile'd requirements file with hashes)")
    drifted = read_lock(drift_lock)  # a malformed lock fails before anything is built
    engine = engine or Engine.connect()
    progress("preparing the verified image")
    lock, image = prepare(config, engine, progress=progress)
    progress(f"preparing the drifted venv from {drift_lock.name}")
    python = ensure_venv(drift_lock, venv, progress=progress)
    progress("running the steps in the image and in the drifted venv")
    image_run, drifted_run = run_both(config, engine, image, progress=progress, python=python,
                                      host_progress=lambda m: progress(m.replace("host:", "drifted venv:", 1)))
    report = compare_runs(config, lock, image, image_run, drifted_run)
    progress(f"loading the image's trained model in the drifted venv (step '{step_name}')")
    load = check_model_load(config, image_run, python, step_name=step_name)
    shown = str(drift_lock.relative_to(config.root)) if drift_lock.is_relative_to(config.root) else str(drift_lock)
    return DemoResult(shown, drifted.sha256, report, load,
                      logs={"image": dict(image_run.logs), "drifted venv": dict(drifted_run.logs)})


# ---------------------------------------------------------------- rendering


def render_demo(result: DemoResult, console: Console) -> None:
    """The side-by-side report, the cross-load, then a short summary."""
    console.print(Text("Side by side: the verified image vs the drifted venv", style="bold"))
    console.print(Text(f"(the report's 'host' is a venv installed from {result.drift_lock})", style="dim"), soft_wrap=True)
    render(result.report, console)
    console.print()
    _render_load(result.load, console)
    console.print()
    _render_summary(result, console)


def _render_load(load: LoadCheck, console: Console) -> None:
    console.print(Text("The image's trained model, used in the drifted venv", style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("command", Text(" ".join(load.command)))
    grid.add_row("exit code", Text("killed at timeout" if load.exit_code is None else str(load.exit_code)))
    grid.add_row("outcome", Text(load.outcome, style="bold red" if load.outcome != "outputs identical" else "green"))
    console.print(grid)
    for line in load.lines[-12:]:
        console.print(Text("  | " + line, style="dim"), soft_wrap=True)
    for a in load.artifacts:
        console.print(Text(f"  {a.status}: {a.summary}", style="bold red" if a.status in ("differs", "missing") else "green"), soft_wrap=True)


def _render_summary(result: DemoResult, console: Console) -> None:
    console.print(Text("Summary", style="bold"))
    changes = result.version_changes()
    if changes:
        listed = ", ".join(f"{name} {image} -> {drifted}" for name, image, drifted in changes)
        console.print(Text(f"  versions (image -> drifted venv): {listed}"), soft_wrap=True)
    else:
        console.print(Text("  versions: the drifted venv holds the image's versions"), soft_wrap=True)
    for a in result.report.artifacts:
        console.print(Text(f"  same steps, {a.path}: {a.status}" + ("" if a.status == "identical" else f" ({a.summary})")), soft_wrap=True)
    console.print(Text(f"  image-trained model in the drifted venv: {result.load.summary()}"), soft_wrap=True)


__all__ = ["DEFAULT_DRIFT_LOCK", "DEFAULT_DRIFT_VENV", "DemoResult", "LoadCheck", "check_model_load", "render_demo", "run_demo", "scrub"]
