"""An interpreter that can import an optional library the harness never depends on (pyarrow, matplotlib).

The harness computes in the project's environment, so it adds no such library
there; the tests of the code paths that use one run in an interpreter that has
it: this one if it can, else MLREPRO_OPTIONAL_PYTHON (`make test` makes a venv
holding pyarrow, matplotlib and rich). Missing: a skip locally, a failure
under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys

from harness.plugin import missing_prerequisite


def optional_python(module: str) -> str:
    """An interpreter in which `import module` works."""
    for python in filter(None, [sys.executable, os.environ.get("MLREPRO_OPTIONAL_PYTHON", "")]):
        if subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0:
            return python
    missing_prerequisite(f"no interpreter with {module}: set MLREPRO_OPTIONAL_PYTHON to one "
                         f"(e.g. a venv with 'pip install {module.split('.')[0]} rich'; make test makes it)")
