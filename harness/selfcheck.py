"""Self-consistency: do two runs of the same side agree? (`mlrepro verify --repeat N`).

Image vs host only means something when each side agrees with itself: a
project that draws unseeded random numbers differs between any two runs, and
blaming the image for it sends its owner after the wrong cause. So the first
run of a side is compared with each later run under the same artifact rules
(`harness.compare.compare_artifact`, tolerances included), and what moved is
reported with the causes the probes and the files let us see.

Pure: runs in (their files and probes), a `SideConsistency` out.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from harness.compare import ArtifactResult, ArtifactRule, compare_artifact
from harness.report.model import SideConsistency

__all__ = ["UNSEEDED", "consistency", "likely_causes"]

#: We cannot see random state; we can say where to look.
UNSEEDED = "the steps may use unseeded randomness (seed random, numpy and your framework explicitly, e.g. from an env variable)"

# ISO dates with a time: what time-stamped outputs look like (epoch seconds look like any other number).
_TIMESTAMP = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def consistency(side: str, rules: Sequence[ArtifactRule], runs: Sequence[tuple[Mapping[str, bytes], Mapping]]) -> SideConsistency:
    """Compare run 1 of `side` with each later run; `runs` holds (files, probe) per run, in order."""
    first_files, _ = runs[0]
    moved: dict[str, ArtifactResult] = {}
    for files, _ in runs[1:]:
        for rule in rules:
            if rule.path in moved:
                continue
            # compare_artifact names its sides image/host; here both are `side`: run 1 and run k.
            result = compare_artifact(rule, first_files.get(rule.path), files.get(rule.path))
            if result.status in ("differs", "missing"):
                moved[rule.path] = result
    ordered = tuple(moved[rule.path] for rule in rules if rule.path in moved)
    causes = likely_causes(ordered, runs) if ordered else ()
    return SideConsistency(side=side, runs=len(runs), moved=ordered, causes=causes)


def likely_causes(moved: Sequence[ArtifactResult], runs: Sequence[tuple[Mapping[str, bytes], Mapping]]) -> tuple[str, ...]:
    """What the probes and files show that makes runs of one side differ; unseeded randomness always (we cannot see it)."""
    causes: list[str] = []
    probes = [probe for _, probe in runs]
    if any("PYTHONHASHSEED" not in (probe.get("env") or {}) for probe in probes):
        causes.append("PYTHONHASHSEED is unset (set and dict-of-str orders change per process); set run.env PYTHONHASHSEED = \"0\"")
    causes.append(UNSEEDED)
    counts = [sorted(int(p.get("num_threads") or 0) for p in (probe.get("threadpools") or [])) for probe in probes]
    if len({tuple(c) for c in counts}) > 1:
        causes.append("thread counts differ between runs (summation order in BLAS/OpenMP changes); pin OMP_NUM_THREADS")
    elif any(n > 1 for c in counts for n in c):
        causes.append(f"multi-threaded BLAS/OpenMP ({max(n for c in counts for n in c)} threads) may reorder floating-point sums; try OMP_NUM_THREADS=1")
    stamped = [a.path for a in moved if any(_TIMESTAMP.search(files.get(a.path) or b"") for files, _ in runs)]
    if stamped:
        causes.append(f"time-dependent output: {', '.join(stamped)} contain(s) timestamps; write them outside the compared artifacts or fix them")
    return tuple(causes)
