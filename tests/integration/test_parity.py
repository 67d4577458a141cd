"""Property-based parity: hypothesis batches predicted identically in the container and on the host.

Both sides run the project's persistent worker (`[tool.mlrepro.worker]`), so an
example costs milliseconds rather than a `docker exec` and an interpreter start.
Batches come from the model's feature schema (harness.parity.strategies); a
disagreement shrinks to a minimal batch, shown with both answers. Probabilities
must be bitwise identical unless the configuration sets worker.atol/rtol.

The robustness tests start their own workers (they kill them) and check that
nothing they created is left on the engine.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.parity.strategies import batches, invalid_batches, rows
from harness.parity import (
    ContainerWorker,
    HostWorker,
    Response,
    WorkerError,
    ask_both,
    differences,
    started_together,
)

pytest_plugins = ["pytester"]

SHOWN_ROWS = 5

# Session-scoped fixtures are what hypothesis expects; the example count comes
# from the profile (tests/conftest.py: `ci` runs at least 500 per property).
parity = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def explain(rows: list[dict], container: Response, host: Response, diffs: list[str]) -> str:
    """The assertion message: what differs, the (shrunk) batch and both answers."""
    shown = rows[:SHOWN_ROWS]
    more = f" (first {SHOWN_ROWS} of {len(rows)} rows)" if len(rows) > SHOWN_ROWS else ""
    return "\n".join([
        f"container and host disagree on a batch of {len(rows)} row(s):",
        *(f"  - {d}" for d in diffs[:10]),
        f"batch{more}: {json.dumps(shown)}",
        f"container: {json.dumps(container.as_json())[:2000]}",
        f"host:      {json.dumps(host.as_json())[:2000]}",
    ])


def check_parity(config, container, host, rows: list[dict]) -> tuple[Response, Response]:
    c, h = ask_both(container, host, rows)
    diffs = differences(c, h, atol=config.worker.atol, rtol=config.worker.rtol)
    assert not diffs, explain(rows, c, h, diffs)
    return c, h


@parity
@given(data=st.data())
def test_predictions_identical_in_container_and_on_host(mlrepro_config, mlrepro_workers, mlrepro_schema, data):
    rows = data.draw(batches(mlrepro_schema), label="batch")
    c, h = check_parity(mlrepro_config, *mlrepro_workers, rows)
    # An identical rejection on both sides is parity too (e.g. a model that cannot scale 1e308),
    # checked by check_parity; the in-range test below makes sure batches are also answered.
    assert c.ok == h.ok
    assert (len(c.labels or ()), len(c.proba or ())) == ((len(rows), len(rows)) if c.ok else (0, 0))


@parity
@given(data=st.data())
def test_in_range_batches_are_answered_identically(mlrepro_config, mlrepro_workers, mlrepro_schema, data):
    """Rows inside the training ranges must be predicted, not rejected, on both sides, bit for bit."""
    rows_ = data.draw(st.lists(rows(mlrepro_schema, in_range=True), min_size=1, max_size=32), label="batch")
    c, h = check_parity(mlrepro_config, *mlrepro_workers, rows_)
    assert c.ok and h.ok, explain(rows_, c, h, ["expected both sides to answer in-range rows"])
    assert len(c.labels) == len(c.proba) == len(rows_)


@parity
@given(data=st.data())
def test_non_finite_rows_rejected_identically(mlrepro_config, mlrepro_workers, mlrepro_schema, data):
    rows = data.draw(invalid_batches(mlrepro_schema), label="batch")
    c, h = check_parity(mlrepro_config, *mlrepro_workers, rows)
    assert not c.ok and not h.ok, explain(rows, c, h, ["expected both sides to reject NaN/inf"])
    assert "NaN and inf are rejected" in c.error


@pytest.mark.parametrize(
    ("line", "answer_id"),
    [
        pytest.param(b"not json\n", None, id="not-json"),
        pytest.param(b"\xff\xfe{}\n", None, id="not-utf8"),
        pytest.param(b"[1, 2]\n", None, id="array"),
        pytest.param(b'{"id": 1.5, "rows": []}\n', None, id="bad-id"),
        pytest.param(b'{"id": 5}\n', 5, id="no-rows"),
        pytest.param(b'{"id": 6, "rows": []}\n', 6, id="empty-rows"),
        pytest.param(b'{"id": 7, "rows": [{"not_a_feature": 1.0}]}\n', 7, id="wrong-features"),
        pytest.param(b'{"id": 8, "rows": [[1, 2, 3]]}\n', 8, id="row-not-object"),
        pytest.param(b'{"id": 9, "rows": [{}], "extra": 1}\n', 9, id="extra-key"),
    ],
)
def test_malformed_request_gets_an_error_and_the_worker_keeps_serving(mlrepro_workers, mlrepro_schema, line, answer_id):
    row = {f["name"]: f["min"] for f in mlrepro_schema}
    container, host = (worker.request_line(line, expect_id=answer_id) for worker in mlrepro_workers)
    assert not container.ok and container.error == host.error, (container, host)
    for worker in mlrepro_workers:
        assert worker.predict([row]).ok


@pytest.mark.parametrize("value", ["1.5", True, None, [1.0], {"x": 1.0}], ids=["string", "bool", "null", "array", "object"])
def test_non_numeric_value_is_rejected_identically(mlrepro_workers, mlrepro_schema, value):
    first = mlrepro_schema[0]["name"]
    rows = [{**{f["name"]: f["min"] for f in mlrepro_schema}, first: value}]
    container, host = (worker.predict(rows) for worker in mlrepro_workers)
    assert not container.ok and container.error == host.error, (container, host)
    assert f"column {first!r}" in container.error


def test_killed_workers_fail_with_their_logs_and_leave_nothing(engine, repo_config, prepared, mlrepro_schema):
    row = {f["name"]: f["min"] for f in mlrepro_schema}
    container, host = ContainerWorker(engine, repo_config, prepared[1].tag), HostWorker(repo_config)
    with started_together(container, host) as (cw, hw):
        box_id = container.box.raw.id
        assert box_id in engine.leftovers()
        assert ask_both(cw, hw, [row])[0].ok

        host.kill()
        with pytest.raises(WorkerError) as host_crash:
            hw.predict([row])
        assert "host" in str(host_crash.value) and "killed" in str(host_crash.value)
        assert "serve: model" in host_crash.value.evidence  # its log travels with the error

        container.kill()
        with pytest.raises(WorkerError) as container_crash:
            cw.predict([row])
        assert container_crash.value.exit_code_seen == 137, container_crash.value
        assert "serve: model" in container_crash.value.evidence
        with pytest.raises(WorkerError):  # a dead worker stays dead: no silent restarts
            cw.predict([row])
    assert box_id not in engine.leftovers()
    assert host.stream.exit_code() is not None


def test_container_removed_on_interrupt_and_when_the_container_dies(engine, repo_config, prepared, mlrepro_schema):
    row = {f["name"]: f["min"] for f in mlrepro_schema}
    side = ContainerWorker(engine, repo_config, prepared[1].tag)
    with pytest.raises(KeyboardInterrupt):
        with side as worker:
            box_id = side.box.raw.id
            side.box.kill()  # the whole container dies under the worker
            with pytest.raises(WorkerError) as crash:
                worker.predict([row])
            assert "container" in str(crash.value)
            raise KeyboardInterrupt
    assert box_id not in engine.leftovers()


def test_worker_that_cannot_start_reports_its_error(repo_config):
    broken = dataclasses.replace(repo_config, worker=dataclasses.replace(
        repo_config.worker, setup=(), command=("python", "-m", "ml_project.serve", "--model", "{inputs}/nowhere")))
    with pytest.raises(WorkerError) as failure:
        with HostWorker(broken):
            pass
    assert failure.value.exit_code_seen == 2
    assert "error: model directory" in str(failure.value) and "does not exist" in failure.value.evidence


def test_worker_that_hangs_times_out(repo_config):
    hung = dataclasses.replace(repo_config, worker=dataclasses.replace(
        repo_config.worker, setup=(), timeout=1.0, command=("python", "-c", "import time; time.sleep(60)")))
    side = HostWorker(hung)
    with pytest.raises(WorkerError, match="did not answer start within 1 s"):
        side.start()
    assert side.stream.exit_code() is not None  # killed on the way out



def test_plugin_reports_carry_the_workers_logs(pytester: pytest.Pytester, engine):
    root = Path(__file__).resolve().parents[2]
    pytester.makepyfile(test_workers="""
        def test_fails_on_purpose(mlrepro_workers, mlrepro_schema):
            container, host = mlrepro_workers
            assert container.info["ready"] and host.info["ready"] and mlrepro_schema
            assert False, "on purpose"
        """)
    result = pytester.runpytest_subprocess("--mlrepro-config", str(root), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mlrepro container worker stderr*", "serve: model*loaded*", "*mlrepro host worker stderr*"])
