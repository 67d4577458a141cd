"""Hypothesis strategies for prediction inputs, derived from a model's feature schema.

The schema is the list the training run records (`[tool.mlrepro.worker]
schema`, e.g. manifest.json's "features"): ``[{"name", "min", "max"}, ...]``.
Batches mix what a model sees in production (values within the training
ranges) with what breaks numerical code: the range ends exactly, 0.0 and
-0.0, subnormals (5e-324), tiny and huge magnitudes (1e-300, 1e300), any
finite double, duplicated rows, single rows and large batches.

Non-finite values are not part of `batches`: NaN and inf are rejected by the
worker (as by the project's predict CLI), which `invalid_batches` exercises
separately. Pure: no Docker, no project imports.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping, Sequence

from hypothesis import strategies as st

from harness.parity.schema import check_schema

__all__ = ["SPECIAL_VALUES", "NON_FINITE", "values", "rows", "batches", "invalid_batches", "check_schema"]

Row = dict[str, float]

#: Values that stress numerical code, whatever the feature's range.
SPECIAL_VALUES: tuple[float, ...] = (
    0.0, -0.0,
    5e-324, -5e-324,                    # the smallest subnormal
    sys.float_info.min, -sys.float_info.min,  # the smallest normal (2.2e-308)
    1e-300, -1e-300,
    1.0, -1.0,
    1e300, -1e300,
    sys.float_info.max, -sys.float_info.max,
)
NON_FINITE: tuple[float, ...] = (math.nan, math.inf, -math.inf)
MAX_BATCH = 500


def values(feature: Mapping[str, Any]) -> st.SearchStrategy[float]:
    """One feature's value: mostly within the training range, else its exact ends, special values or any finite double."""
    lo, hi = float(feature["min"]), float(feature["max"])
    return st.one_of(
        st.floats(lo, hi, allow_nan=False, allow_infinity=False),
        st.floats(lo, hi, allow_nan=False, allow_infinity=False),  # twice: in-range values are the common case
        st.sampled_from((lo, hi)),
        st.sampled_from(SPECIAL_VALUES),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def in_range_values(feature: Mapping[str, Any]) -> st.SearchStrategy[float]:
    return st.floats(float(feature["min"]), float(feature["max"]), allow_nan=False, allow_infinity=False)


def rows(schema: Sequence[Mapping[str, Any]], *, in_range: bool = False) -> st.SearchStrategy[Row]:
    """One row: a value for every feature (`in_range=True`: training ranges only)."""
    schema = check_schema(schema)
    make = in_range_values if in_range else values
    return st.fixed_dictionaries({f["name"]: make(f) for f in schema})


@st.composite
def _with_duplicates(draw: st.DrawFn, row: st.SearchStrategy[Row], max_distinct: int) -> list[Row]:
    distinct = draw(st.lists(row, min_size=1, max_size=max_distinct))
    picks = draw(st.lists(st.integers(0, len(distinct) - 1), min_size=2, max_size=2 * max_distinct))
    return [dict(distinct[i]) for i in picks]


@st.composite
def _large(draw: st.DrawFn, schema: list[dict[str, Any]], row: st.SearchStrategy[Row], max_size: int) -> list[Row]:
    # Drawing 500 x 30 values through hypothesis would be slow and shrink poorly: a few drawn rows
    # (the interesting ones) plus in-range filler from a hypothesis-controlled Random, so the batch
    # is still reproducible and shrinks (fewer rows, simpler drawn rows).
    drawn = draw(st.lists(row, min_size=1, max_size=5))
    size = draw(st.integers(len(drawn), max_size))
    rnd = draw(st.randoms(use_true_random=False))
    filler = [{f["name"]: rnd.uniform(f["min"], f["max"]) for f in schema} for _ in range(size - len(drawn))]
    batch = drawn + filler
    rnd.shuffle(batch)
    return batch


def batches(schema: Sequence[Mapping[str, Any]], *, max_size: int = MAX_BATCH) -> st.SearchStrategy[list[Row]]:
    """A batch of rows for one request: a single row, a few, duplicated rows, or a large batch (up to `max_size`)."""
    schema = check_schema(schema)
    row = rows(schema)
    return st.one_of(
        st.lists(row, min_size=1, max_size=1),
        st.lists(row, min_size=1, max_size=10),
        _with_duplicates(row, 4),
        _large(schema, row, max_size),
    )


@st.composite
def _poisoned(draw: st.DrawFn, schema: list[dict[str, Any]], row: st.SearchStrategy[Row], max_size: int) -> list[Row]:
    batch = [dict(r) for r in draw(st.lists(row, min_size=1, max_size=max_size))]
    cells = draw(st.lists(st.tuples(st.integers(0, len(batch) - 1), st.sampled_from([f["name"] for f in schema])),
                          min_size=1, max_size=3))
    for i, name in cells:
        batch[i][name] = draw(st.sampled_from(NON_FINITE))
    return batch


def invalid_batches(schema: Sequence[Mapping[str, Any]], *, max_size: int = 10) -> st.SearchStrategy[list[Row]]:
    """Batches with at least one NaN, inf or -inf cell (every request must be rejected)."""
    schema = check_schema(schema)
    return _poisoned(schema, rows(schema, in_range=True), max_size)
