"""CSV cells as numbers, and counting the finite numbers of many identical lines at C speed.

A CSV cell is a number when `csv_number` says so (ASCII integers stay exact
ints; floats as Python reads them, without float()'s extras). Lines that are
byte-identical on both sides need no comparison, but their finite numbers
still count as compared pairs (`numeric_pairs` in the evidence); parsing
them one by one would cost more than everything else. `count_finite` counts
them over a whole block with bytes operations only (translate, count, split,
substring search) and answers None whenever it cannot be sure, so the caller
falls back to `csv_number` cell by cell: fast on the common shape, exact on all.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

__all__ = ["MAX_LABELS_MASKED", "count_finite", "count_finite_slowly", "count_finite_with_labels", "csv_number"]

# ASCII only: int() also accepts other scripts' digits, which no CSV writer emits.
_INT_TEXT = re.compile(r" *[+-]?[0-9]+ *")
_FLOAT_TEXT = re.compile(r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *| *[+-]?(nan|inf|infinity) *", re.IGNORECASE)


def csv_number(text: str) -> int | float | None:
    """The number a CSV cell holds, or None when it is text."""
    # Integers stay exact ints so that huge ids are not rounded into equality;
    # the regexes keep float()'s extras (underscores, '1e5j'...) out.
    try:
        if _INT_TEXT.fullmatch(text):
            return int(text)
        if _FLOAT_TEXT.fullmatch(text):
            return float(text)
    except ValueError:
        pass  # beyond int()'s digit limit: compared as text
    return None


def _finite(value: int | float | None) -> bool:
    return value is not None and (isinstance(value, int) or value - value == 0.0)


def count_finite_slowly(cells: Iterable[bytes]) -> int:
    """The reference count: cells (UTF-8 bytes) that `csv_number` reads as a finite number."""
    return sum(1 for cell in cells if _finite(csv_number(cell.decode("utf-8"))))


_DIGITS = b"0123456789"
_NUMBER_BYTES = _DIGITS + b".,\n+-eE"
# What a cell is once its digits are deleted: sign, point, exponent mark and sign, in that order.
_SKELETON = re.compile(rb"[+-]?\.?(?:[eE][+-]?)?")
# Where a digit run the grammar needs is empty, with B a cell border, s a sign
# and e an exponent mark: BB (an empty cell), Be, se, sB, eB, ee (no mantissa or
# no exponent digits) all read ",," or "s," once borders and exponent marks are
# both mapped to ","; a point with no digit on either side (B.B, B.e, s.B, s.e)
# reads ",.," once signs are mapped to "," as well; a sign after a digit or a
# point reads "ds" once both are mapped to "d". No valid cell holds any of them.
_SIGNS_APART = bytes.maketrans(b"\neE+-.0123456789", b",,,ssddddddddddd")
_SIGNS_TOO = bytes.maketrans(b"\neE+-", b",,,,,")
# A float overflows to inf only with 309 integer digits, or 210 and a positive
# exponent of two digits: lines shorter than that cannot hold one.
_MAX_LINE, _MAX_LINE_WITH_EXPONENT = 308, 209
_BIG_EXPONENT = re.compile(rb"[eE][+-]?[0-9]{3}")
_known_skeletons: dict[bytes, int | None] = {}


def _skeleton_cells(skeleton: bytes) -> int | None:
    """Cells of a line whose digit-free form is `skeleton`, None if any cell cannot be a number."""
    if skeleton not in _known_skeletons:
        cells = skeleton.split(b",")
        ok = all(_SKELETON.fullmatch(cell) for cell in cells)
        if len(_known_skeletons) < 4096:
            _known_skeletons[skeleton] = len(cells) if ok else None
        return len(cells) if ok else None
    return _known_skeletons[skeleton]


def count_finite(lines: list[bytes]) -> int | None:
    """How many cells of `lines` (non-blank CSV lines without quotes or line endings) are finite numbers.

    None when the block holds anything but plain numbers (text, spaces,
    nan/inf, long lines, three-digit exponents): then count them with
    `count_finite_slowly`. Every cell is checked against the number grammar
    by its digit-free form (cached per line shape) plus a search for digit
    runs the grammar needs but the line lacks.
    """
    if not lines:
        return 0
    block = b"\n" + b"\n".join(lines) + b"\n"
    if block.translate(None, _NUMBER_BYTES):
        return None
    apart = block.translate(_SIGNS_APART)
    if b",," in apart or b"s," in apart or b"ds" in apart or b",.," in block.translate(_SIGNS_TOO):
        return None
    positive_exponent = block.count(b"e") != block.count(b"e-") or block.count(b"E") != block.count(b"E-")
    if max(map(len, lines)) > (_MAX_LINE_WITH_EXPONENT if positive_exponent else _MAX_LINE):
        return None
    if positive_exponent and _BIG_EXPONENT.search(block):
        return None
    total = 0
    for skeleton, times in Counter(block.translate(None, _DIGITS)[1:-1].split(b"\n")).items():
        cells = _skeleton_cells(skeleton)
        if cells is None:
            return None
        total += cells * times
    return total


#: A byte no finite number holds: the cell it is in is text (a label), never counted.
_TEXT_BYTE = re.compile(rb"[^0-9.+\-eE ,\n]")
#: More distinct text cells than this in one block: count cell by cell instead.
MAX_LABELS_MASKED = 16


def count_finite_with_labels(lines: list[bytes]) -> int | None:
    """`count_finite` for blocks that also hold a few distinct text cells (a label column).

    Each whole text cell is replaced by "0" (a finite number), the block is
    counted at C speed, and the replacements are taken off again. None when
    there are more than `MAX_LABELS_MASKED` distinct text cells or the fast
    count cannot decide: then count with `count_finite_slowly`.
    """
    counted = count_finite(lines)
    if counted is not None or not lines:
        return counted
    block, masked = b"\n" + b"\n".join(lines) + b"\n", 0
    for labels in range(MAX_LABELS_MASKED + 1):
        found = _TEXT_BYTE.search(block)
        if found is None:
            break
        if labels == MAX_LABELS_MASKED:
            return None  # more distinct text cells than the budget
        at = found.start()
        cell_start = max(block.rfind(b",", 0, at), block.rfind(b"\n", 0, at)) + 1
        cell_end = min(i for i in (block.find(b",", at), block.find(b"\n", at)) if i >= 0)
        text = block[cell_start:cell_end]
        for before in (b",", b"\n"):
            for after in (b",", b"\n"):
                old, new = before + text + after, before + b"0" + after
                while count := block.count(old):  # ",t,t," holds two, replaced one at a time
                    masked, block = masked + count, block.replace(old, new)
    if not masked:
        return None
    plain = count_finite(block[1:-1].split(b"\n"))
    return None if plain is None else plain - masked

