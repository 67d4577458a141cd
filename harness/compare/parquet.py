"""Parquet tables (mode 'parquet'), read through pyarrow when it is importable.

The harness does not depend on pyarrow: the host side computes in the
project's own environment, and adding a library there could change the
versions it computes with. When pyarrow is missing, comparing a Parquet
artifact raises `Unavailable`, whose message says what to install; the rows
are otherwise judged exactly like a CSV's (`streaming.TableComparison`), a
record batch at a time.
"""

from __future__ import annotations

import importlib
import io
from typing import Any

from harness.compare.documents import Unparsable, both
from harness.compare.sources import Source
from harness.compare.streaming import TableComparison

__all__ = ["Unavailable", "compare_parquet", "pyarrow_parquet"]


class Unavailable(Exception):
    """An optional reader is not installed; the message names what to install. Not a finding about the run."""


def pyarrow_parquet() -> Any:
    """pyarrow.parquet, or Unavailable saying how to get it."""
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise Unavailable("comparing Parquet needs pyarrow, which is not importable here: "
                          "pip install pyarrow (in the environment that runs mlrepro), or compare the file with mode 'bitwise'") from None


def _open(pq: Any, source: Source) -> Any:
    try:
        return pq.ParquetFile(io.BytesIO(source.whole()))
    except Exception as exc:  # pyarrow raises its own ArrowInvalid and OSErrors for bad files
        raise Unparsable(f"{source.side} is not readable Parquet ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def compare_parquet(path: str, image: Source, host: Source, *, atol: float, rtol: float,
                    details: dict[str, Any]) -> tuple[str, str]:
    """Two Parquet files as tables: the schema's column names in order, then rows cell by cell."""
    pq = pyarrow_parquet()
    files = both(lambda source: _open(pq, source), image, host)
    table = TableComparison(path, atol=atol, rtol=rtol, ordered=True)
    table.header(list(files[0].schema_arrow.names), list(files[1].schema_arrow.names))
    rows = [f.iter_batches(batch_size=4096) for f in files]
    pending: list[list[dict[int, Any]]] = [[], []]
    while True:
        for side in (0, 1):
            if not pending[side]:
                batch = next(rows[side], None)
                if batch is not None:
                    pending[side] = [dict(enumerate(r.values())) for r in batch.to_pylist()]
        if not pending[0] or not pending[1]:
            for side, name in ((0, "image"), (1, "host")):
                while pending[side]:
                    table.extra(name, len(pending[side]))
                    batch = next(rows[side], None)
                    pending[side] = [] if batch is None else batch.to_pylist()
            return table.finish(details)
        n = min(len(pending[0]), len(pending[1]))
        for row_i, row_h in zip(pending[0][:n], pending[1][:n]):
            table.row(row_i, row_h)
        pending = [pending[0][n:], pending[1][n:]]
