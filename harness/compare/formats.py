"""Which reader compares an artifact's content, by mode and file suffix.

Mode 'numeric' reads `.csv` as CSV with a header row, `.jsonl` / `.ndjson` as
one object per line (both streamed: `streaming`), `.npy` arrays and `.npz`
archives of them (`arrays`, no numpy needed), `.parquet` / `.pq` through
pyarrow when it is importable (`parquet`), anything else as a JSON array of
objects (read whole: a JSON document cannot be judged before its end). The
suffix decides, so `[[tool.mlrepro.artifacts]]` needs no new mode for a new
format; `mlrepro compare --mode npy` names the format when the suffix does not.
"""

from __future__ import annotations

from typing import Any

from harness.compare.arrays import compare_arrays
from harness.compare.parquet import compare_parquet
from harness.compare.sources import Source
from harness.compare.streaming import compare_csv, compare_jsonl
from harness.compare.tables import compare_tables, parse_table
from harness.compare.documents import both

__all__ = ["FORMATS", "STREAMED_MODES", "compare_content", "suffix"]

#: Modes whose content is read through `Source`s rather than as two byte strings.
STREAMED_MODES = ("numeric",)
#: What `fmt` may name: a suffix this module reads.
FORMATS = ("csv", "jsonl", "json", "npy", "npz", "parquet")


def suffix(path: str) -> str:
    return path.lower().rsplit(".", 1)[-1] if "." in path else ""


def _json_tables(path: str, image: Source, host: Source, *, atol: float, rtol: float, details: dict[str, Any]) -> tuple[str, str]:
    tables = both(lambda source: parse_table(path, source.whole(), source.side), image, host)
    return compare_tables(path, tables[0], tables[1], atol=atol, rtol=rtol, details=details)


def compare_content(path: str, image: Source, host: Source, *, atol: float, rtol: float,
                    details: dict[str, Any], fmt: str | None = None) -> tuple[str, str]:
    """(status, summary) of two sides' content; raises Unparsable (naming every bad side) or Unavailable."""
    kind = fmt or suffix(path)
    if kind in ("npy", "npz"):
        return compare_arrays(path, image, host, atol=atol, rtol=rtol, details=details, archive=kind == "npz")
    if kind in ("parquet", "pq"):
        return compare_parquet(path, image, host, atol=atol, rtol=rtol, details=details)
    if kind == "csv":
        return compare_csv(path, image, host, atol=atol, rtol=rtol, details=details)
    if kind in ("jsonl", "ndjson"):
        return compare_jsonl(path, image, host, atol=atol, rtol=rtol, details=details)
    return _json_tables(path, image, host, atol=atol, rtol=rtol, details=details)
