"""The feature schema a model's training run records: one reader, one validator. Pure.

``[{"name", "min", "max"}, ...]``, found in a side's output as `FILE:KEY`
(`[tool.mlrepro.worker] schema`, e.g. ``manifest.json:features``). The
strategies draw inputs from it; the workers' tests read it from a side.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from harness.errors import MlreproError


def check_schema(schema: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The schema as plain dicts, or ValueError naming the first bad entry."""
    if not isinstance(schema, (list, tuple)) or not schema:
        raise ValueError(f"schema={schema!r:.80}: expected at least one feature {{'name', 'min', 'max'}}")
    out = []
    for i, f in enumerate(schema):
        lo, hi = (f.get("min"), f.get("max")) if isinstance(f, Mapping) else (None, None)
        ok = isinstance(f, Mapping) and isinstance(f.get("name"), str) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)
        )
        if not ok or lo > hi:
            raise ValueError(f"schema[{i}]={f!r:.120}: expected a name and finite min <= max")
        out.append({"name": f["name"], "min": float(lo), "max": float(hi)})
    if len({f["name"] for f in out}) != len(out):
        raise ValueError("schema: expected distinct feature names")
    return out


def read_schema(data: bytes | None, spec: str) -> list[dict[str, Any]]:
    """The schema `FILE:KEY` from the bytes of FILE (None: the setup steps did not write it)."""
    file_name, _, key = spec.partition(":")
    try:
        if data is None:
            raise FileNotFoundError(file_name)
        document = json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise MlreproError(f"worker.schema: expected a JSON file {file_name} in the setup output, found none or unreadable ({exc}); "
                           "check [tool.mlrepro.worker] schema and setup") from None
    value: Any = document
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    try:
        return check_schema(value)
    except ValueError as exc:
        raise MlreproError(f"worker.schema: expected {key!r} in {file_name} to be a non-empty list of "
                           f"{{'name', 'min', 'max'}} with finite min <= max, found {str(value)[:160]} ({exc})") from None


__all__ = ["check_schema", "read_schema"]
