"""Streaming comparison (issue 15): same verdicts as the whole-file rules, at any chunk size; arrays; Parquet; the CLI."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from harness.compare import ArtifactRule, compare_artifact, compare_files, compare_streams, numbers_close
from harness.compare.cells import MAX_LABELS_MASKED, count_finite, count_finite_slowly, count_finite_with_labels
from harness.compare.tables import compare_tables, parse_table
from harness.compare.tolerance import DifferenceStats, close_enough
from tests.optional import optional_python

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------ the float fast path


floats = st.floats(allow_nan=True, allow_infinity=True)
tolerances = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e3), st.sampled_from([1e-12, 1e-9, 5e-324, 1e-300]))


@settings(max_examples=500)
@given(floats, floats, tolerances, tolerances)
@example(1.0, 1.5, 0.5, 0.0)                      # exactly at the border
@example(0.1, 0.2, 0.1, 0.0)                      # 0.2 - 0.1 rounds above 0.1 in float, not exactly
@example(5e-324, 0.0, 0.0, 0.0)
@example(5e-324, 1e-323, 5e-324, 0.0)
@example(1e308, -1e308, 0.0, 1.0)
def test_close_enough_is_numbers_close(a, b, atol, rtol):
    assert close_enough(a, b, atol, rtol) == numbers_close(a, b, atol, rtol)


@settings(max_examples=300)
@given(st.floats(min_value=-2.0, max_value=2.0), st.integers(-3, 3), st.sampled_from([1e-12, 1e-9, 0.5, 0.1]))
def test_close_enough_at_ulp_distance_from_the_border(x, ulps, atol):
    # Pairs placed within a few ulps of |a - b| == atol: the exact rule must decide them.
    y = x + atol
    for _ in range(abs(ulps)):
        y = math.nextafter(y, math.inf if ulps > 0 else -math.inf)
    assert close_enough(x, y, atol, 0.0) == numbers_close(x, y, atol, 0.0)


def finite(x):
    return isinstance(x, int) or math.isfinite(x)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.one_of(floats, st.integers(-10**20, 10**20)), st.one_of(floats, st.integers(-10**20, 10**20))), max_size=30))
@example([(0.5, 0.5 + 1e-12)] * 5 + [(0.75, 0.75 + 1e-12)])  # many ties of the same float difference
@example([(1e308, -1e308), (1.0, 2.0)])
@example([(1, 2.5), (0.1, 0.2), (0.2, 0.1)])
def test_difference_stats_are_exact(pairs):
    stats = DifferenceStats()
    for a, b in pairs:
        stats.add(a, b)
    exact = [(Fraction(a), Fraction(b)) for a, b in pairs if finite(a) and finite(b)]
    assert stats.pairs == len(exact)
    assert stats.max_abs == max((abs(a - b) for a, b in exact), default=Fraction(0))
    assert stats.max_rel == max((abs(a - b) / max(abs(a), abs(b)) for a, b in exact if a or b), default=Fraction(0))


# ------------------------------------------------------------ counting identical lines

number_cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-10**25, 10**25).map(str),
    st.from_regex(r"[+-]?[0-9]{0,3}\.?[0-9]{0,3}([eE][+-]?[0-9]{0,4})?", fullmatch=True),
    st.text("0123456789.,+-eE", max_size=6),
    st.sampled_from(["nan", "inf", " 1", "1e400", "9" * 320, "1_0", ""]),
)


@settings(max_examples=500)
@given(st.lists(st.lists(number_cells, min_size=1, max_size=6).map(",".join), min_size=1, max_size=8))
@example(["1-2"])
@example(["1e5-3,2"])
@example(["-,1"])
@example(["1,.,2"])
def test_block_count_of_finite_numbers_is_exact_or_declines(lines):
    lines = [line.encode() for line in lines if line]
    counted = count_finite(lines)
    slow = count_finite_slowly(cell for line in lines for cell in line.split(b","))
    assert counted in (None, slow)


label_cells = st.one_of(number_cells, st.sampled_from(["setosa", "virginica", "e", "x1", "1x", "é", "0", "nan", "-inf", "a b"]),
                        st.text(min_size=1, max_size=4).filter(lambda t: "," not in t and "\n" not in t and "\r" not in t))


@settings(max_examples=500)
@given(st.lists(st.lists(label_cells, min_size=1, max_size=6).map(",".join), min_size=1, max_size=8))
@example(["setosa,1.5,setosa,setosa"])
@example(["0,a", "a,0"])
def test_block_count_with_label_cells_is_exact_or_declines(lines):
    lines = [line.encode() for line in lines if line]
    counted = count_finite_with_labels(lines)
    assert counted in (None, count_finite_slowly(cell for line in lines for cell in line.split(b",")))


def test_a_label_column_is_counted_fast_and_too_many_labels_decline():
    lines = [f"{i}.5,{1e-3 * i!r},{['setosa', 'versicolor', 'virginica'][i % 3]}".encode() for i in range(30)]
    assert count_finite(lines) is None and count_finite_with_labels(lines) == 60
    many = [f"{i}.5,label{i}".encode() for i in range(MAX_LABELS_MASKED + 1)]
    assert count_finite_with_labels(many) is None and count_finite_with_labels(many[:MAX_LABELS_MASKED]) == MAX_LABELS_MASKED


def test_block_count_decides_the_common_shapes():
    lines = [b"0.123,1e-05,-3,+.5,7.,12345678901234567890", b"1.5E+10,-0.0,0"]
    assert count_finite(lines) == 9 == count_finite_slowly(c for line in lines for c in line.split(b","))


# ------------------------------------------------------------ streaming == whole file


def whole_file(rule, image: bytes, host: bytes):
    """The whole-file reference: both sides parsed in memory, every row compared cell by cell."""
    details: dict = {}
    ti, th = parse_table(rule.path, image, "image"), parse_table(rule.path, host, "host")
    status, summary = compare_tables(rule.path, ti, th, atol=rule.atol, rtol=rule.rtol, details=details)
    return status, summary, details


cell_values = st.one_of(
    st.floats(min_value=-1e3, max_value=1e3), st.floats(), st.integers(-10**20, 10**20),
    st.sampled_from(["cat", "", "nan", "1e-05"]),
)


@st.composite
def table_pairs(draw):
    """Two CSV files of the same columns: rows equal, perturbed by tiny or large amounts, or replaced."""
    columns = draw(st.integers(1, 4))
    rows = draw(st.integers(0, 25))
    header = ",".join(f"c{i}" for i in range(columns))
    image, host = [header], [header]
    for _ in range(rows):
        values = [draw(cell_values) for _ in range(columns)]
        text = [repr(v) if isinstance(v, float) else str(v) for v in values]
        image.append(",".join(text))
        change = draw(st.sampled_from(["same", "same", "tiny", "large", "text"]))
        other = list(text)
        k = draw(st.integers(0, columns - 1))
        if change == "tiny" and isinstance(values[k], float):
            other[k] = repr(values[k] + draw(st.sampled_from([1e-12, -1e-12, 1e-9])))
        elif change == "large":
            other[k] = repr(draw(st.floats(-1e3, 1e3)))
        elif change == "text":
            other[k] = draw(st.sampled_from(["dog", "1", '"1,2"', "inf"]))
        host.append(",".join(other))
    extra = draw(st.sampled_from(["", "", "\n", "\r\n"]))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return (ending.join(image) + ending).encode(), (ending.join(host) + ending + extra).encode()


COMPARED_KEYS = ("rows", "rows_differing", "cells_differing", "non_finite_cells_differing", "non_numeric_cells_differing",
                 "numeric_pairs", "max_abs_diff", "max_rel_diff", "first_differences", "columns", "evidence")


@settings(max_examples=200)
@given(table_pairs(), st.sampled_from([0.0, 1e-9, 1e-6]), st.sampled_from([0.0, 1e-6]), st.integers(1, 64))
def test_streaming_gives_the_whole_file_verdict_at_any_chunk_size(pair, atol, rtol, chunk):
    image, host = pair
    assume(image != host)  # identical bytes are settled before any reading (test_compare.py)
    rule = ArtifactRule("p.csv", "numeric", atol=atol, rtol=rtol)
    status, summary, details = whole_file(rule, image, host)
    streamed = compare_streams(rule, io.BytesIO(image), io.BytesIO(host), chunk_size=chunk)
    assert (streamed.status, streamed.summary) == (status, summary)
    assert {k: streamed.details.get(k) for k in COMPARED_KEYS} == {k: details.get(k) for k in COMPARED_KEYS}
    # The bytes API gives the same result as the stream API.
    assert compare_artifact(rule, image, host) == compare_streams(rule, io.BytesIO(image), io.BytesIO(host), chunk_size=7)


jsonl_rows = st.lists(st.dictionaries(st.sampled_from(["a", "b", "p"]), st.one_of(st.floats(-10, 10), st.integers(-5, 5),
                                      st.lists(st.floats(0, 1), max_size=2), st.none()), max_size=3), max_size=12)


@settings(max_examples=150)
@given(jsonl_rows, jsonl_rows, st.integers(1, 40), st.sampled_from([0.0, 1e-6]))
def test_jsonl_streaming_matches_the_whole_file(rows_i, rows_h, chunk, atol):
    image = "".join(json.dumps(r) + "\n" for r in rows_i).encode()
    host = ("\n".join(json.dumps(r) for r in rows_h) + "\n\n").encode()
    rule = ArtifactRule("p.jsonl", "numeric", atol=atol)
    status, summary, details = whole_file(rule, image, host)
    streamed = compare_streams(rule, io.BytesIO(image), io.BytesIO(host), chunk_size=chunk)
    assert (streamed.status, streamed.summary) == (status, summary)
    assert {k: streamed.details.get(k) for k in COMPARED_KEYS} == {k: details.get(k) for k in COMPARED_KEYS}


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_bad_bytes_and_csv_errors_are_named_as_the_whole_file_reader_names_them(chunk):
    rule = ArtifactRule("p.csv", "numeric")
    cases = [
        (b"a\n\xff\n", b"a\n1\n", "p.csv: image is not valid UTF-8 (invalid start byte at byte 2)"),
        (b"\xef\xbb\xbfa\n1\n\xff\n", b"a\n1\n2\n", "p.csv: image is not valid UTF-8 (invalid start byte at byte 4)"),
        (b"a\n1\n", b'a\n"' + b"x" * 140000 + b'"\n\xe2\n', "p.csv: host is not valid UTF-8 (invalid continuation byte at byte 140005)"),
        (b"a\n1\n", b'a\n"' + b"x" * 140000 + b'"\n', "p.csv: host is not valid CSV (field larger than field limit (131072))"),
    ]
    for image, host, expected in cases:
        result = compare_streams(rule, io.BytesIO(image), io.BytesIO(host), chunk_size=chunk)
        assert (result.status, result.summary) == ("differs", expected)
        assert result == compare_artifact(rule, image, host)


def test_quoted_fields_spanning_chunks():
    image = b'id,text,p\n1,"a\nb,c",0.5\n2,"x",0.25\n'
    host = b'id,text,p\n1,"a\nb,c",0.5\n2,"x",0.2500001\n'
    for chunk in (1, 4, 9, 64):
        result = compare_streams(ArtifactRule("p.csv", "numeric"), io.BytesIO(image), io.BytesIO(host), chunk_size=chunk)
        assert result.summary == "p.csv: 1 of 2 rows differs, max abs diff 1e-07, max rel diff 4e-07"


def test_files_api_hashes_and_sizes_like_the_bytes_api(tmp_path):
    image, host = b"a,b\n1,2\n" * 1000, b"a,b\n1,2\n" * 999 + b"a,b\n1,3\n"
    (tmp_path / "i.csv").write_bytes(image)
    (tmp_path / "h.csv").write_bytes(host)
    for mode in ("numeric", "bitwise"):
        rule = ArtifactRule("p.csv", mode)
        assert compare_files(rule, tmp_path / "i.csv", tmp_path / "h.csv", chunk_size=100) == compare_artifact(rule, image, host)
    assert compare_files(ArtifactRule("p.csv"), tmp_path / "nope", tmp_path / "h.csv").status == "missing"


# ------------------------------------------------------------ arrays (.npy / .npz, no numpy in the harness)


def npy(descr: str, shape: tuple, data: bytes, fortran: bool = False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def test_npy_written_by_numpy_is_read_without_it(tmp_path):
    np = pytest.importorskip("numpy")  # the project's environment has numpy: the writer, not the reader
    a = np.arange(12, dtype="<f8").reshape(3, 4)
    b = a.copy()
    b[2, 1] += 1e-3
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "c.npy", a.astype(">f8"))
    rule = ArtifactRule("p.npy", "numeric")
    result = compare_files(rule, tmp_path / "a.npy", tmp_path / "b.npy", chunk_size=16)
    assert result.summary == "p.npy: 1 of 12 values differs, max abs diff 0.001, max rel diff 0.000111"
    assert result.details["first_differences"] == [{"index": [2, 1], "image": 9.0, "host": 9.001}]
    assert compare_files(ArtifactRule("p.npy", "numeric", atol=1e-2), tmp_path / "a.npy", tmp_path / "b.npy").status == "equivalent"
    assert compare_files(rule, tmp_path / "a.npy", tmp_path / "c.npy").summary == "p.npy: dtype differs (image <f8, host >f8)"


def test_npy_dtypes_shapes_and_bad_files():
    rule = ArtifactRule("p.npy", "numeric")
    ints = npy("<i4", (3,), (1).to_bytes(4, "little") + (2).to_bytes(4, "little") + (3).to_bytes(4, "little"))
    other = npy("<i4", (3,), (1).to_bytes(4, "little") + (2).to_bytes(4, "little") + (4).to_bytes(4, "little"))
    big = npy(">i4", (3,), (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + (4).to_bytes(4, "big"))
    assert compare_artifact(rule, ints, other).summary == "p.npy: 1 of 3 values differs, max abs diff 1, max rel diff 0.25"
    assert compare_artifact(rule, ints, npy("<i4", (1, 3), ints[-12:])).summary == "p.npy: shape differs (image (3,), host (1, 3))"
    assert compare_artifact(rule, other[:-1] + b"\x00", big).summary == "p.npy: dtype differs (image <i4, host >i4)"
    words = npy("<U2", (2,), "ab".encode("utf-32-le") + "c".encode("utf-32-le") + b"\0" * 4)
    assert compare_artifact(rule, words, npy("<U2", (2,), "ab".encode("utf-32-le") + "d".encode("utf-32-le") + b"\0" * 4)).summary == \
        "p.npy: 1 of 2 values differs"
    assert compare_artifact(rule, b"not an array", ints).summary == \
        "p.npy: image is not a .npy file (expected the magic \\x93NUMPY, found b'not an a')"
    assert compare_artifact(rule, ints[:-2], other).summary == "p.npy: image ends before its 3 elements"
    assert compare_artifact(rule, npy("<c16", (1,), b"\0" * 16), ints).summary.startswith(
        "p.npy: image has dtype '<c16', which mode 'npy' does not read")


def test_npz_member_by_member():
    def npz(members):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return out.getvalue()

    one = npy("<f8", (1,), (0.5).hex().encode()[:0] + bytes.fromhex("000000000000e03f"))
    two = npy("<f8", (1,), bytes.fromhex("000000000000e83f"))
    rule = ArtifactRule("m.npz", "numeric")
    assert compare_artifact(rule, npz({"x.npy": one, "y.npy": one}), npz({"x.npy": one, "y.npy": two})).summary == \
        "m.npz: 1 of 2 arrays differs: m.npz:y.npy: 1 of 1 value differs, max abs diff 0.25, max rel diff 0.333"
    assert compare_artifact(rule, npz({"x.npy": one}), npz({"z.npy": one})).summary == \
        "m.npz: members differ (only in image: x.npy; only in host: z.npy)"


# ------------------------------------------------------------ Parquet (optional: pyarrow)

BLOCK_PYARROW = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name.split('.')[0] == 'pyarrow': raise ImportError('blocked')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_parquet_without_pyarrow_is_one_line_exit_2(tmp_path):
    # Real: a subprocess in which pyarrow cannot be imported, whether or not it is installed here.
    (tmp_path / "a.parquet").write_bytes(b"PAR1....PAR1")
    code = BLOCK_PYARROW + "from harness.cli import main\nmain(['compare', 'a.parquet', 'a.parquet', '--mode', 'bitwise'])\n"
    same = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert same.returncode == 0, same.stderr  # bitwise needs no reader
    (tmp_path / "b.parquet").write_bytes(b"PAR1...!PAR1")
    code = BLOCK_PYARROW + "from harness.cli import main\nmain(['compare', 'a.parquet', 'b.parquet'])\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: comparing Parquet needs pyarrow, which is not importable here: pip install pyarrow "
        "(in the environment that runs mlrepro), or compare the file with mode 'bitwise'"
    ]


def pyarrow_python() -> str:
    """An interpreter with pyarrow (pyarrow is never a harness dependency)."""
    return optional_python("pyarrow.parquet")


def test_parquet_is_compared_as_a_table(tmp_path):
    python = pyarrow_python()
    script = (
        "import sys, pyarrow as pa, pyarrow.parquet as pq\n"
        "from harness.compare import ArtifactRule, compare_files\n"
        "pq.write_table(pa.table({'id': [1, 2, 3], 'p': [0.5, 0.25, 0.125]}), 'a.parquet')\n"
        "pq.write_table(pa.table({'id': [1, 2, 3], 'p': [0.5, 0.25, 0.1250001]}), 'b.parquet')\n"
        "print(compare_files(ArtifactRule('b.parquet', 'numeric'), 'a.parquet', 'b.parquet').summary)\n"
        "print(compare_files(ArtifactRule('b.parquet', 'numeric', atol=1e-6), 'a.parquet', 'b.parquet').status)\n"
    )
    done = subprocess.run([python, "-c", script], cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["b.parquet: 1 of 3 rows differs, max abs diff 1e-07, max rel diff 8e-07", "equivalent"]


# ------------------------------------------------------------ mlrepro compare


@pytest.fixture
def pair(tmp_path):
    (tmp_path / "i.csv").write_bytes(b"a,b\n1,0.5\n2,0.25\n")
    (tmp_path / "h.csv").write_bytes(b"a,b\n1,0.5000001\n2,0.25\n")
    return tmp_path


@pytest.mark.parametrize("args, code, line", [
    (["i.csv", "h.csv"], 1, "h.csv: 1 of 2 rows differs, max abs diff 1e-07, max rel diff 2e-07"),
    (["i.csv", "h.csv", "--atol", "1e-6"], 0, "h.csv: bytes differ but the data is equal within atol 1e-06, rtol 0 (2 rows; max abs diff 1e-07, max rel diff 2e-07)"),
    (["i.csv", "i.csv"], 0, "i.csv: identical (17 bytes, sha256 39a7c02e8c0a)"),
    (["i.csv", "h.csv", "--mode", "bitwise"], 1, "h.csv: bytes differ from offset 9 (image 17 bytes, sha256 39a7c02e8c0a; host 23 bytes, sha256 884760ff8e3c)"),
    (["i.csv", "nope.csv"], 2, "error: HOST_FILE: expected an existing file, found 'nope.csv'; check the path"),
    (["i.csv", "h.csv", "--rtol", "-1"], 2, "error: --rtol: expected a finite number >= 0, found '-1'; e.g. --rtol 1e-9"),
    (["i.csv", "h.csv", "--atol", "lots"], 2, "error: --atol: expected a finite number >= 0, found 'lots'; e.g. --atol 1e-9"),
    (["i.csv", "h.csv", "--mode", "hash"], 2, "error: --mode hash: expected --key naming the hash inside the JSON file, found none; e.g. --key canonical_hash"),
    (["i.csv", "h.csv", "--mode", "fuzzy"], 2, "error: Invalid value for '--mode': 'fuzzy' is not one of 'numeric', 'json', 'bitwise', 'hash', 'npy'; see 'mlrepro compare --help'"),
])
def test_compare_command(pair, monkeypatch, args, code, line):
    monkeypatch.chdir(pair)
    done = subprocess.run([str(Path(sys.executable).with_name("mlrepro")), "compare", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"})
    assert done.returncode == code
    assert (done.stdout + done.stderr).strip().splitlines() == [line]
