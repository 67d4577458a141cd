"""NumPy arrays (mode 'numeric' on .npy/.npz): `.npy` files and `.npz` archives of them, read without numpy.

The harness must not import numpy (the host side computes with the project's
own numpy). The .npy format is documented and small: the magic b"\\x93NUMPY",
a version, a header length, then a Python-literal dict with `descr` (the
dtype, e.g. '<f8'), `fortran_order` and `shape`, then the raw data. Numbers
are read with `array` (byte-swapped when the file's byte order is not this
machine's) a chunk at a time; dtype, shape and memory order must match
before values are compared, numbers under the tolerance (`close_enough`),
booleans and strings exactly. An `.npz` is a zip of .npy members, compared
member by member.
"""

from __future__ import annotations

import ast
import io
import struct
import sys
import zipfile
from array import array
from typing import IO, Any

from harness.compare.documents import Unparsable, both
from harness.compare.sources import CHUNK_SIZE, Source
from harness.compare.summaries import MAX_EXAMPLES, differ, plural, short_list, show_number, tolerance_text
from harness.compare.tolerance import DifferenceStats, close_enough, is_finite

__all__ = ["NpyHeader", "compare_arrays", "read_header"]

_MAGIC = b"\x93NUMPY"
# dtype kind + item size -> array typecode (struct for float16, which array lacks).
_CODES = {("f", 4): "f", ("f", 8): "d", ("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
          ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("b", 1): "B"}


class NpyHeader:
    """What the header of one .npy says: dtype string, memory order, shape, and where the data starts."""

    def __init__(self, descr: str, fortran_order: bool, shape: tuple[int, ...], offset: int) -> None:
        self.descr, self.fortran_order, self.shape, self.offset = descr, fortran_order, shape, offset
        self.order = descr[0] if descr[:1] in "<>|=" else "="
        self.kind, self.itemsize = descr.lstrip("<>|=")[:1], int(descr.lstrip("<>|=")[1:] or 0)
        self.count = 1
        for n in shape:
            self.count *= n

    @property
    def width(self) -> int:
        """Bytes per element (a 'U' item is 4 bytes per character)."""
        return self.itemsize * 4 if self.kind == "U" else self.itemsize


def read_header(stream: IO[bytes], side: str) -> NpyHeader:
    """Parse the .npy header at the stream's position; raises Unparsable saying what is wrong."""
    start = stream.read(len(_MAGIC) + 2)
    if start[:len(_MAGIC)] != _MAGIC or len(start) < len(_MAGIC) + 2:
        raise Unparsable(f"{side} is not a .npy file (expected the magic \\x93NUMPY, found {start[:8]!r})")
    major = start[len(_MAGIC)]
    if major not in (1, 2, 3):
        raise Unparsable(f"{side} is a .npy file of version {major}, expected 1, 2 or 3")
    size_bytes = stream.read(2 if major == 1 else 4)
    (length,) = struct.unpack("<H" if major == 1 else "<I", size_bytes.ljust(2 if major == 1 else 4, b"\0"))
    text = stream.read(length)
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin-1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise Unparsable(f"{side} has an unreadable .npy header ({text[:80]!r})") from None
    if not isinstance(descr, str) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise Unparsable(f"{side} has a structured or unusual dtype ({descr!r}); compare it with mode 'bitwise'")
    parsed = NpyHeader(descr, bool(fortran), shape, len(_MAGIC) + 2 + len(size_bytes) + length)
    if (parsed.kind, parsed.itemsize) not in _CODES and parsed.kind not in ("U", "S") and (parsed.kind, parsed.itemsize) != ("f", 2):
        raise Unparsable(f"{side} has dtype {descr!r}, which mode 'npy' does not read (floats, ints, bools, strings); "
                         "compare it with mode 'bitwise'")
    return parsed


def _values(header: NpyHeader, data: bytes) -> list[Any]:
    """Elements of one block of raw data, as Python values."""
    kind, size = header.kind, header.itemsize
    if kind == "f" and size == 2:
        return list(struct.unpack(f"{'>' if header.order == '>' else '<'}{len(data) // 2}e", data))
    if kind in ("U", "S"):
        width, codec = header.width, ("utf-32-be" if header.order == ">" else "utf-32-le") if kind == "U" else None
        items = [data[i:i + width] for i in range(0, len(data), width)]
        return [item.decode(codec).rstrip("\0") if codec else item.rstrip(b"\0") for item in items]
    values = array(_CODES[(kind, size)])
    values.frombytes(data)
    if size > 1 and header.order in "<>" and (header.order == ">") != (sys.byteorder == "big"):
        values.byteswap()
    return [bool(v) for v in values] if kind == "b" else values.tolist()


def _index(header: NpyHeader, flat: int) -> list[int]:
    """The multi-index of the flat position (C order, or Fortran order when the file says so)."""
    dims = list(header.shape)
    out = []
    for n in (dims if header.fortran_order else reversed(dims)):
        out.append(flat % n if n else 0)
        flat //= n or 1
    return out if header.fortran_order else out[::-1]


def _compare_one(label: str, image: IO[bytes], host: IO[bytes], *, atol: float, rtol: float, details: dict[str, Any],
                 chunk_size: int) -> tuple[str, str]:
    hi, hh = both(lambda side: read_header(*side), (image, "image"), (host, "host"))
    for name, a, b in (("dtype", hi.descr, hh.descr), ("shape", hi.shape, hh.shape), ("fortran_order", hi.fortran_order, hh.fortran_order)):
        if a != b:
            details.update({f"{name}_image": a, f"{name}_host": b})
            return "differs", f"{label}: {name} differs (image {a}, host {b})"
    details.update(dtype=hi.descr, shape=list(hi.shape))
    numeric = hi.kind in ("f", "i", "u")
    stats, differing, examples = DifferenceStats(), 0, []
    step = max(1, chunk_size // max(1, hi.width)) * hi.width
    done = 0
    while done < hi.count:
        want = min(step, (hi.count - done) * hi.width)
        block_i, block_h = image.read(want), host.read(want)
        if len(block_i) < want or len(block_h) < want:
            short = [side for side, block in (("image", block_i), ("host", block_h)) if len(block) < want]
            raise Unparsable("; ".join(f"{side} ends before its {plural(hi.count, 'element')}" for side in short))
        values_i = _values(hi, block_i)
        if block_i == block_h:
            if numeric:
                total = sum(values_i) if hi.kind == "f" else 0
                stats.pairs += len(values_i) if total - total == 0 else sum(1 for v in values_i if is_finite(v))
        else:
            for k, (a, b) in enumerate(zip(values_i, _values(hh, block_h))):
                if numeric:
                    stats.add(a, b)
                    equal = close_enough(a, b, atol, rtol)
                else:
                    equal = a == b
                if not equal:
                    differing += 1
                    if len(examples) < MAX_EXAMPLES:
                        shown = (a, b) if not isinstance(a, bytes) else (a.decode("latin-1"), b.decode("latin-1"))
                        examples.append({"index": _index(hi, done + k), "image": shown[0], "host": shown[1]})
        done += len(values_i)
    max_abs, max_rel = stats.max_abs_diff(), stats.max_rel_diff()
    details.update(values=hi.count, values_differing=differing, numeric_pairs=stats.pairs, max_abs_diff=max_abs,
                   max_rel_diff=max_rel, first_differences=examples)
    values = plural(hi.count, "value")
    if differing:
        summary = f"{label}: {differing} of {values} {differ(differing)}"
        if stats.pairs:
            summary += f", max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)}"
        return "differs", summary + (f" ({tolerance_text(atol, rtol)})" if atol or rtol else "")
    if stats.max_abs:
        return "equivalent", (f"{label}: bytes differ but the array is equal within {tolerance_text(atol, rtol)} "
                              f"({values}; max abs diff {show_number(max_abs)}, max rel diff {show_number(max_rel)})")
    return "equivalent", f"{label}: bytes differ but the array is equal ({values})"


def _archive(data: bytes, side: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise Unparsable(f"{side} is not a .npz archive ({exc})") from None


def compare_arrays(path: str, image: Source, host: Source, *, atol: float, rtol: float, details: dict[str, Any],
                   archive: bool = False, chunk_size: int = CHUNK_SIZE) -> tuple[str, str]:
    """(status, summary) of two .npy files, or two .npz archives member by member; raises Unparsable."""
    if not archive:
        return _compare_one(path, _Raw(image), _Raw(host), atol=atol, rtol=rtol, details=details, chunk_size=chunk_size)
    archives = both(lambda source: _archive(source.whole(), source.side), image, host)
    names_i, names_h = sorted(archives[0].namelist()), sorted(archives[1].namelist())
    if names_i != names_h:
        only_i = [n for n in names_i if n not in names_h]
        only_h = [n for n in names_h if n not in names_i]
        details.update(members_image=names_i, members_host=names_h)
        parts = [f"only in image: {short_list(only_i)}"] * bool(only_i) + [f"only in host: {short_list(only_h)}"] * bool(only_h)
        return "differs", f"{path}: members differ ({'; '.join(parts)})"
    members: dict[str, Any] = {}
    moved, summaries = [], []
    for name in names_i:
        member: dict[str, Any] = {}
        with archives[0].open(name) as a, archives[1].open(name) as b:
            if a.read() == b.read():
                members[name] = {"status": "identical"}
                continue
        with archives[0].open(name) as a, archives[1].open(name) as b:
            try:
                status, summary = _compare_one(f"{path}:{name}", a, b, atol=atol, rtol=rtol, details=member, chunk_size=chunk_size)
            except Unparsable as exc:
                status, summary = "differs", f"{path}:{name}: {exc}"
        members[name] = {"status": status, "summary": summary, **member}
        if status == "differs":
            moved.append(name)
            summaries.append(summary)
    details["members"] = members
    if moved:
        return "differs", f"{path}: {len(moved)} of {plural(len(names_i), 'array')} {differ(len(moved))}: " + "; ".join(summaries[:MAX_EXAMPLES])
    return "equivalent", f"{path}: bytes differ but every array is equal ({plural(len(names_i), 'array')})"


class _Raw:
    """A Source read as a plain byte stream (the .npy reader wants exact byte counts)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def read(self, n: int) -> bytes:
        return self.source.read(n)
