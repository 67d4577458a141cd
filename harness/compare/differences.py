"""A Difference: one thing that disagrees between lock, image and host.

Every comparison module returns these, so the report, the verdict and the
release policy judge packages, environments and artifacts alike. Evidence is
made JSON-safe on the way in, so a Difference read back from a stored report
equals the one the harness produced.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["SEVERITIES", "Difference", "normalize_name", "plain"]

# 'drift' fails verification; 'note' is reported and allowed.
SEVERITIES = ("drift", "note")


def plain(value: Any) -> Any:
    """Reduce evidence to what survives a JSON round trip unchanged.

    Tuples become lists, mapping keys strings, and non-finite floats the
    strings 'nan', 'inf', '-inf': strict JSON has no such numbers, and
    NaN != NaN would break report equality after a round trip.
    """
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    raise TypeError(f"expected JSON-serialisable evidence, found {type(value).__name__}: {value!r}")


@dataclass(frozen=True)
class Difference:
    """One disagreement: `category` says which comparison found it, `subject` what it is about.

    `message` is the one line people read; `details` the evidence a report or
    a release policy needs without re-parsing the message.
    """

    category: str
    subject: str
    message: str
    severity: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Difference {self.subject!r}: severity={self.severity!r}, expected one of {SEVERITIES}")
        object.__setattr__(self, "details", plain(self.details))


def normalize_name(name: str) -> str:
    """PEP 503 normalisation: lowercase, runs of '-', '_', '.' become one '-'.

    Locks, probes and configuration spell project names differently
    (Scikit_Learn, scikit-learn); every comparison of names goes through this.
    """
    return re.sub(r"[-_.]+", "-", name).lower()
