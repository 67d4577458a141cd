"""What the adoption tests share: fixture projects copied, `mlrepro` run as a user runs it, the user's edit.

`mlrepro(...)` runs the real CLI in a subprocess (`python -m harness.cli` is
the `mlrepro` console script); `fill_in` is the edit a user makes after
`mlrepro init`: the steps and artifacts of the fixture's `mlrepro-steps.toml`
(its `inputs = [...]` line replaces the skeleton's commented example, its
tables are appended).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
#: The commands of README's quick start for a new project, in order (the tests run exactly these).
QUICK_START = ("mlrepro init", "mlrepro lock", "mlrepro verify")


def copy_fixture(name: str, dest: Path) -> Path:
    """A private copy of a fixture project, its numpy pin set to the host's (so only real drift is drift)."""
    project = dest / name
    shutil.copytree(FIXTURES / name, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "wheelhouse"))
    numpy = importlib.metadata.version("numpy")
    for candidate in ("requirements.in", "pyproject.toml"):
        path = project / candidate
        if path.is_file():
            path.write_text(path.read_text().replace("numpy==2.4.6", f"numpy=={numpy}"))
    return project


def mlrepro(*args: str, cwd: Path, python: str = sys.executable, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLREPRO_DEBUG"}
    return subprocess.run([python, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def fill_in(project: Path) -> None:
    """The user's edit after `mlrepro init`: steps, artifacts and inputs from the fixture's mlrepro-steps.toml."""
    snippet = (project / "mlrepro-steps.toml").read_text().splitlines()
    inputs = [line for line in snippet if line.startswith("inputs = ")]
    tables = "\n".join(line for line in snippet if not line.startswith("inputs = "))
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    commented = next(line for line in text.splitlines() if line.startswith("# inputs = "))
    text = text.replace(commented, inputs[0] if inputs else commented, 1)
    pyproject.write_text(text.rstrip("\n") + "\n\n" + tables.strip("\n") + "\n")


def outcome(result: subprocess.CompletedProcess) -> str:
    """What a failed assertion shows: the exit code and both streams' tails."""
    return f"exit {result.returncode}\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
