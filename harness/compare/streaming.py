"""Numeric tables compared row by row as they are read: the one implementation of mode 'numeric'.

`TableComparison` takes the rows of both sides in order and keeps only what
the verdict and the evidence need (counts, the exact maximum differences,
the first examples, bounded `TableEvidence`), so memory does not grow with
the table. `compare_csv` and `compare_jsonl` feed it from two `Source`s in one
pass over both files; `tables.compare_tables` feeds it rows already in memory
(a JSON array). Whatever the feeding, the verdict rules are those of the
whole-table comparison: columns must match first (names and, for CSV, order),
then the row count, and only then do cell differences make the summary.

The fast path: a CSV line that is byte-identical on both sides is equal
without parsing; its finite numbers still count as compared pairs, counted a
block at a time (`cells.count_finite`). Cells are judged by `close_enough`,
which leaves the border to the exact `numbers_close`.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from harness.compare.cells import count_finite_slowly, count_finite_with_labels, csv_number
from harness.compare.documents import ABSENT, Unparsable, evidence, exactly_equal, flatten, json_loads, json_type, path_text
from harness.compare.evidence import TableEvidence
from harness.compare.sources import Source, csv_batches, jsonl_lines
from harness.compare.summaries import MAX_EXAMPLES, differ, plural, short_list, show_number, tolerance_text
from harness.compare.tolerance import DifferenceStats, close_enough, is_finite, is_number

__all__ = ["CsvNumber", "TableComparison", "compare_csv", "compare_jsonl"]


class CsvNumber:
    """A CSV cell that reads as a number; the text is kept for evidence."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: int | float) -> None:
        self.text, self.value = text, value


def _number(cell: Any) -> int | float | None:
    if isinstance(cell, CsvNumber):
        return cell.value
    return cell if is_number(cell) else None


def _shown(cell: Any) -> Any:
    return cell.text if isinstance(cell, CsvNumber) else evidence(cell)


def csv_cell(text: Any) -> Any:
    """A CSV cell as compared: CsvNumber when it reads as a number, else the text (ABSENT stays)."""
    if text is ABSENT:
        return ABSENT
    number = csv_number(text)
    return text if number is None else CsvNumber(text, number)


class TableComparison:
    """The running comparison of two tables; `finish` writes the evidence and returns (status, summary)."""

    def __init__(self, path: str, *, atol: float, rtol: float, ordered: bool) -> None:
        self.path, self.atol, self.rtol, self.ordered = path, atol, rtol, ordered
        self.stats = DifferenceStats()
        self.columns: dict[str, list[Any]] = {"image": [], "host": []}   # CSV: the header rows
        self.ids: dict[str, dict[Any, None]] = {"image": {}, "host": {}}  # JSON: leaf paths in order of appearance
        self.rows = {"image": 0, "host": 0}
        self.rows_differing = 0
        self.cells_differing = {"finite": 0, "non-finite": 0, "non-numeric": 0}
        self.examples: list[dict[str, Any]] = []
        self.names: dict[Any, str] = {}
        self.evidence = TableEvidence({})

    # ---------------------------------------------------------------- feeding

    def header(self, image: list[str], host: list[str]) -> None:
        """CSV: the two header rows; the image's names label cells by index."""
        self.columns = {"image": list(image), "host": list(host)}
        self.names = dict(enumerate(image))
        self.evidence = TableEvidence(self.names)

    def learn(self, side: str, row: dict[Any, Any]) -> None:
        """JSON: note the leaf paths of one side's row (the image's also name cells)."""
        ids = self.ids[side]
        for cid in row:
            if cid not in ids:
                ids[cid] = None
                if side == "image":
                    self.names[cid] = path_text(cid)
                    self.evidence.add_column(cid, self.names[cid])

    def same(self, count: int, finite: int) -> None:
        """`count` rows equal on both sides, holding `finite` finite numbers each side."""
        self.rows["image"] += count
        self.rows["host"] += count
        self.stats.pairs += finite

    def extra(self, side: str, count: int) -> None:
        """Rows one side has beyond the other's last row."""
        self.rows[side] += count

    def row(self, row_i: dict[Any, Any], row_h: dict[Any, Any]) -> None:
        """One pair of rows that may differ: cells by column id (CsvNumber, text or JSON values)."""
        index = self.rows["image"]
        self.rows["image"] += 1
        self.rows["host"] += 1
        bad = {}
        stats, seen = self.stats, self.evidence
        for cid in list(row_i) + [c for c in row_h if c not in row_i]:
            a, b = row_i.get(cid, ABSENT), row_h.get(cid, ABSENT)
            na, nb = _number(a), _number(b)
            if na is not None and nb is not None:
                stats.add(na, nb)
                if na == nb:
                    continue
                seen.cell(index, cid, na, nb)
                if close_enough(na, nb, self.atol, self.rtol):
                    continue
                kind = "finite" if is_finite(na) and is_finite(nb) else "non-finite"
            elif isinstance(a, CsvNumber) or isinstance(b, CsvNumber) or not exactly_equal(a, b):
                kind = "non-numeric"
            else:
                continue
            self.cells_differing[kind] += 1
            name = self.names.get(cid) or (f"column {cid + 1}" if isinstance(cid, int) else path_text(cid))
            bad[name] = {"image": _shown(a), "host": _shown(b)}
        seen.end_row(index, bad)
        if bad:
            self.rows_differing += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append({"row": index, "cells": bad})

    # ---------------------------------------------------------------- verdict

    def _column_difference(self, details: dict[str, Any]) -> str | None:
        p = self.path
        if self.ordered:
            image, host = self.columns["image"], self.columns["host"]
            if image == host:
                return None
            only_i = [c for c in image if c not in host]
            only_h = [c for c in host if c not in image]
        else:
            ids_i, ids_h = self.ids["image"], self.ids["host"]
            if set(ids_i) == set(ids_h):
                return None
            image, host = [path_text(c) for c in ids_i], [path_text(c) for c in ids_h]
            only_i = [path_text(c) for c in ids_i if c not in ids_h]
            only_h = [path_text(c) for c in ids_h if c not in ids_i]
        details.update(columns_image=image, columns_host=host)
        if not only_i and not only_h:
            # Same names, other order or other repetitions of a name.
            kind = "order" if sorted(image) == sorted(host) else "repetitions"
            return f"{p}: column {kind} differs (image: {short_list(image)}; host: {short_list(host)})"
        parts = []
        if only_i:
            parts.append(f"only in image: {short_list(only_i)}")
        if only_h:
            parts.append(f"only in host: {short_list(only_h)}")
        return f"{p}: columns differ ({'; '.join(parts)})"

    def finish(self, details: dict[str, Any]) -> tuple[str, str]:
        """(status, summary); the evidence goes into `details`."""
        p, atol, rtol = self.path, self.atol, self.rtol
        problem = self._column_difference(details)
        if problem:
            return "differs", problem
        details["columns"] = self.columns["image"] if self.ordered else [path_text(c) for c in self.ids["image"]]
        rows, rows_h = self.rows["image"], self.rows["host"]
        if rows != rows_h:
            details.update(rows_image=rows, rows_host=rows_h)
            return "differs", f"{p}: image has {plural(rows, 'row')}, host {rows_h}"
        stats, cells = self.stats, self.cells_differing
        max_abs, max_rel = stats.max_abs_diff(), stats.max_rel_diff()
        details.update(
            rows=rows,
            rows_differing=self.rows_differing,
            cells_differing=sum(cells.values()),
            non_finite_cells_differing=cells["non-finite"],
            non_numeric_cells_differing=cells["non-numeric"],
            numeric_pairs=stats.pairs,
            max_abs_diff=max_abs,
            max_rel_diff=max_rel,
            first_differences=self.examples,
            **self.evidence.details(),
        )
        if self.rows_differing:
            summary = f"{p}: {self.rows_differing} of {plural(rows, 'row')} {differ(self.rows_differing)}"
            if stats.pairs:
                summary += f", max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)}"
            for kind in ("non-finite", "non-numeric"):
                if cells[kind]:
                    summary += f"; {plural(cells[kind], kind + ' cell')} {differ(cells[kind])}"
            if atol or rtol:
                summary += f" ({tolerance_text(atol, rtol)})"
            return "differs", summary
        if stats.max_abs:
            return "equivalent", (
                f"{p}: bytes differ but the data is equal within {tolerance_text(atol, rtol)} "
                f"({plural(rows, 'row')}; max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)})"
            )
        return "equivalent", f"{p}: bytes differ but the data is equal ({plural(rows, 'row')})"


# -------------------------------------------------------------------- CSV


def _texts(record: Any) -> list[str]:
    return [cell.decode("utf-8") for cell in record.split(b",")] if isinstance(record, bytes) else record


def _csv_row(cells: list[Any]) -> dict[int, Any]:
    return {i: csv_cell(text) for i, text in enumerate(cells)}


def _differing_csv_row(table: TableComparison, a: Any, b: Any, same_cells: list[bytes]) -> None:
    """One pair of CSV records whose bytes differ: identical cells only counted, the rest compared."""
    if isinstance(a, bytes) and isinstance(b, bytes):
        ca, cb = a.split(b","), b.split(b",")
        row_i, row_h = {}, {}
        for i, x in enumerate(ca):
            if i < len(cb) and cb[i] == x:
                same_cells.append(x)
            else:
                row_i[i] = csv_cell(x.decode("utf-8"))
        for i in range(len(cb)):
            if i >= len(ca) or ca[i] != cb[i]:
                row_h[i] = csv_cell(cb[i].decode("utf-8"))
        table.row(row_i, row_h)
        return
    table.row(_csv_row(_texts(a)), _csv_row(_texts(b)))


def _count_same(lines: list[bytes]) -> int:
    counted = count_finite_with_labels(lines)
    return count_finite_slowly(cell for line in lines for cell in line.split(b",")) if counted is None else counted


def _records(batches: Iterator[list[Any]]) -> Iterator[list[Any]]:
    return (batch for batch in batches if batch)


def compare_csv(path: str, image: Source, host: Source, *, atol: float, rtol: float,
                details: dict[str, Any]) -> tuple[str, str]:
    """Two CSV sources (header row first) compared in one pass; raises Unparsable naming every bad side."""
    table = TableComparison(path, atol=atol, rtol=rtol, ordered=True)
    batches = {"image": _records(csv_batches(image)), "host": _records(csv_batches(host))}
    _pair(table, batches, _pair_csv, header=True)
    return table.finish(details)


def _pair_csv(table: TableComparison, seg_i: list[Any], seg_h: list[Any]) -> None:
    same: list[bytes] = []        # identical lines: their numbers are counted a block at a time
    same_cells: list[bytes] = []  # identical cells of differing lines, likewise
    pending = 0                   # identical rows not yet added to the row count
    for a, b in zip(seg_i, seg_h):
        if a == b:
            if type(a) is bytes:
                same.append(a)
            else:
                table.stats.pairs += count_finite_slowly(cell.encode("utf-8") for cell in a)
            pending += 1
            continue
        if pending:
            table.same(pending, 0)
            pending = 0
        _differing_csv_row(table, a, b, same_cells)
    table.same(pending, _count_same(same) + _count_same(same_cells))


def _count_extra(table: TableComparison, side: str, records: list[Any]) -> None:
    table.extra(side, len(records))


def _pair(table: TableComparison, batches: dict[str, Iterator[list[Any]]], pair: Any, *, header: bool,
          extra: Any = _count_extra) -> None:
    """Align the two sides' record batches and hand equal-length segments to `pair`; errors from both sides."""
    buffers: dict[str, list[Any]] = {"image": [], "host": []}
    errors: dict[str, str] = {}

    def fill(side: str) -> bool:
        while not buffers[side] and side not in errors:
            try:
                batch = next(batches[side], None)
            except Unparsable as exc:
                errors[side] = str(exc)
                return False
            if batch is None:
                return False
            buffers[side] = batch
        return bool(buffers[side])

    if header:
        got = {side: fill(side) for side in ("image", "host")}
        heads = {side: _texts(buffers[side].pop(0)) if got[side] else [] for side in ("image", "host")}
        if not errors:
            table.header(heads["image"], heads["host"])
    while True:
        has_i, has_h = fill("image"), fill("host")
        if errors:
            for side in ("image", "host"):
                while fill(side):  # parse the other side to its end: its own first error is reported too
                    buffers[side] = []
            raise Unparsable("; ".join(errors[side] for side in ("image", "host") if side in errors))
        if not (has_i and has_h):
            for side, has in (("image", has_i), ("host", has_h)):
                while has:
                    extra(table, side, buffers[side])
                    buffers[side] = []
                    has = fill(side)
                    if errors:
                        raise Unparsable(errors[side])
            return
        n = min(len(buffers["image"]), len(buffers["host"]))
        seg_i, seg_h = buffers["image"][:n], buffers["host"][:n]
        buffers["image"], buffers["host"] = buffers["image"][n:], buffers["host"][n:]
        pair(table, seg_i, seg_h)


# -------------------------------------------------------------------- JSON lines


def _jsonl_batches(source: Source, side: str, size: int = 1024) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for number, line in jsonl_lines(source):
        batch.append((number, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_row(side: str, number: int, line: str) -> dict[Any, Any]:
    value = json_loads(line, f"{side} line {number}")
    if not isinstance(value, dict):
        raise Unparsable(f"{side} line {number} is a JSON {json_type(value)}, expected an object")
    return flatten(value, (), {})


def compare_jsonl(path: str, image: Source, host: Source, *, atol: float, rtol: float,
                  details: dict[str, Any]) -> tuple[str, str]:
    """Two JSON-lines sources compared in one pass; raises Unparsable naming every bad side."""
    table = TableComparison(path, atol=atol, rtol=rtol, ordered=False)
    batches = {side: _parsed_jsonl(source, side) for side, source in (("image", image), ("host", host))}
    _pair(table, batches, _pair_jsonl, header=False, extra=_extra_jsonl)
    return table.finish(details)


def _extra_jsonl(table: TableComparison, side: str, records: list[Any]) -> None:
    # Rows beyond the other side's last still bring their columns.
    for _, row in records:
        table.learn(side, row)
    table.extra(side, len(records))


def _parsed_jsonl(source: Source, side: str) -> Iterator[list[Any]]:
    # Parsed as read; after a bad line the rest is still read, since a bad byte
    # anywhere outranks it (the whole-file reader decodes before it parses).
    for batch in _jsonl_batches(source, side):
        try:
            yield [(line, _jsonl_row(side, number, line)) for number, line in batch]
        except Unparsable:
            source.drain()
            raise


def _pair_jsonl(table: TableComparison, seg_i: list[Any], seg_h: list[Any]) -> None:
    for (line_i, row_i), (line_h, row_h) in zip(seg_i, seg_h):
        table.learn("image", row_i)
        table.learn("host", row_h)
        if line_i == line_h:
            table.same(1, sum(1 for v in row_i.values() if is_number(v) and is_finite(v)))
        else:
            table.row(row_i, row_h)


def feed_rows(table: TableComparison, rows_i: Iterable[dict], rows_h: Iterable[dict]) -> None:
    """JSON rows in memory (a JSON array), in order; rows beyond the other side's only counted and learned."""
    rows_i, rows_h = list(rows_i), list(rows_h)
    for row in rows_i:
        table.learn("image", row)
    for row in rows_h:
        table.learn("host", row)
    for row_i, row_h in zip(rows_i, rows_h):
        table.row(row_i, row_h)
    table.extra("image", max(0, len(rows_i) - len(rows_h)))
    table.extra("host", max(0, len(rows_h) - len(rows_i)))
