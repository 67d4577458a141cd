"""Every constant the project's runs depend on, in one place, so a run is fully described by code."""

from __future__ import annotations

from pathlib import Path

# Paths (only used as defaults / for locating the committed examples; never written to outputs).
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
HOLDOUT_CSV = EXAMPLES_DIR / "holdout.csv"
HOLDOUT_JSONL = EXAMPLES_DIR / "holdout.jsonl"

# Randomness and the split.
RANDOM_STATE = 42
TEST_SIZE = 0.2

# Threads for BLAS/OpenMP during fit/predict: fixed so results do not depend on the machine.
DEFAULT_THREADS = 1
THREADS_ENV_VAR = "ML_PROJECT_THREADS"

# File names inside a model directory.
MODEL_FILE = "model.skops"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"

# Table formats understood by the CLIs, chosen by file extension.
TABLE_EXTENSIONS = (".csv", ".jsonl")

# The only types a model.skops file may contain (checked before loading; anything else is refused).
# Covers files written by both the locked versions and the older drift-demo pins.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.NoneType",
        "builtins.bool",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.list",
        "builtins.str",
        "builtins.tuple",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
    }
)
