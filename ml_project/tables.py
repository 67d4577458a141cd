"""Reading and writing the CLIs' tables (CSV with header, JSON lines), with strict validation.

Floats are written with repr() (shortest round-trip), so equal text means equal
bits. Every problem in an input file becomes a ProjectError naming the row and
column.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml_project import atomic
from ml_project.config import TABLE_EXTENSIONS
from ml_project.errors import ProjectError


def table_format(path: Path, option: str) -> str:
    """'.csv' or '.jsonl' from the extension of `path`; anything else is an error."""
    ext = Path(path).suffix.lower()
    if ext not in TABLE_EXTENSIONS:
        found = f"'{ext}'" if ext else "no extension"
        raise ProjectError(
            f"{option} '{path}' has {found}; expected one of {', '.join(TABLE_EXTENSIONS)}: "
            "rename the file or pick a supported format"
        )
    return ext


# ---------------------------------------------------------------- reading


def read_features(path: Path, names: Sequence[str]) -> np.ndarray:
    """Read a .csv/.jsonl feature table into a float64 array with columns in `names` order."""
    fmt = table_format(path, "--input")
    text = _read_text(Path(path))
    shape = f"a header line with the {len(names)} feature names and one row per sample"
    if fmt == ".jsonl":
        shape = f"one JSON object per line with the {len(names)} feature names as keys"
    if not text.strip():
        raise ProjectError(f"input file '{path}' is empty; expected {shape}: regenerate or fix the file")
    rows = _parse_csv(text, path, names) if fmt == ".csv" else _parse_jsonl(text, path, names)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))


def _read_text(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ProjectError(
            f"input file '{path}' not found; expected an existing .csv or .jsonl file: check the path"
        ) from None
    except IsADirectoryError:
        raise ProjectError(
            f"input '{path}' is a directory; expected a .csv or .jsonl file: pass the file itself"
        ) from None
    except UnicodeDecodeError as exc:
        raise ProjectError(
            f"input file '{path}' is not UTF-8 text (invalid byte at offset {exc.start}); "
            "expected a UTF-8 CSV or JSON-lines file: re-export it as UTF-8"
        ) from None
    except OSError as exc:
        raise ProjectError(
            f"cannot read input file '{path}': {exc.strerror or exc}; check that it exists and is readable"
        ) from None


def _list(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _closest(column: str, candidates: Sequence[str]) -> str | None:
    """The expected name `column` was probably renamed from (same words reordered, or a close spelling)."""
    words = sorted(column.lower().replace("-", "_").replace(" ", "_").split("_"))
    for name in candidates:
        if sorted(name.split("_")) == words:
            return name
    close = difflib.get_close_matches(column, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _check_columns(found: Sequence[str], names: Sequence[str], where: str) -> None:
    """Raise unless `found` holds exactly the feature `names` (any order), naming the differences."""
    duplicates = sorted({c for c in found if list(found).count(c) > 1})
    if duplicates:
        raise ProjectError(
            f"{where}: duplicate column(s) {_list(duplicates)}; expected each feature name once: remove the duplicates"
        )
    expected, present = set(names), set(found)
    missing = [n for n in names if n not in present]
    extra = [c for c in found if c not in expected]
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"missing column(s) {_list(missing)}")
    if extra:
        hints = []
        for col in extra:
            close = _closest(col, missing or list(names))
            hints.append(f"{col!r} (renamed from {close!r}?)" if close else repr(col))
        shown = ", ".join(hints[:5]) + (f" and {len(hints) - 5} more" if len(hints) > 5 else "")
        parts.append(f"unexpected column(s) {shown}")
    raise ProjectError(
        f"{where}: {'; '.join(parts)}; expected exactly the {len(names)} feature names "
        f"({names[0]!r} ... {names[-1]!r}, listed in the model's manifest.json): rename or remove the columns"
    )


def _number(value: Any, where: str, *, cell: bool = False) -> float:
    """A finite float from a CSV cell (cell=True, text) or a JSON value (must be a number), else ProjectError."""
    if cell and isinstance(value, str):
        text = value.strip()
        try:
            if "_" in text:
                raise ValueError(text)
            number = float(text)
        except ValueError:
            shown = repr(value) if text else "an empty cell"
            raise ProjectError(
                f"non-numeric value {shown} at {where}; expected a finite number: fix or remove that row"
            ) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        raise ProjectError(
            f"non-numeric value ({_json_kind(value)}) at {where}; expected a JSON number: fix or remove that row"
        )
    if not math.isfinite(number):
        kind = "NaN" if math.isnan(number) else "infinite value"
        shown = f" {value.strip()!r}" if isinstance(value, str) else ""
        raise ProjectError(
            f"{kind}{shown} at {where}; NaN and inf are rejected, expected a finite number: impute or drop that row"
        )
    return number


def _parse_csv(text: str, path: Path, names: Sequence[str]) -> list[list[float]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        _check_columns(header, names, f"header of '{path}'")
        order = [header.index(n) for n in names]
        rows: list[list[float]] = []
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):  # blank line
                continue
            where = f"row {len(rows) + 1} (line {reader.line_num})"
            if len(cells) != len(header):
                raise ProjectError(
                    f"{where} of '{path}' has {len(cells)} cells; "
                    f"expected {len(header)}, one per header column: fix that row"
                )
            rows.append([_number(cells[i], f"{where}, column {header[i]!r} of '{path}'", cell=True) for i in order])
    except csv.Error as exc:
        raise ProjectError(
            f"'{path}' is not valid CSV at line {reader.line_num} ({exc}); "
            "expected comma-separated values: fix the file"
        ) from None
    if not rows:
        raise ProjectError(
            f"input file '{path}' has a header but no data rows; "
            f"expected at least one row of {len(names)} numbers: add rows"
        )
    return rows


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs, so duplicate keys stay visible."""


def _json_kind(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return f"the JSON string {json.dumps(value[:40])}"
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return f"JSON {json.dumps(value)}"
    return f"the JSON number {value!r}"


def _parse_jsonl(text: str, path: Path, names: Sequence[str]) -> list[list[float]]:
    rows: list[list[float]] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"row {len(rows) + 1} (line {line_no}) of '{path}'"
        try:
            pairs = json.loads(line, object_pairs_hook=_Pairs)
        except json.JSONDecodeError as exc:
            raise ProjectError(
                f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); "
                "expected one JSON object per line: fix that line"
            ) from None
        except ValueError as exc:  # e.g. an integer literal past Python's 4300-digit limit
            raise ProjectError(
                f"{where} cannot be read as JSON ({str(exc).splitlines()[0][:120]}); "
                "expected one JSON object of numbers per line: fix that line"
            ) from None
        if not isinstance(pairs, _Pairs):
            raise ProjectError(
                f"{where} is {_json_kind(pairs)}; expected a JSON object mapping feature name to number: fix that line"
            )
        keys = [k for k, _ in pairs]
        _check_columns(keys, names, where)
        obj = dict(pairs)
        rows.append([_number(obj[n], f"{where}, column {n!r}") for n in names])
    return rows


# ---------------------------------------------------------------- writing


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_features(path: Path, names: Sequence[str], X: np.ndarray) -> None:
    """Write a feature table (.csv with header, or .jsonl objects keyed by name) atomically."""
    fmt = table_format(path, "--out")
    values = [[float(v) for v in row] for row in np.asarray(X, dtype=np.float64)]
    if fmt == ".csv":
        text = _csv_text(names, [[repr(v) for v in row] for row in values])
    else:
        text = "".join(json.dumps(dict(zip(names, row, strict=True))) + "\n" for row in values)
    atomic.write_text(Path(path), text)


def write_predictions(path: Path, classes: Sequence[Any], labels: Sequence[Any], proba: np.ndarray) -> None:
    """Write predictions atomically: .csv `label,proba_<class>,...` or .jsonl `{"label", "proba"}`."""
    fmt = table_format(path, "--out")
    plain_classes = [_plain(c) for c in classes]
    plain_labels = [_plain(label) for label in labels]
    probs = [[float(p) for p in row] for row in np.asarray(proba, dtype=np.float64)]
    if fmt == ".csv":
        header = ["label"] + [f"proba_{c}" for c in plain_classes]
        text = _csv_text(
            header, [[str(lab)] + [repr(p) for p in row] for lab, row in zip(plain_labels, probs, strict=True)]
        )
    else:
        text = "".join(
            json.dumps({"label": lab, "proba": row}, sort_keys=True) + "\n"
            for lab, row in zip(plain_labels, probs, strict=True)
        )
    atomic.write_text(Path(path), text)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (so JSON/str output never says 'np.int64(1)')."""
    return value.item() if isinstance(value, np.generic) else value
