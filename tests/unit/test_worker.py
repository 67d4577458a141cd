"""harness.parity.worker's pure parts (protocol, comparison, schema) and harness.parity.strategies, without Docker.

The Worker client runs over a fake stream (ids, ordering, crashes, timeouts,
evidence) and over a real host subprocess speaking a scripted protocol.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness.config import load_config
from harness.errors import MlreproError, StepError
from harness.parity.protocol import ProtocolError, Response, decode_ready, decode_response, differences, encode_request, same_bits
from harness.parity.schema import check_schema, read_schema
from harness.parity.strategies import NON_FINITE, SPECIAL_VALUES, batches, invalid_batches, rows
from harness.parity.worker import HostWorker, Worker, WorkerError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = [
    {"name": "a", "min": 0.0, "max": 1.0},
    {"name": "b", "min": -5.0, "max": 2500.5},
    {"name": "c", "min": 3.0, "max": 3.0},
]
FINITE = st.floats(allow_nan=False, allow_infinity=False)
ANY_FLOAT = st.floats()


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


# ---------------------------------------------------------------- protocol encoding


@given(st.lists(st.dictionaries(st.text(max_size=5), ANY_FLOAT, max_size=4), max_size=4), st.integers() | st.text(max_size=5))
@example([{"x": -0.0, "y": 5e-324, "z": math.nan, "w": -math.inf}], 0)
def test_request_is_one_line_and_round_trips_every_float_bit(rows_: list[dict[str, float]], request_id: int | str) -> None:
    line = encode_request(request_id, rows_)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = json.loads(line)
    assert back["id"] == request_id
    for sent, got in zip(rows_, back["rows"], strict=True):
        assert sent.keys() == got.keys()
        for key, value in sent.items():
            assert same_bits(value, got[key]) or (math.isnan(value) and math.isnan(got[key]))


@given(st.lists(st.lists(FINITE, min_size=1, max_size=3), max_size=5), st.integers() | st.text(max_size=5) | st.none())
def test_response_round_trips_exactly(proba: list[list[float]], request_id: object) -> None:
    labels = list(range(len(proba)))
    response = decode_response(json.dumps({"id": request_id, "labels": labels, "proba": proba}))
    assert response.ok and response.id == request_id and response.labels == tuple(labels)
    assert [[bits(p) for p in row] for row in response.proba] == [[bits(p) for p in row] for row in proba]
    assert decode_response(json.dumps(response.as_json())) == response


@given(st.text(max_size=40))
def test_error_response_round_trips(message: str) -> None:
    response = decode_response(json.dumps({"id": 3, "error": message}))
    assert not response.ok and response.error == message and decode_response(json.dumps(response.as_json())) == response


@given(st.binary(max_size=60) | st.text(max_size=60))
def test_decoding_garbage_raises_protocol_error_only(line: bytes | str) -> None:
    try:
        decode_response(line)
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("", "not JSON"),
        ("hello", "not JSON"),
        (b"\xff", "not UTF-8"),
        ("[1]", "with an 'id'"),
        ('{"labels": [], "proba": []}', "with an 'id'"),
        ('{"id": 1, "error": 5}', "error response"),
        ('{"id": 1, "error": "x", "labels": []}', "error response"),
        ('{"id": 1, "labels": [1]}', "keys id, labels, proba"),
        ('{"id": 1, "labels": [1], "proba": []}', "one entry per row"),
        ('{"id": 1, "labels": [1], "proba": [[NaN]]}', "token NaN"),
        ('{"id": 1, "labels": [1], "proba": [[Infinity]]}', "token Infinity"),
        ('{"id": 1, "labels": [1], "proba": [["0.5"]]}', "array of numbers"),
        ('{"id": 1, "labels": [1], "proba": [[true]]}', "array of numbers"),
    ],
)
def test_bad_responses_are_named(line: str | bytes, needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle.replace("(", r"\(")):
        decode_response(line)


def test_ready_line() -> None:
    assert decode_ready('{"ready": true, "pid": 3}')["pid"] == 3
    for bad in ('{"ready": 1}', '{"id": 1}', "ready"):
        with pytest.raises(ProtocolError, match="ready line"if bad != "ready" else "not JSON"):
            decode_ready(bad)


# ---------------------------------------------------------------- comparison


def ok(*proba: tuple[float, ...], labels: tuple = ()) -> Response:
    return Response(1, labels=labels or tuple(0 for _ in proba), proba=tuple(proba))


@given(st.lists(st.tuples(FINITE, FINITE), min_size=1, max_size=4))
def test_an_answer_agrees_with_itself(proba: list[tuple[float, float]]) -> None:
    assert differences(ok(*proba), ok(*proba)) == []


def test_bitwise_by_default_tolerance_when_configured() -> None:
    a, b = ok((0.1, 0.9)), ok((0.1, math.nextafter(0.9, 1.0)))
    assert differences(a, b) == [f"row 0: proba[1] 0.9 in the container, {math.nextafter(0.9, 1.0)!r} on the host (diff -1.11e-16)"]
    assert differences(a, b, rtol=1e-15) == []
    assert differences(a, b, atol=1e-12) == []
    assert differences(ok((0.0, 1.0)), ok((-0.0, 1.0))) != []  # bitwise: the sign of zero counts
    assert differences(ok((0.0, 1.0)), ok((-0.0, 1.0)), atol=1e-300) == []


def test_labels_rows_and_errors() -> None:
    assert differences(ok((0.5,), labels=(1,)), ok((0.5,), labels=(0,))) == ["row 0: label 1 in the container, 0 on the host"]
    assert differences(ok((0.5,), labels=(1,)), ok((0.5,), labels=(1.0,))) != []  # 1 and 1.0 are different labels
    assert differences(ok((0.5,)), ok((0.5,), (0.5,))) == ["container answered 1 rows, host 2"]
    err = Response(1, error="NaN at row 1")
    assert differences(err, err) == []
    assert differences(err, Response(1, error="other")) == ["container answered error 'NaN at row 1', host answered error 'other'"]
    assert differences(ok((0.5,)), err) == ["container answered 1 predictions, host answered error 'NaN at row 1'"]


# ---------------------------------------------------------------- schema


def test_read_schema() -> None:
    manifest = json.dumps({"features": SCHEMA, "nested": {"f": SCHEMA[:1]}}).encode()
    assert read_schema(manifest, "manifest.json:features") == SCHEMA
    assert read_schema(manifest, "manifest.json:nested.f") == SCHEMA[:1]
    for data, spec, needle in [(None, "missing.json:features", "expected a JSON file missing.json"),
                               (b"{not json", "manifest.json:features", "expected a JSON file manifest.json"),
                               (manifest, "manifest.json:nope", "non-empty list")]:
        with pytest.raises(MlreproError, match=needle):
            read_schema(data, spec)
    bad = json.dumps({"features": [{"name": "x", "min": 2, "max": 1}]}).encode()
    with pytest.raises(MlreproError, match="finite min <= max"):
        read_schema(bad, "bad.json:features")


# ---------------------------------------------------------------- strategies


def _is_valid_value(v: object) -> bool:
    return isinstance(v, float) and math.isfinite(v)


@given(batches(SCHEMA))
def test_batches_are_well_formed(batch: list[dict[str, float]]) -> None:
    assert 1 <= len(batch) <= 500
    for row in batch:
        assert sorted(row) == [f["name"] for f in SCHEMA]  # key order varies on purpose: it must not matter
        assert all(_is_valid_value(v) for v in row.values())


@given(rows(SCHEMA, in_range=True))
def test_in_range_rows_stay_in_the_training_ranges(row: dict[str, float]) -> None:
    assert all(f["min"] <= row[f["name"]] <= f["max"] for f in SCHEMA)


@given(invalid_batches(SCHEMA))
def test_invalid_batches_hold_a_non_finite_value(batch: list[dict[str, float]]) -> None:
    assert any(not math.isfinite(v) for row in batch for v in row.values())


def test_strategies_reach_the_edge_cases() -> None:
    seen: set[bytes] = set()
    sizes: set[int] = set()
    duplicated = []

    @given(batches(SCHEMA))
    def collect(batch: list[dict[str, float]]) -> None:
        sizes.add(len(batch))
        seen.update(bits(v) for row in batch for v in row.values())
        duplicated.append(len({json.dumps(r) for r in batch}) < len(batch))

    non_finite: set[str] = set()

    @given(invalid_batches(SCHEMA))
    def collect_invalid(batch: list[dict[str, float]]) -> None:
        non_finite.update(repr(v) for row in batch for v in row.values() if not math.isfinite(v))

    collect()
    collect_invalid()
    for value in (0.0, -0.0, 5e-324, 1e300, 2500.5, -5.0):
        assert bits(value) in seen, value
    assert 1 in sizes and max(sizes) > 50 and any(duplicated)
    # -0.0 == 0.0, so membership by value would hold for 0.0 alone: compare bits.
    assert bits(-0.0) in {bits(v) for v in SPECIAL_VALUES}
    assert non_finite == {repr(v) for v in NON_FINITE} == {"nan", "inf", "-inf"}


@pytest.mark.parametrize(
    "schema",
    [[], [{"name": "a", "min": 1.0, "max": 0.0}], [{"name": "a", "min": math.nan, "max": 1.0}],
     [{"name": "a", "min": 0, "max": 1}, {"name": "a", "min": 0, "max": 1}], [{"min": 0, "max": 1}]],
)
def test_bad_schema_is_named(schema: list[dict]) -> None:
    with pytest.raises(ValueError, match="schema"):
        check_schema(schema)


# ---------------------------------------------------------------- the client over a fake stream


class FakeStream:
    def __init__(self, *lines: bytes, stderr: str = "log line\n", exit_code: int | None = None) -> None:
        self.lines, self.stderr, self.code, self.written, self.closed_with = list(lines), stderr, exit_code, [], None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def readline(self, timeout: float) -> bytes:
        if not self.lines:
            return b""
        line = self.lines.pop(0)
        if line == b"HANG":
            raise TimeoutError
        return line

    def exit_code(self) -> int | None:
        return self.code

    def close(self, timeout: float = 5.0) -> None:
        self.closed_with = timeout


def answer_line(request_id: int) -> bytes:
    return json.dumps({"id": request_id, "labels": [1], "proba": [[0.25, 0.75]]}).encode() + b"\n"


def test_worker_pipelines_requests_and_checks_ids() -> None:
    stream = FakeStream(b'{"ready": true}\n', answer_line(1), answer_line(2))
    worker = Worker(stream, where="host", timeout=1)
    assert worker.wait_ready() == {"ready": True}
    first, second = worker.submit([{"a": 1.0}]), worker.submit([{"a": 2.0}])
    assert worker.result(first).proba == ((0.25, 0.75),) and worker.result(second).id == 2
    assert [json.loads(w)["id"] for w in stream.written] == [1, 2]
    worker.close()
    assert stream.closed_with == 5.0


@pytest.mark.parametrize(
    ("lines", "exit_code", "needle"),
    [
        ((), 137, "in the container was killed (SIGKILL or out of memory) before answering request 1: log line"),
        ((), 3, "exited with code 3 before answering request 1"),
        ((b"HANG",), None, "did not answer request 1 within 1 s"),
        ((answer_line(7),), None, "answered id 7 where 1 was next"),
        ((b"progress: 50%\n",), None, "broke the protocol answering request 1"),
    ],
)
def test_worker_failures_carry_the_log(lines: tuple[bytes, ...], exit_code: int | None, needle: str) -> None:
    stream = FakeStream(b'{"ready": true}\n', *lines, exit_code=exit_code)
    worker = Worker(stream, where="container", timeout=1)
    worker.wait_ready()
    with pytest.raises(WorkerError, match=needle.replace("(", r"\(").replace(")", r"\)")) as failure:
        worker.predict([{"a": 1.0}])
    assert isinstance(failure.value, StepError) and failure.value.step == "worker"
    assert failure.value.evidence == "log line" and any("log line" in n for n in failure.value.__notes__)
    with pytest.raises(WorkerError):  # broken for good
        worker.predict([{"a": 1.0}])
    worker.close()
    assert stream.closed_with == 0.0  # no grace period for a broken worker


def test_worker_that_does_not_say_ready() -> None:
    with pytest.raises(WorkerError, match="did not start properly"):
        Worker(FakeStream(b'{"id": 1}\n'), where="host", timeout=1).wait_ready()


# ---------------------------------------------------------------- a real host process (no Docker)

ECHO = """
import json, sys
print(json.dumps({"ready": True}), flush=True)
print("echo worker up", file=sys.stderr, flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["rows"] == [{"die": 1}]:
        sys.exit("dying as asked")
    print(json.dumps({"id": req["id"], "labels": [0] * len(req["rows"]), "proba": [[r.get("x", 0.0)] for r in req["rows"]]}), flush=True)
"""


def test_host_worker_runs_the_configured_command_and_cleans_up(tmp_path: Path) -> None:
    script = tmp_path / "echo_worker.py"  # a file: `{...}` in a command would be read as a placeholder
    script.write_text(ECHO)
    base = load_config(REPO)
    config = dataclasses.replace(base, worker=dataclasses.replace(base.worker, setup=(), command=("python", str(script))))
    side = HostWorker(config, python=sys.executable)
    with side as worker:
        assert worker.predict([{"x": -0.0}, {"x": 5e-324}]).proba == ((-0.0,), (5e-324,))
        assert bits(worker.predict([{"x": -0.0}]).proba[0][0]) == bits(-0.0)
        with pytest.raises(WorkerError, match="exited with code 1 before answering request 3: dying as asked") as failure:
            worker.predict([{"die": 1}])
        assert "echo worker up" in failure.value.evidence
        out_dir = side.side.out_dir
        assert out_dir is not None and out_dir.exists()
    assert not out_dir.exists() and side.stream.exit_code() is not None
