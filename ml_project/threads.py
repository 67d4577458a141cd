"""Pins BLAS/OpenMP thread pools during fit/predict, so float results do not depend on core count."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

from ml_project.config import DEFAULT_THREADS, THREADS_ENV_VAR
from ml_project.errors import ProjectError


def thread_count() -> int:
    """Threads to use: $ML_PROJECT_THREADS if set, else config.DEFAULT_THREADS."""
    raw = os.environ.get(THREADS_ENV_VAR)
    if raw is None or raw.strip() == "":
        return DEFAULT_THREADS
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ProjectError(
            f"{THREADS_ENV_VAR} must be a positive integer, found {raw!r}; "
            f"unset it (default {DEFAULT_THREADS}) or set e.g. {THREADS_ENV_VAR}=1"
        )
    return value


@contextmanager
def limited_threads() -> Iterator[int]:
    """Limit every loaded BLAS/OpenMP pool to thread_count() threads inside the block."""
    count = thread_count()
    with threadpool_limits(limits=count):
        yield count
