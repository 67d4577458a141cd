"""The tolerance rule for two numbers, and the spread of differences it judged.

Kept apart from any file format so that artifacts, tables and the parity
workers (`harness.parity.worker`) all judge numbers by the same rule.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

__all__ = ["DifferenceStats", "close_enough", "is_finite", "is_number", "numbers_close"]


def is_number(value: Any) -> bool:
    """int or float, not bool: JSON true is not the number 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: int | float) -> bool:
    """True for every int and for floats that are neither infinite nor NaN."""
    # math.isfinite would convert huge ints to float and overflow.
    return isinstance(value, int) or math.isfinite(value)


def numbers_close(a: int | float, b: int | float, atol: float, rtol: float) -> bool:
    """NOT differing: a == b, both NaN, or |a-b| <= atol + rtol * max(|a|, |b|).

    Symmetric on purpose (unlike numpy.isclose), so swapping image and host
    never changes a verdict. Evaluated in exact rational arithmetic: float
    rounding or overflow (1e308 - -1e308) must not decide close calls, and
    huge integers must not be rounded into equality. An infinity only matches
    the same infinity: inf - x <= rtol * inf would otherwise hold for any x.

    With atol = rtol = 0 this is value equality, not bit equality: -0.0
    equals 0.0 (they compare ==), and any NaN equals any NaN whatever its sign
    or payload. Bit equality of a whole file is what mode 'bitwise' checks.
    """
    if a == b:
        return True
    a_nan = isinstance(a, float) and math.isnan(a)
    b_nan = isinstance(b, float) and math.isnan(b)
    if a_nan or b_nan:
        return a_nan and b_nan
    if not (is_finite(a) and is_finite(b)):
        return False
    fa, fb = Fraction(a), Fraction(b)
    return abs(fa - fb) <= Fraction(atol) + Fraction(rtol) * max(abs(fa), abs(fb))


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


# The float fast path's safety margin: 16 units in the last place, where the
# rounding of |a - b|, of atol + rtol * max(|a|, |b|) and of the test itself
# need at most 4; _TINY covers what subnormal results lose absolutely.
_MARGIN = 2.0 ** -49
_TINY = 2.0 ** -1000
_INF = math.inf


def close_enough(a: int | float, b: int | float, atol: float, rtol: float) -> bool:
    """numbers_close(a, b, atol, rtol), decided in floats whenever floats can decide it.

    For two finite floats |a - b| and the tolerance are computed in float;
    each is within a few ulps of its exact value, so when the float test
    clears the border by more than _MARGIN (relative) plus _TINY (absolute)
    the exact answer is the same. Only pairs within that margin of the
    tolerance, and everything that is not two floats, go to numbers_close,
    which stays the judge.
    """
    if a == b:
        return True
    if type(a) is float and type(b) is float:
        d = a - b if a > b else b - a
        t = atol + rtol * max(abs(a), abs(b))
        if d < _INF and t < _INF:
            slack = t * _MARGIN + _TINY
            if d * (1.0 + _MARGIN) < t - slack:
                return True
            if d * (1.0 - _MARGIN) > t + slack:
                return False
    return numbers_close(a, b, atol, rtol)


def _two_difference(a: float, b: float) -> tuple[float, float]:
    """(s, e) with s = fl(|a - b|) and s + e == |a - b| exactly (Knuth's TwoSum; no overflow)."""
    s = a - b
    bb = s - a
    e = (a - (s - bb)) + (-b - bb)
    return (s, e) if s >= 0 else (-s, -e)


class DifferenceStats:
    """Running maximum of absolute and relative differences over finite number pairs.

    Exact, for the same reason as numbers_close, and converted to float only
    when reported, where an overflow becomes inf rather than an error. Two
    floats are handled without rational arithmetic: the largest absolute
    difference is kept as an exact pair of floats (hi, lo), ordered exactly by
    comparing hi, then lo; a relative difference is computed in float and only
    one that may reach the maximum (within _MARGIN) is worked out in Fractions.
    """

    def __init__(self) -> None:
        self.pairs = 0
        self._abs: Fraction | None = Fraction(0)
        self._abs_pair: tuple[float, float] | None = (0.0, 0.0)  # exact max |a-b| as hi + lo, when known so
        self._abs_hi = 0.0                                         # fl(max |a-b|): orders any candidate
        self.max_rel = Fraction(0)
        self._rel_f = 0.0
        self._rel_key: tuple[float, float, float] | None = None   # the float pair that set max_rel

    @property
    def max_abs(self) -> Fraction:
        if self._abs is None:
            hi, lo = self._abs_pair  # type: ignore[misc]
            self._abs = Fraction(hi) + Fraction(lo)
        return self._abs

    def add(self, a: int | float, b: int | float) -> None:
        if type(a) is float and type(b) is float:
            if a == b:
                if a - a == 0.0:  # finite (inf - inf is nan)
                    self.pairs += 1
                return
            if a - b < _INF and b - a < _INF:  # both finite and no overflow; nan fails both
                self.pairs += 1
                self._add_floats(a, b)
            elif math.isfinite(a) and math.isfinite(b):
                self._add_exact(a, b)  # |a - b| overflows a float
            return
        if not (is_finite(a) and is_finite(b)):
            return
        self._add_exact(a, b)

    def _add_floats(self, a: float, b: float) -> None:
        s, e = _two_difference(a, b)
        if s >= self._abs_hi:
            pair = self._abs_pair
            if pair is None:  # the maximum came from exact arithmetic: compare exactly on a tie
                if s > self._abs_hi or Fraction(s) + Fraction(e) > self.max_abs:
                    self._abs_pair, self._abs, self._abs_hi = (s, e), None, s
            elif s > pair[0] or e > pair[1]:
                self._abs_pair, self._abs, self._abs_hi = (s, e), None, s
        scale = a if a > -a else -a
        other = b if b > -b else -b
        if other > scale:
            scale = other
        rel = s / scale
        if rel * (1.0 + _MARGIN) + _TINY < self._rel_f or (s, e, scale) == self._rel_key:
            return
        exact = (Fraction(s) + Fraction(e)) / Fraction(scale)
        if exact > self.max_rel:
            self.max_rel, self._rel_f, self._rel_key = exact, _to_float(exact), (s, e, scale)

    def _add_exact(self, a: int | float, b: int | float) -> None:
        self.pairs += 1
        if a == b:
            return
        fa, fb = Fraction(a), Fraction(b)
        diff = abs(fa - fb)
        if diff > self.max_abs:
            self._abs, self._abs_pair, self._abs_hi = diff, None, _to_float(diff)
        scale = max(abs(fa), abs(fb))
        if scale:
            rel = diff / scale
            if rel > self.max_rel:
                self.max_rel, self._rel_f, self._rel_key = rel, _to_float(rel), None

    def max_abs_diff(self) -> float | None:
        return _to_float(self.max_abs) if self.pairs else None

    def max_rel_diff(self) -> float | None:
        return _to_float(self.max_rel) if self.pairs else None
