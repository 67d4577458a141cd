"""Pure comparison of what the lock promised, the image holds, and the host ran.

Everything here works on plain data (probe dicts, version mappings, file
bytes) and returns frozen dataclasses, so the judgement of "reproducible or
not" can be tested exhaustively without Docker and re-run on recorded data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping

# Installer tooling: pip-sync leaves these alone, and so does the comparison,
# because virtualenv/ensurepip put them everywhere at unrelated versions.
DEFAULT_IGNORED_PACKAGES = frozenset({"pip", "setuptools", "wheel", "pip-tools", "distribute", "pkg-resources"})

SEVERITIES = ("drift", "note")
HOST_EXTRAS = ("drift", "note", "ignore")
PYTHON_POLICIES = ("exact", "minor", "ignore")
ARTIFACT_MODES = ("bitwise", "numeric", "json", "hash")
ARTIFACT_STATUSES = ("identical", "equivalent", "differs", "missing")

ABSENT = "-"
MAX_EXAMPLES = 5


def plain(value: Any) -> Any:
    """Reduce evidence to what survives a JSON round trip unchanged.

    Tuples become lists, mapping keys strings, and non-finite floats the
    strings 'nan', 'inf', '-inf': strict JSON has no such numbers, and
    NaN != NaN would break report equality after a round trip.
    """
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    raise TypeError(f"expected JSON-serialisable evidence, found {type(value).__name__}: {value!r}")


@dataclass(frozen=True)
class Difference:
    category: str
    subject: str
    message: str
    severity: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Difference {self.subject!r}: severity={self.severity!r}, expected one of {SEVERITIES}")
        object.__setattr__(self, "details", plain(self.details))


def normalize_name(name: str) -> str:
    """PEP 503 normalisation: lowercase, runs of '-', '_', '.' become one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _normalized(packages: Mapping[str, str]) -> dict[str, str]:
    return {normalize_name(name): str(version).strip() for name, version in packages.items()}


def compare_packages(
    lock: Mapping[str, str],
    image: Mapping[str, str],
    host: Mapping[str, str] | None,
    *,
    ignore: Iterable[str] = DEFAULT_IGNORED_PACKAGES,
    host_extras: str = "note",
) -> list[Difference]:
    """One Difference per package whose lock, image and host versions disagree.

    The image must equal the lock exactly (as pip-sync would leave it); the host
    only needs every locked package at its locked version, since it usually
    also carries the test tooling. host=None means the host was not run.
    Versions are compared as exact strings: the lock pins what pip installs.
    """
    if host_extras not in HOST_EXTRAS:
        raise ValueError(f"host_extras={host_extras!r}, expected one of {HOST_EXTRAS}")
    ignored = {normalize_name(name) for name in ignore}
    lock_n, image_n = _normalized(lock), _normalized(image)
    host_n = _normalized(host) if host is not None else None
    names = set(lock_n) | set(image_n) | set(host_n or ())

    differences = []
    extras: dict[str, str] = {}
    for name in sorted(names - ignored):
        want, got_image = lock_n.get(name), image_n.get(name)
        got_host = host_n.get(name) if host_n is not None else None
        problems: list[tuple[str, str]] = []
        if want is None and got_image is not None:
            problems.append(("drift", "in image but not in lock"))
        elif want is not None and got_image is None:
            problems.append(("drift", "missing from image"))
        elif want != got_image:
            problems.append(("drift", "image version differs from lock"))
        if host_n is not None:
            if want is not None and got_host is None:
                problems.append(("drift", "missing from host"))
            elif want is not None and got_host != want:
                problems.append(("drift", "host version differs from lock"))
            elif want is None and got_host is not None and got_image is None and host_extras != "ignore":
                # An unlocked package on both sides is already the image's drift.
                problems.append((host_extras, "on host but not in lock"))
        if not problems:
            continue
        if problems == [("note", "on host but not in lock")]:
            extras[name] = got_host or ABSENT  # summarised below: one note, not one per tool
            continue
        severity = "drift" if any(s == "drift" for s, _ in problems) else "note"
        host_text = "not run" if host_n is None else (got_host or ABSENT)
        differences.append(
            Difference(
                category="package",
                subject=name,
                message=f"{name}: lock {want or ABSENT}, image {got_image or ABSENT}, host {host_text}",
                severity=severity,
                details={
                    "lock": want,
                    "image": got_image,
                    "host": got_host,
                    "host_run": host_n is not None,
                    "problems": [problem for _, problem in problems],
                },
            )
        )
    if extras:
        listed = ", ".join(f"{n} {v}" for n, v in extras.items())
        differences.append(
            Difference(
                category="package",
                subject="host extras",
                message=f"host extras: {len(extras)} package(s) on the host are not in the lock (allowed by host_extras='note'): {listed}",
                severity="note",
                details={"packages": dict(extras)},
            )
        )
    return differences


_VERSION = re.compile(r"(\d+)\.(\d+)(.*)$")


def compare_python(image: str, host: str, *, policy: str = "minor") -> list[Difference]:
    """Python version agreement under a policy: 'exact', 'minor' (patch may differ) or 'ignore' (minor may differ)."""
    if policy not in PYTHON_POLICIES:
        raise ValueError(f"policy={policy!r}, expected one of {PYTHON_POLICIES}")
    if image == host:
        return []
    base = f"python: image {image}, host {host}"
    details = {"image": image, "host": host, "policy": policy}
    mi, mh = _VERSION.match(image.strip()), _VERSION.match(host.strip())
    if mi is None or mh is None:
        bad = image if mi is None else host
        return [
            Difference(
                "python", "python",
                f"{base} (cannot compare: expected a version like 3.11.7, found {bad!r})",
                "drift", {**details, "level": "unparsable"},
            )
        ]
    if mi.group(1) != mh.group(1):
        level = "major"
    elif mi.group(2) != mh.group(2):
        level = "minor"
    else:
        level = "patch"
    details["level"] = level
    if policy == "exact":
        return [Difference("python", "python", f"{base} (policy 'exact' requires identical versions)", "drift", details)]
    if level == "patch":
        return [Difference("python", "python", f"{base} (patch level differs; policy '{policy}' allows it)", "note", details)]
    if level == "minor" and policy == "ignore":
        return [Difference("python", "python", f"{base} (minor version differs; policy 'ignore' allows it)", "note", details)]
    required = "major.minor" if policy == "minor" else "major"
    return [
        Difference(
            "python", "python",
            f"{base} ({level} version differs; policy '{policy}' requires the same {required} version)",
            "drift", details,
        )
    ]


def _show(value: Any) -> str:
    if value is None:
        return "unknown"
    if value == "":
        return '""'
    return str(value)


def _pools_by_api(pools: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for pool in pools:
        grouped.setdefault(str(pool.get("user_api")), []).append(pool)
    return grouped


def _pool_values(pools: list[Mapping[str, Any]], key: str) -> str:
    # Several libraries can serve one API (numpy and scipy each vendor an
    # OpenBLAS); what matters is the set of values in use, not load order.
    return "/".join(sorted({_show(pool.get(key)) for pool in pools}))


def compare_environments(image: Mapping, host: Mapping, *, python_policy: str = "minor") -> list[Difference]:
    """Differences between two probe dicts that can change what a model computes.

    Executable paths and kernel releases are deliberately not compared: they
    differ between any container and host without changing a single number.
    """
    differences: list[Difference] = []
    py_i, py_h = image.get("python", {}), host.get("python", {})
    differences += compare_python(str(py_i.get("version")), str(py_h.get("version")), policy=python_policy)
    if py_i.get("implementation") != py_h.get("implementation"):
        differences.append(
            Difference(
                "python", "implementation",
                f"python implementation: image {_show(py_i.get('implementation'))}, host {_show(py_h.get('implementation'))}",
                "drift", {"image": py_i.get("implementation"), "host": py_h.get("implementation")},
            )
        )

    pl_i, pl_h = image.get("platform", {}), host.get("platform", {})
    for key, severity in (("system", "drift"), ("machine", "drift"), ("libc", "note")):
        if pl_i.get(key) != pl_h.get(key):
            differences.append(
                Difference(
                    "platform", key,
                    f"platform {key}: image {_show(pl_i.get(key))}, host {_show(pl_h.get(key))}",
                    severity, {"image": pl_i.get(key), "host": pl_h.get(key)},
                )
            )

    raw_i, raw_h = image.get("threadpools", []), host.get("threadpools", [])
    unknown = [side for side, raw in (("image", raw_i), ("host", raw_h)) if raw is None]
    if unknown:
        # The probe found no threadpoolctl there: thread pools are unknown, not absent.
        differences.append(
            Difference(
                "threads", "inspection",
                f"threads: not inspected in {' and '.join(unknown)} (threadpoolctl is not installed there)",
                "note", {"unknown": unknown},
            )
        )
    th_i, th_h = _pools_by_api(raw_i or []), _pools_by_api(raw_h or [])
    for api in sorted(set(th_i) | set(th_h)) if not unknown else ():
        pools_i, pools_h = th_i.get(api, []), th_h.get(api, [])
        if not pools_i or not pools_h:
            side, other, pools = ("image", "host", pools_i) if pools_i else ("host", "image", pools_h)
            differences.append(
                Difference(
                    "threads", api,
                    f"threads: {api} loaded in {side} ({_pool_values(pools, 'internal_api')}), none in {other}",
                    "drift", {"image": [dict(p) for p in pools_i], "host": [dict(p) for p in pools_h]},
                )
            )
            continue
        # Architecture (the OpenBLAS kernel picked for the CPU) can change
        # results too, but it follows the hardware, so it is only reported.
        for key, severity in (("internal_api", "drift"), ("num_threads", "drift"), ("version", "drift"), ("architecture", "note")):
            vi, vh = _pool_values(pools_i, key), _pool_values(pools_h, key)
            if vi != vh:
                differences.append(
                    Difference(
                        "threads", f"{api}.{key}",
                        f"threads: {api} {key} image {vi}, host {vh}",
                        severity, {"image": vi, "host": vh},
                    )
                )

    env_i, env_h = image.get("env", {}), host.get("env", {})
    for name in sorted(set(env_i) | set(env_h)):
        vi, vh = env_i.get(name), env_h.get(name)
        if vi != vh:
            shown_i = "unset" if vi is None else _show(vi)
            shown_h = "unset" if vh is None else _show(vh)
            differences.append(
                Difference("env", name, f"{name}: image {shown_i}, host {shown_h}", "drift", {"image": vi, "host": vh})
            )
    return differences


# ---------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class ArtifactRule:
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
    path: str
    mode: str
    status: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ARTIFACT_STATUSES:
            raise ValueError(f"artifact {self.path!r}: status={self.status!r}, expected one of {ARTIFACT_STATUSES}")
        object.__setattr__(self, "details", plain(self.details))


class _Unparsable(Exception):
    """Content that cannot be read in the rule's mode; the message says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else format(value, ".3g")


def _tolerance(rule: ArtifactRule) -> str:
    return f"atol {rule.atol:g}, rtol {rule.rtol:g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    # math.isfinite would convert huge ints to float and overflow.
    return isinstance(value, int) or math.isfinite(value)


def numbers_close(a: int | float, b: int | float, atol: float, rtol: float) -> bool:
    """NOT differing: a == b, both NaN, or |a-b| <= atol + rtol * max(|a|, |b|).

    Symmetric on purpose (unlike numpy.isclose), so swapping image and host
    never changes a verdict. Evaluated in exact rational arithmetic: float
    rounding or overflow (1e308 - -1e308) must not decide close calls, and
    huge integers must not be rounded into equality. An infinity only matches
    the same infinity: inf - x <= rtol * inf would otherwise hold for any x.
    """
    if a == b:
        return True
    a_nan = isinstance(a, float) and math.isnan(a)
    b_nan = isinstance(b, float) and math.isnan(b)
    if a_nan or b_nan:
        return a_nan and b_nan
    if not (_finite(a) and _finite(b)):
        return False
    fa, fb = Fraction(a), Fraction(b)
    return abs(fa - fb) <= Fraction(atol) + Fraction(rtol) * max(abs(fa), abs(fb))


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


class _Stats:
    """Running maximum of absolute and relative differences over finite number pairs."""

    def __init__(self) -> None:
        self.pairs = 0
        self.max_abs = Fraction(0)
        self.max_rel = Fraction(0)

    def add(self, a: int | float, b: int | float) -> None:
        if not (_finite(a) and _finite(b)):
            return
        self.pairs += 1
        if a == b:
            return
        fa, fb = Fraction(a), Fraction(b)
        diff = abs(fa - fb)
        self.max_abs = max(self.max_abs, diff)
        scale = max(abs(fa), abs(fb))
        if scale:
            self.max_rel = max(self.max_rel, diff / scale)

    def max_abs_diff(self) -> float | None:
        return _to_float(self.max_abs) if self.pairs else None

    def max_rel_diff(self) -> float | None:
        return _to_float(self.max_rel) if self.pairs else None


_ABSENT_CELL = object()
# ASCII only: int() also accepts other scripts' digits, which no CSV writer emits.
_INT_TEXT = re.compile(r" *[+-]?[0-9]+ *")
_FLOAT_TEXT = re.compile(r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *| *[+-]?(nan|inf|infinity) *", re.IGNORECASE)


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


def _decode(data: bytes, side: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Unparsable(f"{side} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _json_loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unparsable(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise _Unparsable(f"{where} is JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer beyond int()'s digit limit
        raise _Unparsable(f"{where} is not readable JSON ({exc})") from None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if _is_number(value):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _flatten(value: Any, prefix: tuple, out: dict[tuple, Any]) -> dict[tuple, Any]:
    """Leaves by path tuple (str for object keys, int for list indexes).

    Tuples, not strings, so that {"a.b": 1} and {"a": {"b": 1}} stay two
    different leaves; empty containers are leaves themselves.
    """
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, prefix + (k,), out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _flatten(v, prefix + (i,), out)
    else:
        out[prefix] = value
    return out


def _path_text(path: tuple) -> str:
    """'a.b', 'proba[0]', or '(root)' for a document that is one value."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


@dataclass
class _Table:
    columns: list[str]          # display names, in file order
    rows: list[dict[Any, Any]]  # cell values by column id
    ids: list[Any]              # column ids: indexes for CSV, leaf paths for JSON
    ordered: bool               # CSV: the header row itself must match; JSON: the set of leaf paths


def _parse_csv(text: str, side: str) -> _Table:
    try:
        records = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise _Unparsable(f"{side} is not valid CSV ({exc})") from None
    if not records:
        return _Table([], [], [], True)
    header, body = records[0], records[1:]
    rows = []
    for record in body:
        row: dict[Any, Any] = {}
        for i, cell in enumerate(record):
            number = _csv_number(cell)
            row[i] = cell if number is None else _CsvNumber(cell, number)
        rows.append(row)
    return _Table(list(header), rows, list(range(len(header))), True)


@dataclass(frozen=True)
class _CsvNumber:
    """A CSV cell that reads as a number; the text is kept for evidence."""

    text: str
    value: int | float


def _rows_from_objects(objects: list[Any], where: Any) -> _Table:
    columns: dict[tuple, None] = {}
    rows = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise _Unparsable(f"{where(index)} is a JSON {_json_type(obj)}, expected an object")
        row = _flatten(obj, (), {})
        columns.update(dict.fromkeys(row))
        rows.append(row)
    ids = list(columns)
    return _Table([_path_text(i) for i in ids], rows, ids, False)


def _parse_table(path: str, data: bytes, side: str) -> _Table:
    text = _decode(data, side)
    suffix = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if suffix == "csv":
        return _parse_csv(text, side)
    if suffix in ("jsonl", "ndjson"):
        objects, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                objects.append(_json_loads(line, f"{side} line {number}"))
                lines.append(number)
        return _rows_from_objects(objects, lambda i: f"{side} line {lines[i]}")
    value = _json_loads(text, side)
    if not isinstance(value, list):
        raise _Unparsable(f"{side} is a JSON {_json_type(value)}, expected an array of objects")
    return _rows_from_objects(value, lambda i: f"{side} element {i}")


def _cell_number(cell: Any) -> int | float | None:
    if isinstance(cell, _CsvNumber):
        return cell.value
    if _is_number(cell):
        return cell
    return None


def _cell_evidence(cell: Any) -> Any:
    if cell is _ABSENT_CELL:
        return "(absent)"
    if isinstance(cell, _CsvNumber):
        return cell.text
    return cell


def _exactly_equal(a: Any, b: Any) -> bool:
    # Type-aware: JSON true is not 1, and "1" is not 1.
    return type(a) is type(b) and a == b


def _cells_equal(a: Any, b: Any, rule: ArtifactRule, stats: _Stats) -> tuple[bool, str]:
    """(equal, kind) for one pair of cells, kind being 'finite', 'non-finite' or 'non-numeric'."""
    na, nb = _cell_number(a), _cell_number(b)
    if na is not None and nb is not None:
        stats.add(na, nb)
        kind = "finite" if _finite(na) and _finite(nb) else "non-finite"
        return numbers_close(na, nb, rule.atol, rule.rtol), kind
    if isinstance(a, _CsvNumber) or isinstance(b, _CsvNumber):
        return False, "non-numeric"
    return _exactly_equal(a, b), "non-numeric"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _differ(count: int) -> str:
    return "differs" if count == 1 else "differ"


def _short_list(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_EXAMPLES])
    return shown + (f" (+{len(names) - MAX_EXAMPLES} more)" if len(names) > MAX_EXAMPLES else "")


def _compare_numeric(rule: ArtifactRule, image: _Table, host: _Table, details: dict[str, Any]) -> tuple[str, str]:
    p = rule.path
    same = image.columns == host.columns if image.ordered else set(image.ids) == set(host.ids)
    if not same:
        if image.ordered:
            only_i = [c for c in image.columns if c not in host.columns]
            only_h = [c for c in host.columns if c not in image.columns]
        else:
            only_i = [_path_text(c) for c in image.ids if c not in set(host.ids)]
            only_h = [_path_text(c) for c in host.ids if c not in set(image.ids)]
        details.update(columns_image=image.columns, columns_host=host.columns)
        if not only_i and not only_h:
            # Same names, other order or other repetitions of a name.
            kind = "order" if sorted(image.columns) == sorted(host.columns) else "repetitions"
            return "differs", f"{p}: column {kind} differs (image: {_short_list(image.columns)}; host: {_short_list(host.columns)})"
        parts = []
        if only_i:
            parts.append(f"only in image: {_short_list(only_i)}")
        if only_h:
            parts.append(f"only in host: {_short_list(only_h)}")
        return "differs", f"{p}: columns differ ({'; '.join(parts)})"
    details["columns"] = image.columns
    if len(image.rows) != len(host.rows):
        details.update(rows_image=len(image.rows), rows_host=len(host.rows))
        return "differs", f"{p}: image has {_plural(len(image.rows), 'row')}, host {len(host.rows)}"

    stats = _Stats()
    names = dict(zip(image.ids, image.columns))
    rows_differing = 0
    cells_differing = {"finite": 0, "non-finite": 0, "non-numeric": 0}
    examples = []
    for index, (row_i, row_h) in enumerate(zip(image.rows, host.rows)):
        bad = {}
        ids = list(row_i) + [c for c in row_h if c not in row_i]
        for cid in ids:
            a, b = row_i.get(cid, _ABSENT_CELL), row_h.get(cid, _ABSENT_CELL)
            equal, kind = _cells_equal(a, b, rule, stats)
            if not equal:
                cells_differing[kind] += 1
                name = names.get(cid) or (f"column {cid + 1}" if isinstance(cid, int) else _path_text(cid))
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
        summary = f"{p}: {rows_differing} of {_plural(rows, 'row')} {_differ(rows_differing)}"
        if stats.pairs:
            summary += f", max abs diff {_fmt(max_abs)}, max rel diff {_fmt(max_rel)}"
        for kind in ("non-finite", "non-numeric"):
            if cells_differing[kind]:
                summary += f"; {_plural(cells_differing[kind], kind + ' cell')} {_differ(cells_differing[kind])}"
        if rule.atol or rule.rtol:
            summary += f" ({_tolerance(rule)})"
        return "differs", summary
    if stats.max_abs:
        return "equivalent", (
            f"{p}: bytes differ but the data is equal within {_tolerance(rule)} "
            f"({_plural(rows, 'row')}; max abs diff {_fmt(max_abs)}, max rel diff {_fmt(max_rel)})"
        )
    return "equivalent", f"{p}: bytes differ but the data is equal ({_plural(rows, 'row')})"


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
    leaves_i, leaves_h = _flatten(image, base, {}), _flatten(host, base, {})
    stats = _Stats()
    differing = []
    examples = []
    paths = list(leaves_i) + [k for k in leaves_h if k not in leaves_i]
    for path in paths:
        a, b = leaves_i.get(path, _ABSENT_CELL), leaves_h.get(path, _ABSENT_CELL)
        if a is _ABSENT_CELL or b is _ABSENT_CELL:
            equal = False
        elif _is_number(a) and _is_number(b):
            stats.add(a, b)
            equal = numbers_close(a, b, rule.atol, rule.rtol)
        else:
            equal = _exactly_equal(a, b)
        if not equal:
            differing.append(_path_text(path))
            if len(examples) < MAX_EXAMPLES:
                examples.append({"key": _path_text(path), "image": _cell_evidence(a), "host": _cell_evidence(b)})
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
    if differing:
        summary = f"{label}: {len(differing)} of {_plural(len(paths), 'value')} {_differ(len(differing))}: {_short_list(differing)}"
        if stats.max_abs:
            summary += f"; max abs diff {_fmt(max_abs)}, max rel diff {_fmt(max_rel)}"
        return "differs", summary
    if stats.max_abs:
        return "equivalent", (
            f"{label}: bytes differ but the JSON data is equal within {_tolerance(rule)} "
            f"({_plural(len(paths), 'value')}; max abs diff {_fmt(max_abs)}, max rel diff {_fmt(max_rel)})"
        )
    return "equivalent", f"{label}: bytes differ but the JSON data is equal ({_plural(len(paths), 'value')})"


def _hash_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _compare_hash(rule: ArtifactRule, image: Any, host: Any, details: dict[str, Any]) -> tuple[str, str]:
    vi, vh, problem = _keyed(rule, image, host, details)
    if problem:
        return "differs", problem
    details.update(value_image=vi, value_host=vh)
    if _exactly_equal(vi, vh):
        return "equivalent", f"{rule.path} {rule.key}: {_hash_text(vi)} on both sides (other bytes differ)"
    return "differs", f"{rule.path} {rule.key}: image {_hash_text(vi)}, host {_hash_text(vh)}"


def _parse_both(parse: Callable[[bytes, str], Any], image: bytes, host: bytes) -> tuple[Any, Any, str | None]:
    """Parse both sides; on failure a reason naming every side that failed."""
    values, errors = [], []
    for side, data in (("image", image), ("host", host)):
        try:
            values.append(parse(data, side))
        except _Unparsable as exc:
            values.append(None)
            errors.append(str(exc))
    return values[0], values[1], "; ".join(errors) or None


def compare_artifact(rule: ArtifactRule, image: bytes | None, host: bytes | None) -> ArtifactResult:
    """Compare one produced file from image and host under its rule; never raises on content."""
    p = rule.path
    if image is None or host is None:
        where = "both" if image is None and host is None else ("image" if image is None else "host")
        details = {side: _sha256(data) for side, data in (("image", image), ("host", host)) if data is not None}
        return ArtifactResult(p, rule.mode, "missing", f"{p}: missing from {where}", {"missing_from": where, "sha256": details})

    details: dict[str, Any] = {
        "sha256": {"image": _sha256(image), "host": _sha256(host)},
        "bytes": {"image": len(image), "host": len(host)},
    }
    if image == host:
        return ArtifactResult(p, rule.mode, "identical", f"{p}: identical ({len(image)} bytes, sha256 {_sha256(image)[:12]})", details)
    if rule.mode != "bitwise":
        details.update(atol=rule.atol, rtol=rule.rtol)
        if rule.key:
            details["key"] = rule.key

    if rule.mode == "bitwise":
        offset = _first_difference(image, host)
        details["first_differing_byte"] = offset
        sha_i, sha_h = details["sha256"]["image"][:12], details["sha256"]["host"][:12]
        return ArtifactResult(p, rule.mode, "differs", (
            f"{p}: bytes differ from offset {offset} (image {len(image)} bytes, sha256 {sha_i}; "
            f"host {len(host)} bytes, sha256 {sha_h})"
        ), details)
    try:
        status, summary, error = _compare_content(rule, image, host, details)
    except RecursionError:
        error = "content is nested too deeply to compare"
        status, summary = "differs", f"{p}: {error}"
    if error:
        details["unparsable"] = error
    return ArtifactResult(p, rule.mode, status, summary, details)


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
    if rule.mode == "numeric":
        ti, th, error = _parse_both(lambda data, side: _parse_table(p, data, side), image, host)
        if error:
            return "differs", f"{p}: {error}", error
        return (*_compare_numeric(rule, ti, th, details), None)
    ji, jh, error = _parse_both(lambda data, side: _json_loads(_decode(data, side), side), image, host)
    if error:
        return "differs", f"{p}: {error}", error
    if rule.mode == "json":
        return (*_compare_json(rule, ji, jh, details), None)
    return (*_compare_hash(rule, ji, jh, details), None)


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
