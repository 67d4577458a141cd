"""A tiny project and the command line run on it with no engine: the bad-input tests' shared ground.

`tiny_project` writes a valid project whose step must never run; `mlrepro`
runs the CLI in a subprocess pointed at a socket that does not exist (so an
input refused "before the run" provably is); `assert_refused` checks the
one-line error contract; `snapshot` proves nothing was written.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_ENGINE = "unix:///nonexistent/mlrepro-bad-inputs.sock"
HASH = hashlib.sha256(b"tiny").hexdigest()
LOCK = f"tiny==1.0 \\\n    --hash=sha256:{HASH}\n"

PYPROJECT = """\
[tool.mlrepro]
project = "{name}"
inputs = ["data.csv"]

[tool.mlrepro.build]
image_name = "mlrepro-test/{name}"

[[tool.mlrepro.steps]]
name = "train"
command = ["python", "job.py", "{{out}}"]
timeout = 60

[[tool.mlrepro.artifacts]]
path = "result.txt"
"""


def tiny_project(root: Path, name: str) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(name=name))
    (root / "requirements.txt").write_text(LOCK)
    (root / "data.csv").write_text("x\n1\n")
    (root / "job.py").write_text("print('never run')\n")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def mlrepro(args: list[str], *, cwd: Path, code: str | None = None, run_prefix: str = "bad",
            **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m <args>` (or `python -c code args`) with no engine, a fresh run id and wide columns."""
    full_env = {**os.environ, "DOCKER_HOST": NO_ENGINE, "MLREPRO_RUN_ID": run_prefix + uuid.uuid4().hex[:8], "COLUMNS": "400", **env}
    full_env.pop("MLREPRO_DEBUG", None)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, stderr exactly one `error: ` line holding every needle, nothing on stdout, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    print(f"exit {proc.returncode}: {lines[0]}")  # shown with -rP: what docs/faults.md quotes
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]
