"""Numeric tables: CSV, JSON lines or a JSON array of objects, compared cell by cell.

This is artifact mode 'numeric'. A file is read into a Table (column names,
rows of cells by column id) and two tables are compared under a tolerance:
numbers by numbers_close, everything else exactly. The summary counts rows,
since a prediction file is read row by row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Callable

from harness.compare.documents import Unparsable, decode, flatten, json_loads, json_type, path_text
from harness.compare.streaming import TableComparison, csv_cell, feed_rows

__all__ = ["Table", "compare_tables", "parse_table"]

@dataclass(frozen=True)
class Table:
    """One side's data: CSV cells by column index, JSON leaves by path."""

    columns: list[str]          # display names, in file order
    rows: list[dict[Any, Any]]  # cell values by column id
    ids: list[Any]              # column ids: indexes for CSV, leaf paths for JSON
    ordered: bool               # CSV: the header row itself must match; JSON: the set of leaf paths


def _parse_csv(text: str, side: str) -> Table:
    try:
        records = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise Unparsable(f"{side} is not valid CSV ({exc})") from None
    if not records:
        return Table([], [], [], True)
    header, body = records[0], records[1:]
    rows = []
    for record in body:
        row: dict[Any, Any] = {}
        for i, cell in enumerate(record):
            row[i] = csv_cell(cell)
        rows.append(row)
    return Table(list(header), rows, list(range(len(header))), True)


def _rows_from_objects(objects: list[Any], where: Callable[[int], str]) -> Table:
    columns: dict[tuple, None] = {}
    rows = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise Unparsable(f"{where(index)} is a JSON {json_type(obj)}, expected an object")
        row = flatten(obj, (), {})
        columns.update(dict.fromkeys(row))
        rows.append(row)
    ids = list(columns)
    return Table([path_text(i) for i in ids], rows, ids, False)


def parse_table(path: str, data: bytes, side: str) -> Table:
    """One side's file as a Table, read by the suffix of `path`; raises Unparsable.

    '.csv' is CSV with a header row; '.jsonl' and '.ndjson' one object per
    line (blank lines skipped); anything else a JSON array of objects.
    """
    text = decode(data, side)
    suffix = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if suffix == "csv":
        return _parse_csv(text, side)
    if suffix in ("jsonl", "ndjson"):
        objects, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                objects.append(json_loads(line, f"{side} line {number}"))
                lines.append(number)
        return _rows_from_objects(objects, lambda i: f"{side} line {lines[i]}")
    value = json_loads(text, side)
    if not isinstance(value, list):
        raise Unparsable(f"{side} is a JSON {json_type(value)}, expected an array of objects")
    return _rows_from_objects(value, lambda i: f"{side} element {i}")


def compare_tables(
    path: str, image: Table, host: Table, *, atol: float, rtol: float, details: dict[str, Any]
) -> tuple[str, str]:
    """(status, summary) for two tables of one artifact held in memory; the evidence goes into `details`.

    The same judgement as the streamed files (`streaming.TableComparison`):
    columns first, then the row count, then cells.
    """
    table = TableComparison(path, atol=atol, rtol=rtol, ordered=image.ordered)
    if image.ordered:
        table.header(image.columns, host.columns)
        for row_i, row_h in zip(image.rows, host.rows):
            table.row(row_i, row_h)
        table.extra("image", max(0, len(image.rows) - len(host.rows)))
        table.extra("host", max(0, len(host.rows) - len(image.rows)))
    else:
        feed_rows(table, image.rows, host.rows)
    return table.finish(details)
