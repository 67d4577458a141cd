"""Bounded evidence of how a numeric table moved, for people to look at.

The verdict needs only "differs or not" and the maximum differences; a person
deciding whether drift matters wants the shape of it: how many values moved
by how much (a histogram of |image - host| in decades), in which direction,
a sample of the moved pairs (for an image-vs-host scatter), the rows that
moved most, and whether a decision flipped (a label column's value, or a
probability crossing 0.5). `TableEvidence` collects that while the cells are
compared, in memory that does not grow with the table: fixed bins, a capped
reservoir sample (seeded, so the same tables give the same sample), a
fixed-size heap of worst rows, capped label transitions.

It only observes: the judgement stays with `numbers_close` in `tables`.
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any, Mapping

__all__ = [
    "DECADE_MAX",
    "DECADE_MIN",
    "LABEL_COLUMNS",
    "MAX_TRANSITIONS",
    "SAMPLE_SIZE",
    "THRESHOLD",
    "WORST_ROWS",
    "TableEvidence",
    "is_label_column",
    "is_probability_column",
]

# |diff| decades 1e-20 .. 1e+10: float64 differences below 1e-20 of values near 1 do not exist,
# and anything beyond 1e10 is one bin ("and above"); 31 bins whatever the table.
DECADE_MIN, DECADE_MAX = -20, 10
SAMPLE_SIZE = 400      # differing pairs kept for the scatter
WORST_ROWS = 10        # rows with the largest |diff|, both values shown
MAX_TRANSITIONS = 20   # distinct 'image -> host' label changes kept per label column
THRESHOLD = 0.5        # a probability crossing it is a decision that flipped (above it is the positive class)
# Column names read as a label or class (case-insensitive), besides '*_label' and '*_class'.
LABEL_COLUMNS = frozenset({"label", "class", "prediction", "predicted", "pred", "y_pred", "target"})


def is_label_column(name: str) -> bool:
    """Whether a column holds a decision (a label or class), judged by its name."""
    lowered = name.lower()
    return lowered in LABEL_COLUMNS or lowered.endswith(("_label", "_class"))


def is_probability_column(name: str) -> bool:
    """Whether a column holds a probability ('proba_1', 'probability', 'prob[0]'), judged by its name."""
    return name.lower().startswith("prob")


def _decade(diff: float) -> int:
    if math.isinf(diff):
        return DECADE_MAX
    return max(DECADE_MIN, min(DECADE_MAX, math.floor(math.log10(diff))))


def _as_float(value: int | float) -> float | None:
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class TableEvidence:
    """Collects the evidence of one table comparison: `cell` for each cell, `end_row` for each row, then `details`."""

    def __init__(self, columns: Mapping[Any, str]) -> None:
        self._names = dict(columns)
        self._labels = {cid for cid, name in self._names.items() if is_label_column(name)}
        self._probabilities = {cid for cid, name in self._names.items() if is_probability_column(name)}
        self._bins = [0] * (DECADE_MAX - DECADE_MIN + 1)
        self._higher = self._lower = 0
        self._seen = 0                      # differing finite pairs offered to the sample
        self._sample: list[tuple[int, str, float, float]] = []
        self._random = random.Random(0)     # seeded: the same tables give the same sample
        self._row_max = 0.0
        self._worst: list[tuple[float, int, int]] = []   # (diff, -row, row): a min-heap of the largest
        self._worst_cells: dict[int, Mapping[str, Any]] = {}
        self._label_changes: dict[str, dict[str, int]] = {}
        self._label_rows: dict[str, int] = {}
        self._crossings: dict[str, int] = {}

    def add_column(self, cid: Any, name: str) -> None:
        """A column first seen while rows stream in (JSON lines): as if it had been given to __init__."""
        self._names[cid] = name
        if is_label_column(name):
            self._labels.add(cid)
        if is_probability_column(name):
            self._probabilities.add(cid)

    def cell(self, row: int, cid: Any, a: int | float | None, b: int | float | None) -> None:
        """One compared cell's two numbers (None for a side whose cell is not a number)."""
        if cid in self._labels:
            return  # a decision, counted by end_row; its 0/1 'difference' is no measure of drift
        if a is None or b is None or a == b:
            return
        fa, fb = _as_float(a), _as_float(b)
        if fa is None or fb is None:
            return
        diff = abs(fa - fb)
        if diff == 0.0:
            return  # different ints that one float cannot tell apart
        self._bins[_decade(diff) - DECADE_MIN] += 1
        if fb > fa:
            self._higher += 1
        else:
            self._lower += 1
        self._row_max = max(self._row_max, diff)
        name = self._names.get(cid, str(cid))
        # Above the threshold is the positive class, as a binary classifier's predict decides (0.5 itself is not).
        if cid in self._probabilities and (fa > THRESHOLD) != (fb > THRESHOLD):
            self._crossings[name] = self._crossings.get(name, 0) + 1
        self._offer((row, name, fa, fb))

    def _offer(self, pair: tuple[int, str, float, float]) -> None:
        # Reservoir sampling (algorithm R): every differing pair equally likely to be kept.
        self._seen += 1
        if len(self._sample) < SAMPLE_SIZE:
            self._sample.append(pair)
            return
        slot = self._random.randrange(self._seen)
        if slot < SAMPLE_SIZE:
            self._sample[slot] = pair

    def end_row(self, row: int, differing: Mapping[str, Any]) -> None:
        """The row is done; `differing` is its differing cells (name -> {'image': ..., 'host': ...})."""
        for name, cells in differing.items():
            if is_label_column(name):
                self._label_rows[name] = self._label_rows.get(name, 0) + 1
                changes = self._label_changes.setdefault(name, {})
                key = f"{cells.get('image')} -> {cells.get('host')}"
                if key in changes or len(changes) < MAX_TRANSITIONS:
                    changes[key] = changes.get(key, 0) + 1
        diff, self._row_max = self._row_max, 0.0
        if not differing or not diff:
            return
        entry = (diff, -row, row)
        if len(self._worst) < WORST_ROWS:
            heapq.heappush(self._worst, entry)
        elif entry > self._worst[0]:
            dropped = heapq.heapreplace(self._worst, entry)
            self._worst_cells.pop(dropped[2], None)
        else:
            return
        self._worst_cells[row] = dict(differing)

    def details(self) -> dict[str, Any]:
        """The evidence as JSON-safe data, under one key of an ArtifactResult's details."""
        worst = sorted(self._worst, reverse=True)
        return {"evidence": {
            "abs_diff_decades": {"min": DECADE_MIN, "max": DECADE_MAX, "counts": list(self._bins)},
            "direction": {"host_higher": self._higher, "host_lower": self._lower},
            "sample": {
                "of": self._seen,
                "pairs": [{"row": r, "column": c, "image": a, "host": b} for r, c, a, b in sorted(self._sample)],
            },
            "worst_rows": [{"row": row, "max_abs_diff": diff, "cells": self._worst_cells[row]} for diff, _, row in worst],
            "labels": {
                name: {"rows_changed": self._label_rows[name], "changes": dict(sorted(self._label_changes[name].items()))}
                for name in sorted(self._label_rows)
            },
            "threshold": {"value": THRESHOLD, "crossings": dict(sorted(self._crossings.items()))},
        }}
