"""The data: scikit-learn's bundled breast cancer set (no download) and the one deterministic split.

`python -m ml_project.dataset --out FILE` exports the held-out test split's
features (no labels) as .csv or .jsonl, e.g. examples/holdout.csv.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from ml_project import cli, tables
from ml_project.config import RANDOM_STATE, TEST_SIZE


@dataclass(frozen=True)
class Dataset:
    """All rows in the bundled order; feature names are snake_case identifiers."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    """A stratified train/test split of a Dataset."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def sanitize(name: str) -> str:
    """'mean concave points' -> 'mean_concave_points' (lowercase, [a-z0-9_], not starting with a digit)."""
    ident = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    if not ident or ident[0].isdigit():
        ident = f"f_{ident}"
    return ident


@lru_cache(maxsize=1)
def load() -> Dataset:
    """Load the bundled data (identical bytes on every machine)."""
    bunch = load_breast_cancer()
    names = tuple(sanitize(str(n)) for n in bunch.feature_names)
    if len(set(names)) != len(names):
        raise RuntimeError("feature names are not unique after sanitising")
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    X.flags.writeable = False
    y.flags.writeable = False
    return Dataset(X, y, names, tuple(str(t) for t in bunch.target_names))


def feature_names() -> list[str]:
    """The model's input columns, in training order."""
    return list(load().feature_names)


def split(data: Dataset, seed: int = RANDOM_STATE) -> Split:
    """Deterministic stratified split: TEST_SIZE of the rows (114 of 569) held out."""
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=TEST_SIZE, random_state=seed, stratify=data.y
    )
    return Split(X_train, X_test, y_train, y_test)


def export_holdout(out: Path, seed: int = RANDOM_STATE) -> int:
    """Write the test split's features to `out` (.csv or .jsonl); returns the row count."""
    data = load()
    X_test = split(data, seed).X_test
    tables.write_features(out, data.feature_names, X_test)
    return int(X_test.shape[0])


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m ml_project.dataset",
        description="Export the held-out test split's features (no labels) as CSV or JSON lines.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output file, .csv or .jsonl")
    parser.add_argument("--seed", type=int, default=RANDOM_STATE, help=f"split seed (default {RANDOM_STATE})")
    return parser


def _run(args: argparse.Namespace) -> None:
    export_holdout(args.out, args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    return cli.run(_parser(), argv, _run)


if __name__ == "__main__":
    raise SystemExit(main())
