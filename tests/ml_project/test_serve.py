"""Unit tests for ml_project.serve: the worker's protocol, its rejections, exact floats, its CLI contract.

In-process through Server.handle / Server.serve (fast), plus end-to-end runs of
`python -m ml_project.serve` for EOF, startup errors and bad input mid-stream.
The round trip through the harness's client encoding (harness.parity.worker) is
checked here too: the two ends of the protocol must agree bit for bit.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")
pytest.importorskip("sklearn")
pytest.importorskip("skops")

REPO = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("ml_project") is None:  # plain `pytest` without the repo on sys.path
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.parity import decode_ready, decode_response, encode_request  # noqa: E402
from ml_project import dataset, predict, serve, train  # noqa: E402

NAMES = dataset.feature_names()
FINITE = st.floats(allow_nan=False, allow_infinity=False)


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "model"
    assert train.main(["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def server(model_dir: Path) -> serve.Server:
    return serve.Server(model_dir)


def holdout_rows(n: int = 5) -> list[dict[str, float]]:
    X = dataset.split(dataset.load()).X_test[:n]
    return [dict(zip(NAMES, map(float, row), strict=True)) for row in X]


def answer(server: serve.Server, obj: object) -> dict:
    line = server.handle(obj if isinstance(obj, (bytes, str)) else json.dumps(obj))
    assert line.endswith("\n") and line.count("\n") == 1
    return json.loads(line)


# ---------------------------------------------------------------- answers


def test_answers_match_predict_cli_bit_for_bit(server: serve.Server, model_dir: Path, tmp_path: Path) -> None:
    rows = holdout_rows(20)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert predict.main(["--model", str(model_dir), "--input", str(src), "--out", str(tmp_path / "out.jsonl")]) == 0
    expected = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    got = answer(server, {"id": 3, "rows": rows})
    assert got["id"] == 3 and set(got) == {"id", "labels", "proba"}
    assert got["labels"] == [e["label"] for e in expected]
    assert [list(map(bits, p)) for p in got["proba"]] == [list(map(bits, e["proba"])) for e in expected]


def test_column_order_and_integer_values_do_not_matter(server: serve.Server) -> None:
    row = holdout_rows(1)[0]
    reordered = dict(reversed(list(row.items())))
    assert answer(server, {"id": 1, "rows": [row]})["proba"] == answer(server, {"id": 1, "rows": [reordered]})["proba"]
    ints = {k: 1 for k in NAMES}
    floats = {k: 1.0 for k in NAMES}
    assert answer(server, {"id": "a", "rows": [ints]}) == answer(server, {"id": "a", "rows": [floats]})


def test_ready_line_names_features_and_classes(server: serve.Server) -> None:
    ready = decode_ready(server.ready_line())
    assert ready["features"] == NAMES and ready["classes"] == [0, 1] and isinstance(ready["pid"], int)


# ---------------------------------------------------------------- rejections (the worker keeps serving)


def _row(**changes: object) -> dict[str, object]:
    return {**holdout_rows(1)[0], **changes}


@pytest.mark.parametrize(
    ("request_line", "answer_id", "needle"),
    [
        (b"not json", None, "not valid JSON"),
        (b"\xff\xfe", None, "not valid JSON"),
        (b"[1]", None, "a JSON array"),
        (b'{"id": 1, "id": 2, "rows": []}', None, "repeats a key ('id')"),
        (b'{"id": true, "rows": []}', None, "'id' is JSON true"),
        (b'{"id": 4}', 4, "'rows' is missing"),
        (b'{"id": 4, "rows": []}', 4, "'rows' is an empty array"),
        (b'{"id": 4, "rows": {"a": 1}}', 4, "'rows' is a JSON object"),
        (b'{"id": 4, "rows": [1]}', 4, "row 1 is the JSON number 1"),
        (b'{"id": 4, "rows": [{}], "more": 1}', 4, "unexpected key(s) 'more'"),
        (json.dumps({"id": 5, "rows": [{k: 1.0 for k in NAMES[1:]}]}).encode(), 5, "missing column(s) 'mean_radius'"),
        (json.dumps({"id": 5, "rows": [_row(extra=1.0)]}).encode(), 5, "unexpected column(s) 'extra'"),
        (json.dumps({"id": 6, "rows": [_row(mean_radius="1.5")]}).encode(), 6, "non-numeric value (the JSON string \"1.5\")"),
        (json.dumps({"id": 6, "rows": [_row(mean_radius=None)]}).encode(), 6, "non-numeric value (JSON null)"),
        (json.dumps({"id": 6, "rows": [_row(mean_radius=True)]}).encode(), 6, "non-numeric value (JSON true)"),
        (json.dumps({"id": 7, "rows": [_row(), _row(mean_area=math.nan)]}).encode(), 7, "NaN at row 2, column 'mean_area'"),
        (json.dumps({"id": 7, "rows": [_row(mean_area=math.inf)]}).encode(), 7, "infinite value at row 1"),
        (json.dumps({"id": 7, "rows": [_row(mean_area=-math.inf)]}).encode(), 7, "infinite value at row 1"),
        (json.dumps({"id": 8, "rows": [_row()]}).encode().replace(b'"mean_area": ', b'"mean_area": 1e999, "x": '), 8, "unexpected column(s) 'x'"),
        (json.dumps({"id": 8, "rows": [_row()]}).encode().replace(b'"mean_area": ', b'"mean_area": 1e999, "mean_area": '), 8, "duplicate column(s) 'mean_area'"),
    ],
)
def test_bad_requests_get_one_error_line(server: serve.Server, request_line: bytes, answer_id: object, needle: str) -> None:
    got = answer(server, request_line)
    assert got == {"id": answer_id, "error": got["error"]}
    assert needle in got["error"], got["error"]
    assert "\n" not in got["error"] and "Traceback" not in got["error"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from([*NAMES[:3], "id", "rows", "x"]), inner, max_size=4),
    max_leaves=12,
)


@given(st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({"id": JSON_VALUES, "rows": JSON_VALUES}).map(lambda v: json.dumps(v).encode()))
@example(b'{"id": 1, "rows": [{"mean_radius": 1' + b"0" * 5000 + b"}]}")
def test_any_line_gets_exactly_one_json_answer(server: serve.Server, line: bytes) -> None:
    got = json.loads(server.handle(line), parse_constant=lambda token: pytest.fail(f"{token} in an answer"))
    assert set(got) in ({"id", "error"}, {"id", "labels", "proba"})


def test_overflowing_literal_counts_as_infinite(server: serve.Server) -> None:
    line = json.dumps({"id": 9, "rows": [_row(mean_area=1.0)]}).replace('"mean_area": 1.0', '"mean_area": 1e999')
    assert "infinite value at row 1, column 'mean_area'" in answer(server, line)["error"]
    huge_int = json.dumps({"id": 9, "rows": [_row(mean_area=1.0)]}).replace('"mean_area": 1.0', '"mean_area": ' + "9" * 400)
    assert "infinite value" in answer(server, huge_int)["error"]


def test_serve_loop_answers_every_line_in_order_and_survives_errors(server: serve.Server) -> None:
    first, second = (json.dumps({"id": i, "rows": holdout_rows(2)}) for i in (1, 2))
    stdin = io.BytesIO(f"{first}\nnot json\n\n{second}\n".encode())
    stdout = io.BytesIO()
    server.serve(stdin, stdout)
    lines = stdout.getvalue().decode().splitlines()
    assert len(lines) == 4  # ready, 3 answers (the blank line is not a request)
    assert json.loads(lines[0])["ready"] is True
    assert [json.loads(line)["id"] for line in lines[1:]] == [1, None, 2]
    assert "error" in json.loads(lines[2]) and "labels" in json.loads(lines[3])


# ---------------------------------------------------------------- exact floats, both ends of the protocol


@given(st.lists(st.fixed_dictionaries({n: FINITE for n in NAMES[:3]}), min_size=1, max_size=5), st.integers())
@example([{NAMES[0]: -0.0, NAMES[1]: 5e-324, NAMES[2]: 1.7976931348623157e308}], 0)
def test_client_encoding_parses_to_the_same_bits(rows: list[dict[str, float]], request_id: int) -> None:
    names = NAMES[:3]
    got_id, X = serve.parse_request(encode_request(request_id, rows), names)
    assert got_id == request_id
    assert [[bits(v) for v in r] for r in X.tolist()] == [[bits(r[n]) for n in names] for r in rows]


@given(st.lists(st.lists(FINITE, min_size=2, max_size=2), min_size=1, max_size=5), st.lists(st.integers(0, 1), min_size=5, max_size=5))
@example([[-0.0, 5e-324]], [0] * 5)
def test_response_encoding_decodes_to_the_same_bits(proba: list[list[float]], labels: list[int]) -> None:
    labels = labels[: len(proba)] + [0] * (len(proba) - len(labels))
    line = serve.encode({"id": 1, "labels": labels, "proba": proba})
    got = decode_response(line)
    assert got.labels == tuple(labels)
    assert [[bits(p) for p in row] for row in got.proba] == [[bits(p) for p in row] for row in proba]


def test_non_finite_output_becomes_an_error_not_a_nan_token() -> None:
    with pytest.raises(ValueError):
        serve.encode({"proba": [[math.nan]]})
    assert "NaN" not in serve.error_line(1, "x")


# ---------------------------------------------------------------- the CLI, end to end


def _serve(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ml_project.serve", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_cli_serves_until_eof_then_exits_0(model_dir: Path) -> None:
    rows = holdout_rows(3)
    stdin = "".join(json.dumps({"id": i, "rows": rows[i:i + 1]}) + "\n" for i in range(3)) + "garbage\n"
    proc = _serve("--model", str(model_dir), stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and decode_ready(lines[0])
    assert [decode_response(line).id for line in lines[1:]] == [0, 1, 2, None]
    assert proc.stderr.startswith("serve: model ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--model", "/nonexistent/model"), "does not exist"),
        ((), "the following arguments are required: --model"),
    ],
)
def test_cli_startup_errors_are_one_line_exit_2(args: tuple[str, ...], needle: str) -> None:
    proc = _serve(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr


def test_cli_rejects_bad_thread_setting_at_startup(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_PROJECT_THREADS", "zero")
    proc = _serve("--model", str(model_dir))
    assert proc.returncode == 2 and "ML_PROJECT_THREADS" in proc.stderr


def test_batch_and_single_rows_agree_with_numpy_reference(server: serve.Server) -> None:
    rows = holdout_rows(4)
    batch = answer(server, {"id": 1, "rows": rows})
    X = np.array([[r[n] for n in NAMES] for r in rows])
    assert batch["proba"] == server.model.predict_proba(X).tolist()
