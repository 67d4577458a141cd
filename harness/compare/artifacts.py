"""Produced files: one rule per artifact, one result per comparison of its two sides.

Identical bytes settle a comparison before any mode is consulted; otherwise
the rule's mode decides what "the same" means:

- 'bitwise': the bytes must be identical (the first differing offset is reported);
- 'numeric': numbers under the tolerance, the reader chosen by suffix (`formats`):
  a table (CSV, JSON lines, JSON array of objects, see `streaming`), NumPy
  arrays (.npy, .npz, read without numpy, see `arrays`) or Parquet (when
  pyarrow is importable, see `parquet`);
- 'json': every leaf of the document, numbers under the tolerance;
- 'hash': only the value under `key`, e.g. a canonical hash the project computes.

compare_artifact never raises on content: unreadable content is a 'differs'
result that says why, since a broken artifact is a finding about the run. It
takes bytes; `harness.compare.files.compare_files` takes paths and streams them.
The only exception is `Unavailable` (an optional reader such as pyarrow is not
installed), which is about this machine, not the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from harness.compare.differences import Difference, plain
from harness.compare.documents import ABSENT, Unparsable, both, decode, evidence, exactly_equal, flatten, json_loads, path_text
from harness.compare.summaries import MAX_EXAMPLES, differ, plural, short_list, show_number, tolerance_text
from harness.compare.formats import STREAMED_MODES, compare_content
from harness.compare.sources import Source
from harness.compare.tolerance import DifferenceStats, is_number, numbers_close

__all__ = [
    "ARTIFACT_MODES",
    "ARTIFACT_STATUSES",
    "ArtifactResult",
    "ArtifactRule",
    "artifact_differences",
    "compare_artifact",
    "bitwise_summary",
    "identical_summary",
    "streamed_content",
    "tolerance_details",
]

# The values of `compare = ...` in `[[tool.mlrepro.artifacts]]`.
ARTIFACT_MODES = ("bitwise", "numeric", "json", "hash")
# 'identical': same bytes; 'equivalent': other bytes, same data under the rule;
# 'differs' and 'missing' are drift.
ARTIFACT_STATUSES = ("identical", "equivalent", "differs", "missing")


@dataclass(frozen=True)
class ArtifactRule:
    """How one file under the output directory is compared; tolerances apply to numbers only."""

    path: str
    mode: str = "bitwise"
    atol: float = 0.0
    rtol: float = 0.0
    key: str | None = None

    def __post_init__(self) -> None:
        # Checked here so a bad configuration fails before any container runs.
        if self.mode not in ARTIFACT_MODES:
            raise ValueError(f"artifact {self.path!r}: mode={self.mode!r}, expected one of {ARTIFACT_MODES}")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"artifact {self.path!r}: {name}={value!r}, expected a finite number >= 0")
        if self.mode == "hash" and not self.key:
            raise ValueError(f"artifact {self.path!r}: mode='hash' needs key=, the dotted path of the hash value")


@dataclass(frozen=True)
class ArtifactResult:
    """The verdict on one artifact, with JSON-safe evidence (hashes, sizes, first differences)."""

    path: str
    mode: str
    status: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ARTIFACT_STATUSES:
            raise ValueError(f"artifact {self.path!r}: status={self.status!r}, expected one of {ARTIFACT_STATUSES}")
        object.__setattr__(self, "details", plain(self.details))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------ json and hash

_MISSING_KEY = object()


def _lookup(value: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING_KEY
    return value


def _keyed(rule: ArtifactRule, image: Any, host: Any, details: dict[str, Any]) -> tuple[Any, Any, str | None]:
    """The values under rule.key, or a 'differs' summary when either side lacks it."""
    vi, vh = _lookup(image, rule.key), _lookup(host, rule.key)
    missing = [side for side, v in (("image", vi), ("host", vh)) if v is _MISSING_KEY]
    if missing:
        details["key_missing"] = missing
        where = "both" if len(missing) == 2 else missing[0]
        return vi, vh, f"{rule.path}: key {rule.key!r} missing from {where}"
    return vi, vh, None


def _compare_json(rule: ArtifactRule, image: Any, host: Any, details: dict[str, Any]) -> tuple[str, str]:
    label = rule.path
    if rule.key:
        image, host, problem = _keyed(rule, image, host, details)
        if problem:
            return "differs", problem
        label = f"{rule.path} {rule.key}"
    base = tuple(rule.key.split(".")) if rule.key else ()
    leaves_i, leaves_h = flatten(image, base, {}), flatten(host, base, {})
    stats = DifferenceStats()
    differing = []
    examples = []
    paths = list(leaves_i) + [k for k in leaves_h if k not in leaves_i]
    for path in paths:
        a, b = leaves_i.get(path, ABSENT), leaves_h.get(path, ABSENT)
        if a is ABSENT or b is ABSENT:
            equal = False
        elif is_number(a) and is_number(b):
            stats.add(a, b)
            equal = numbers_close(a, b, rule.atol, rule.rtol)
        else:
            equal = exactly_equal(a, b)
        if not equal:
            differing.append(path_text(path))
            if len(examples) < MAX_EXAMPLES:
                examples.append({"key": path_text(path), "image": evidence(a), "host": evidence(b)})
    max_abs, max_rel = stats.max_abs_diff(), stats.max_rel_diff()
    details.update(
        values=len(paths),
        values_differing=len(differing),
        differing_keys=differing[:100],
        numeric_pairs=stats.pairs,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        first_differences=examples,
    )
    values = plural(len(paths), "value")
    if differing:
        summary = f"{label}: {len(differing)} of {values} {differ(len(differing))}: {short_list(differing)}"
        if stats.max_abs:
            summary += f"; max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)}"
        return "differs", summary
    if stats.max_abs:
        return "equivalent", (
            f"{label}: bytes differ but the JSON data is equal within {tolerance_text(rule.atol, rule.rtol)} "
            f"({values}; max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)})"
        )
    return "equivalent", f"{label}: bytes differ but the JSON data is equal ({values})"


def _hash_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _compare_hash(rule: ArtifactRule, image: Any, host: Any, details: dict[str, Any]) -> tuple[str, str]:
    vi, vh, problem = _keyed(rule, image, host, details)
    if problem:
        return "differs", problem
    details.update(value_image=vi, value_host=vh)
    if exactly_equal(vi, vh):
        return "equivalent", f"{rule.path} {rule.key}: {_hash_text(vi)} on both sides (other bytes differ)"
    return "differs", f"{rule.path} {rule.key}: image {_hash_text(vi)}, host {_hash_text(vh)}"


# ------------------------------------------------------------ dispatch


def _first_difference(image: bytes, host: bytes) -> int:
    # Chunk first: artifacts can be large and a per-byte Python loop is slow.
    chunk = 1 << 16
    start = 0
    while image[start:start + chunk] == host[start:start + chunk] and start < min(len(image), len(host)):
        start += chunk
    return next(
        (i for i, (a, b) in enumerate(zip(image[start:start + chunk], host[start:start + chunk]), start) if a != b),
        min(len(image), len(host), start + chunk),
    )


def _compare_content(rule: ArtifactRule, image: bytes, host: bytes, details: dict[str, Any]) -> tuple[str, str, str | None]:
    """(status, summary, parse error or None) for the parsing modes."""
    p = rule.path
    if rule.mode in STREAMED_MODES:
        return streamed_content(rule, Source(io.BytesIO(image), "image"), Source(io.BytesIO(host), "host"), details)
    try:
        ji, jh = both(lambda side: json_loads(decode(*side), side[1]), (image, "image"), (host, "host"))
    except Unparsable as exc:
        return "differs", f"{p}: {exc}", str(exc)
    if rule.mode == "json":
        return (*_compare_json(rule, ji, jh, details), None)
    return (*_compare_hash(rule, ji, jh, details), None)


def streamed_content(rule: ArtifactRule, image: Source, host: Source, details: dict[str, Any], *,
                     fmt: str | None = None) -> tuple[str, str, str | None]:
    """(status, summary, parse error or None) for the modes read through Sources (`fmt` overrides the suffix)."""
    try:
        return (*compare_content(rule.path, image, host, atol=rule.atol, rtol=rule.rtol, details=details, fmt=fmt), None)
    except Unparsable as exc:
        return "differs", f"{rule.path}: {exc}", str(exc)


def tolerance_details(rule: ArtifactRule, details: dict[str, Any]) -> None:
    """What every non-bitwise result records of its rule."""
    if rule.mode != "bitwise":
        details.update(atol=rule.atol, rtol=rule.rtol)
        if rule.key:
            details["key"] = rule.key


def compare_artifact(rule: ArtifactRule, image: bytes | None, host: bytes | None) -> ArtifactResult:
    """Compare one produced file from image and host under its rule; never raises on content.

    None for a side means the file was not produced there.
    """
    p = rule.path
    if image is None or host is None:
        where = "both" if image is None and host is None else ("image" if image is None else "host")
        hashes = {side: _sha256(data) for side, data in (("image", image), ("host", host)) if data is not None}
        return ArtifactResult(p, rule.mode, "missing", f"{p}: missing from {where}", {"missing_from": where, "sha256": hashes})

    details: dict[str, Any] = {
        "sha256": {"image": _sha256(image), "host": _sha256(host)},
        "bytes": {"image": len(image), "host": len(host)},
    }
    if image == host:
        return ArtifactResult(p, rule.mode, "identical", identical_summary(p, len(image), _sha256(image)), details)
    tolerance_details(rule, details)
    if rule.mode == "bitwise":
        offset = _first_difference(image, host)
        details["first_differing_byte"] = offset
        return ArtifactResult(p, rule.mode, "differs", bitwise_summary(p, offset, details["bytes"], details["sha256"]), details)
    try:
        status, summary, error = _compare_content(rule, image, host, details)
    except RecursionError:
        error = "content is nested too deeply to compare"
        status, summary = "differs", f"{p}: {error}"
    if error:
        details["unparsable"] = error
    return ArtifactResult(p, rule.mode, status, summary, details)


def identical_summary(path: str, size: int, sha256: str) -> str:
    return f"{path}: identical ({size} bytes, sha256 {sha256[:12]})"


def bitwise_summary(path: str, offset: int, sizes: Mapping[str, int], hashes: Mapping[str, str]) -> str:
    return (f"{path}: bytes differ from offset {offset} (image {sizes['image']} bytes, sha256 {hashes['image'][:12]}; "
            f"host {sizes['host']} bytes, sha256 {hashes['host'][:12]})")


def artifact_differences(results: Iterable[ArtifactResult]) -> list[Difference]:
    """One 'artifact' drift per result that differs or is missing."""
    return [
        Difference(
            "artifact", r.path, r.summary, "drift",
            {"mode": r.mode, "status": r.status, **r.details},
        )
        for r in results
        if r.status in ("differs", "missing")
    ]
