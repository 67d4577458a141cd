"""Numeric tables: CSV, JSON lines or a JSON array of objects, compared cell by cell.

This is artifact mode 'numeric'. A file is read into a Table (column names,
rows of cells by column id) and two tables are compared under a tolerance:
numbers by numbers_close, everything else exactly. The summary counts rows,
since a prediction file is read row by row.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any, Callable

from harness.compare.documents import ABSENT, Unparsable, decode, evidence, exactly_equal, flatten, json_loads, json_type, path_text
from harness.compare.summaries import MAX_EXAMPLES, differ, plural, short_list, show_number, tolerance_text
from harness.compare.tolerance import DifferenceStats, is_finite, is_number, numbers_close

__all__ = ["Table", "compare_tables", "parse_table"]

# ASCII only: int() also accepts other scripts' digits, which no CSV writer emits.
_INT_TEXT = re.compile(r" *[+-]?[0-9]+ *")
_FLOAT_TEXT = re.compile(r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *| *[+-]?(nan|inf|infinity) *", re.IGNORECASE)


@dataclass(frozen=True)
class Table:
    """One side's data: CSV cells by column index, JSON leaves by path."""

    columns: list[str]          # display names, in file order
    rows: list[dict[Any, Any]]  # cell values by column id
    ids: list[Any]              # column ids: indexes for CSV, leaf paths for JSON
    ordered: bool               # CSV: the header row itself must match; JSON: the set of leaf paths


@dataclass(frozen=True)
class _CsvNumber:
    """A CSV cell that reads as a number; the text is kept for evidence."""

    text: str
    value: int | float


def _csv_number(text: str) -> int | float | None:
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
            number = _csv_number(cell)
            row[i] = cell if number is None else _CsvNumber(cell, number)
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


def _cell_number(cell: Any) -> int | float | None:
    if isinstance(cell, _CsvNumber):
        return cell.value
    if is_number(cell):
        return cell
    return None


def _cell_evidence(cell: Any) -> Any:
    return cell.text if isinstance(cell, _CsvNumber) else evidence(cell)


def _cells_equal(a: Any, b: Any, atol: float, rtol: float, stats: DifferenceStats) -> tuple[bool, str]:
    """(equal, kind) for one pair of cells, kind being 'finite', 'non-finite' or 'non-numeric'."""
    na, nb = _cell_number(a), _cell_number(b)
    if na is not None and nb is not None:
        stats.add(na, nb)
        kind = "finite" if is_finite(na) and is_finite(nb) else "non-finite"
        return numbers_close(na, nb, atol, rtol), kind
    if isinstance(a, _CsvNumber) or isinstance(b, _CsvNumber):
        return False, "non-numeric"
    return exactly_equal(a, b), "non-numeric"


def _column_difference(p: str, image: Table, host: Table, details: dict[str, Any]) -> str | None:
    """The summary when the two tables do not have the same columns, else None."""
    same = image.columns == host.columns if image.ordered else set(image.ids) == set(host.ids)
    if same:
        return None
    if image.ordered:
        only_i = [c for c in image.columns if c not in host.columns]
        only_h = [c for c in host.columns if c not in image.columns]
    else:
        only_i = [path_text(c) for c in image.ids if c not in set(host.ids)]
        only_h = [path_text(c) for c in host.ids if c not in set(image.ids)]
    details.update(columns_image=image.columns, columns_host=host.columns)
    if not only_i and not only_h:
        # Same names, other order or other repetitions of a name.
        kind = "order" if sorted(image.columns) == sorted(host.columns) else "repetitions"
        return f"{p}: column {kind} differs (image: {short_list(image.columns)}; host: {short_list(host.columns)})"
    parts = []
    if only_i:
        parts.append(f"only in image: {short_list(only_i)}")
    if only_h:
        parts.append(f"only in host: {short_list(only_h)}")
    return f"{p}: columns differ ({'; '.join(parts)})"


def compare_tables(
    path: str, image: Table, host: Table, *, atol: float, rtol: float, details: dict[str, Any]
) -> tuple[str, str]:
    """(status, summary) for two tables of one artifact; the evidence goes into `details`.

    Columns must match first (names and, for CSV, order), then the row count;
    only then are cells compared, so a shifted column is reported as such
    rather than as every cell differing.
    """
    p = path
    problem = _column_difference(p, image, host, details)
    if problem:
        return "differs", problem
    details["columns"] = image.columns
    if len(image.rows) != len(host.rows):
        details.update(rows_image=len(image.rows), rows_host=len(host.rows))
        return "differs", f"{p}: image has {plural(len(image.rows), 'row')}, host {len(host.rows)}"

    stats = DifferenceStats()
    names = dict(zip(image.ids, image.columns))
    rows_differing = 0
    cells_differing = {"finite": 0, "non-finite": 0, "non-numeric": 0}
    examples = []
    for index, (row_i, row_h) in enumerate(zip(image.rows, host.rows)):
        bad = {}
        ids = list(row_i) + [c for c in row_h if c not in row_i]
        for cid in ids:
            a, b = row_i.get(cid, ABSENT), row_h.get(cid, ABSENT)
            equal, kind = _cells_equal(a, b, atol, rtol, stats)
            if not equal:
                cells_differing[kind] += 1
                name = names.get(cid) or (f"column {cid + 1}" if isinstance(cid, int) else path_text(cid))
                bad[name] = {"image": _cell_evidence(a), "host": _cell_evidence(b)}
        if bad:
            rows_differing += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append({"row": index, "cells": bad})
    max_abs, max_rel = stats.max_abs_diff(), stats.max_rel_diff()
    details.update(
        rows=len(image.rows),
        rows_differing=rows_differing,
        cells_differing=sum(cells_differing.values()),
        non_finite_cells_differing=cells_differing["non-finite"],
        non_numeric_cells_differing=cells_differing["non-numeric"],
        numeric_pairs=stats.pairs,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        first_differences=examples,
    )
    rows = len(image.rows)
    if rows_differing:
        summary = f"{p}: {rows_differing} of {plural(rows, 'row')} {differ(rows_differing)}"
        if stats.pairs:
            summary += f", max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)}"
        for kind in ("non-finite", "non-numeric"):
            if cells_differing[kind]:
                summary += f"; {plural(cells_differing[kind], kind + ' cell')} {differ(cells_differing[kind])}"
        if atol or rtol:
            summary += f" ({tolerance_text(atol, rtol)})"
        return "differs", summary
    if stats.max_abs:
        return "equivalent", (
            f"{p}: bytes differ but the data is equal within {tolerance_text(atol, rtol)} "
            f"({plural(rows, 'row')}; max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)})"
        )
    return "equivalent", f"{p}: bytes differ but the data is equal ({plural(rows, 'row')})"
