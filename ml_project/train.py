"""`python -m ml_project.train --out DIR [--seed N]`: fit the model and write its artefacts.

Writes, each atomically: DIR/model.skops (skops, never pickle), DIR/metrics.json
(test-split accuracy, log loss, ROC AUC) and DIR/manifest.json (canonical hash
and what downstream tools need). Nothing written varies between runs except the
skops file's internal object ids, which is why the manifest has a canonical hash.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from ml_project import atomic, cli, dataset, persistence
from ml_project.config import MANIFEST_FILE, METRICS_FILE, MODEL_FILE, RANDOM_STATE, TEST_SIZE
from ml_project.errors import ProjectError
from ml_project.features import feature_ranges
from ml_project.model import DESCRIPTION, HASH_METHOD, build_model, canonical_hash
from ml_project.threads import limited_threads


def to_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, repr floats, no NaN, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"


def _metrics(y_true: np.ndarray, proba: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    return {
        "accuracy": float(accuracy_score(y_true, labels)),
        "log_loss": float(log_loss(y_true, proba, labels=classes)),
        "roc_auc": float(roc_auc_score(y_true, proba[:, 1])),
        "n_test": int(y_true.shape[0]),
    }


def _make_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(
            f"cannot create output directory '{out_dir}': {exc.strerror or exc}; "
            "expected a writable directory path: choose another --out"
        ) from None
    atomic.check_writable_dir(out_dir, "output")


def train(out_dir: Path, seed: int = RANDOM_STATE) -> dict[str, Any]:
    """Fit, evaluate, hash and save; returns the manifest."""
    out_dir = Path(out_dir)
    data = dataset.load()
    parts = dataset.split(data, seed)
    model = build_model(seed)
    with limited_threads():
        model.fit(parts.X_train, parts.y_train)
        proba = model.predict_proba(parts.X_test)
        labels = model.predict(parts.X_test)
    classes = model.classes_
    metrics = _metrics(parts.y_test, proba, labels, classes)
    metrics["n_train"] = int(parts.y_train.shape[0])
    digest = canonical_hash(model, data.X)
    blob = persistence.dumps(model)
    if canonical_hash(persistence.loads(blob, MODEL_FILE).model, data.X) != digest:
        raise RuntimeError("the skops round trip changed the model's numbers")
    manifest = {
        "canonical_hash": digest,
        "hash_method": HASH_METHOD,
        "model_file": MODEL_FILE,
        "classes": [c.item() for c in classes],
        "class_names": [data.target_names[int(c)] for c in classes],
        "random_state": seed,
        "test_size": TEST_SIZE,
        "estimator": DESCRIPTION,
        "features": feature_ranges(parts.X_train, data.feature_names),
    }
    _make_dir(out_dir)
    atomic.write_bytes(out_dir / MODEL_FILE, blob)
    atomic.write_text(out_dir / METRICS_FILE, to_json(metrics))
    atomic.write_text(out_dir / MANIFEST_FILE, to_json(manifest))  # last: its presence marks a complete run
    return manifest


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), found {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m ml_project.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument(
        "--seed", type=_seed, default=RANDOM_STATE, help=f"split/estimator seed (default {RANDOM_STATE})"
    )
    return parser


def _run(args: argparse.Namespace) -> None:
    train(args.out, args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    return cli.run(_parser(), argv, _run)


if __name__ == "__main__":
    raise SystemExit(main())
