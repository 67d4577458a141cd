"""The estimator: the pipeline definition, its one-line description, and its canonical hash.

StandardScaler + LogisticRegression(lbfgs) was chosen because its probabilities
really change between library versions (scipy's L-BFGS-B rewrite), which the
drift demo needs; a RandomForest here is bit-identical across versions.

The skops file itself is not byte-stable (it embeds object ids), so runs are
compared by canonical_hash(), which depends only on the fitted numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from ml_project.features import PREPROCESSOR_DESCRIPTION, build_preprocessor
from ml_project.threads import limited_threads

C = 1.0
MAX_ITER = 1000

DESCRIPTION = f"{PREPROCESSOR_DESCRIPTION} -> LogisticRegression(solver='lbfgs', C={C}, max_iter={MAX_ITER})"

# Fitted arrays included in the hash, as "<pipeline step>.<attribute>".
FITTED_ARRAYS = (
    "scaler.mean_",
    "scaler.scale_",
    "classifier.coef_",
    "classifier.intercept_",
    "classifier.classes_",
)

HASH_METHOD = (
    "sha256 over a sequence of arrays: predict_proba(probe) where probe = all 569 rows of "
    "sklearn's bundled breast cancer data in load order (train+test features), then "
    + ", ".join(FITTED_ARRAYS)
    + "; each array contributes its UTF-8 name, NUL, its shape as comma-separated ints, NUL, "
    "then its values cast to little-endian float64 in C order"
)


def build_model(seed: int) -> Pipeline:
    """Unfitted pipeline; `seed` is passed as random_state (lbfgs itself draws no random numbers)."""
    return Pipeline(
        [
            ("scaler", build_preprocessor()),
            ("classifier", LogisticRegression(solver="lbfgs", C=C, max_iter=MAX_ITER, random_state=seed)),
        ]
    )


def _hash_arrays(items: list[tuple[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for name, array in items:
        values = np.ascontiguousarray(np.asarray(array), dtype="<f8")
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(",".join(str(n) for n in values.shape).encode("ascii") + b"\0")
        digest.update(values.tobytes(order="C"))
    return f"sha256:{digest.hexdigest()}"


def canonical_hash(model: Pipeline, probe: np.ndarray) -> str:
    """ "sha256:<hex>" of the fitted model's numbers (see HASH_METHOD)."""
    with limited_threads():
        proba = model.predict_proba(probe)
    items = [("predict_proba(probe)", proba)]
    for path in FITTED_ARRAYS:
        step, attr = path.split(".")
        items.append((path, getattr(model.named_steps[step], attr)))
    return _hash_arrays(items)


__all__ = ["DESCRIPTION", "FITTED_ARRAYS", "HASH_METHOD", "build_model", "canonical_hash"]
