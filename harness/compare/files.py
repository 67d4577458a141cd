"""Comparing two files (or seekable binary streams) under a rule, in memory bounded by a chunk.

`compare_artifact` takes two byte strings; this is the same comparison for
data that is too large to hold twice. A first pass reads both streams side
by side while their bytes agree (hashing the common prefix once): identical
files are settled there at the speed of reading and hashing. From the first
differing chunk on, the rule's mode decides: 'bitwise' reports the offset
and hashes the rest; 'numeric' re-reads both from the start as records, the
byte-identical lines taking the fast path (`streaming`); 'json' and 'hash'
read their documents whole, as JSON must be. Results are those of
`compare_artifact` on the same bytes, field for field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any

from harness.compare.artifacts import (
    ArtifactResult,
    ArtifactRule,
    bitwise_summary,
    compare_artifact,
    identical_summary,
    streamed_content,
    tolerance_details,
)
from harness.compare.sources import CHUNK_SIZE, Source

__all__ = ["compare_files", "compare_streams"]


def _common_prefix(image: IO[bytes], host: IO[bytes], chunk_size: int) -> tuple[Any, int, bytes, bytes]:
    """(sha256 of the common chunks, their length, the first differing chunks or two empty ones)."""
    common = hashlib.sha256()
    offset = 0
    while True:
        a, b = image.read(chunk_size), host.read(chunk_size)
        if a != b or not a:
            return common, offset, a, b
        common.update(a)
        offset += len(a)


def _first_difference(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    while hi - lo > 64:  # bisect on slices: C comparisons, not a Python loop per byte
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return next((i for i in range(lo, hi) if a[i] != b[i]), hi)


def compare_streams(rule: ArtifactRule, image: IO[bytes] | None, host: IO[bytes] | None, *,
                    chunk_size: int = CHUNK_SIZE, fmt: str | None = None) -> ArtifactResult:
    """compare_artifact for two seekable binary streams (None: not produced); `fmt` overrides the suffix."""
    if image is None or host is None or rule.mode in ("json", "hash"):
        return compare_artifact(rule, None if image is None else image.read(), None if host is None else host.read())
    common, offset, a, b = _common_prefix(image, host, chunk_size)
    p = rule.path
    if not a and not b:
        digest = common.hexdigest()
        details = {"sha256": {"image": digest, "host": digest}, "bytes": {"image": offset, "host": offset}}
        return ArtifactResult(p, rule.mode, "identical", identical_summary(p, offset, digest), details)
    sha = {"image": common.copy(), "host": common.copy()}
    if rule.mode == "bitwise":
        first = offset + _first_difference(a, b)
        sizes = {}
        for side, stream, block in (("image", image, a), ("host", host, b)):
            source = Source(stream, side, sha256=sha[side])
            sha[side].update(block)
            source.finish()
            sizes[side] = offset + len(block) + source.size
        hashes = {side: h.hexdigest() for side, h in sha.items()}
        details = {"sha256": hashes, "bytes": sizes, "first_differing_byte": first}
        return ArtifactResult(p, rule.mode, "differs", bitwise_summary(p, first, sizes, hashes), details)
    image.seek(0)
    host.seek(0)
    sources = {side: Source(stream, side, chunk_size=chunk_size, sha256=sha[side], hashed_from=offset)
               for side, stream in (("image", image), ("host", host))}
    content: dict[str, Any] = {}
    tolerance_details(rule, content)
    status, summary, error = streamed_content(rule, sources["image"], sources["host"], content, fmt=fmt)
    for source in sources.values():
        source.finish()
    details = {"sha256": {side: h.hexdigest() for side, h in sha.items()},
               "bytes": {side: s.size for side, s in sources.items()}, **content}
    if error:
        details["unparsable"] = error
    return ArtifactResult(p, rule.mode, status, summary, details)


def compare_files(rule: ArtifactRule, image_path: Path | str | None, host_path: Path | str | None, *,
                  chunk_size: int = CHUNK_SIZE, fmt: str | None = None) -> ArtifactResult:
    """compare_artifact for two files; a path that does not exist (or None) is a side that made no file."""
    paths = [Path(p) if p is not None else None for p in (image_path, host_path)]
    streams = [p.open("rb") if p is not None and p.is_file() else None for p in paths]
    try:
        return compare_streams(rule, streams[0], streams[1], chunk_size=chunk_size, fmt=fmt)
    finally:
        for stream in streams:
            if stream is not None:
                stream.close()
