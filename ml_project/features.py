"""Preprocessing, kept apart from the estimator: what happens to the raw measurements before the classifier.

Also records the per-feature ranges seen in training (manifest.json "features"),
from which other components derive property-based test inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.preprocessing import StandardScaler

PREPROCESSOR_DESCRIPTION = "StandardScaler"


def build_preprocessor() -> StandardScaler:
    """Zero mean / unit variance per feature (the features span ~5 orders of magnitude)."""
    return StandardScaler()


def feature_ranges(X: np.ndarray, names: Sequence[str]) -> list[dict[str, object]]:
    """[{"name", "min", "max"}] per column of the training matrix, as plain floats."""
    X = np.asarray(X, dtype=np.float64)
    return [
        {"name": name, "min": float(lo), "max": float(hi)}
        for name, lo, hi in zip(names, X.min(axis=0), X.max(axis=0), strict=True)
    ]
