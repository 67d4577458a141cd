"""Persistent prediction workers, one per side, for property-based parity tests.

A worker is the project's own long-lived process (`[tool.mlrepro.worker]
command`, e.g. `python -m ml_project.serve --model {out}`): it loads the
model once and answers requests, so a property test pays milliseconds per
example instead of a `docker exec` plus an interpreter start each time.

Protocol: JSON lines on the worker's stdin/stdout, one line per message::

    worker, once ready:   {"ready": true, ...anything informative...}
    request:              {"id": 7, "rows": [{"feature": 1.5, ...}, ...]}
    response:             {"id": 7, "labels": [...], "proba": [[...], ...]}
    or:                   {"id": 7, "error": "one line"}      (the worker keeps serving)

Responses come in request order with the request's id. EOF on stdin asks the
worker to exit (code 0); stderr is the worker's log, kept as evidence.
Requests are encoded with NaN/Infinity tokens allowed on purpose (a test must
be able to send them and see them rejected); responses are decoded strictly
(a NaN token in a response is a protocol error).

`HostWorker` and `ContainerWorker` prepare a side exactly like a run does
(`harness.sides.runner`: inputs, forwarded environment, the configured `setup`
steps, the side's interpreter) and then start the worker there. Both are
context managers that always remove what they made (process, container,
temporary directory), on errors and Ctrl-C too. A worker that dies, hangs or
breaks the protocol raises `WorkerError` (a StepError) with its stderr.

The protocol helpers and `differences` are pure (no Docker); this module
imports the Docker-facing runner/engine only when a worker is started.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol, Sequence

from harness.compare import numbers_close
from harness.errors import MlreproError, StepError, tail
from harness.streams import LineReader

if TYPE_CHECKING:
    from harness.config import Config
    from harness.docker.engine import Engine

__all__ = [
    "Response", "ProtocolError", "WorkerError", "encode_request", "decode_response", "decode_ready",
    "differences", "read_schema", "Worker", "HostWorker", "ContainerWorker", "started_together", "ask_both",
]

MAX_SHOWN = 5  # differences listed in one message


# ---------------------------------------------------------------- protocol (pure)


class ProtocolError(ValueError):
    """A line from a worker is not a valid protocol message: fix the worker's output (only JSON lines on stdout)."""


@dataclass(frozen=True)
class Response:
    """One answer: labels and probabilities per row, or the worker's one-line error."""

    id: Any
    labels: tuple[Any, ...] | None = None
    proba: tuple[tuple[float, ...], ...] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"id": self.id, "error": self.error}
        return {"id": self.id, "labels": list(self.labels or ()), "proba": [list(r) for r in self.proba or ()]}


def encode_request(request_id: int | str, rows: Sequence[Mapping[str, float]]) -> bytes:
    """One request line. NaN/inf become the tokens NaN/Infinity (so they can be sent, and rejected)."""
    body = {"id": request_id, "rows": [dict(row) for row in rows]}
    return (json.dumps(body, allow_nan=True, separators=(",", ":")) + "\n").encode("utf-8")


def _reject_constant(token: str) -> Any:
    raise ProtocolError(f"the token {token} is not JSON; expected finite numbers only")


def _load_line(line: bytes | str) -> Any:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the worker wrote a line that is not UTF-8; expected JSON lines only on stdout") from None
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except ProtocolError:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer literal of over 4300 digits
        shown = line.strip()[:120]
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).split(";")[0][:80]
        raise ProtocolError(f"the worker wrote {shown!r}, not JSON ({why}); expected JSON lines only on stdout (log to stderr)") from None
    except RecursionError:
        raise ProtocolError("the worker wrote JSON nested too deeply; expected a flat response object") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decode_response(line: bytes | str) -> Response:
    """A Response from one line, or ProtocolError naming what is wrong with it."""
    obj = _load_line(line)
    if not isinstance(obj, dict) or "id" not in obj:
        raise ProtocolError(f"expected a JSON object with an 'id', found {str(line).strip()[:120]!r}")
    if "error" in obj:
        if not isinstance(obj["error"], str) or set(obj) != {"id", "error"}:
            raise ProtocolError(f"expected an error response {{'id', 'error': string}}, found keys {sorted(obj)}")
        return Response(obj["id"], error=obj["error"])
    if set(obj) != {"id", "labels", "proba"}:
        raise ProtocolError(f"expected a response with keys id, labels, proba (or id, error), found {sorted(obj)}")
    labels, proba = obj["labels"], obj["proba"]
    if not isinstance(labels, list) or not isinstance(proba, list) or len(labels) != len(proba):
        raise ProtocolError("expected 'labels' and 'proba' to be arrays with one entry per row")
    rows = []
    for i, row in enumerate(proba):
        if not isinstance(row, list) or not all(_is_number(p) for p in row):
            raise ProtocolError(f"expected 'proba' row {i} to be an array of numbers, found {row!r:.80}")
        rows.append(tuple(float(p) for p in row))
    return Response(obj["id"], labels=tuple(labels), proba=tuple(rows))


def decode_ready(line: bytes | str) -> dict[str, Any]:
    """The worker's first line, {"ready": true, ...}; ProtocolError for anything else."""
    obj = _load_line(line)
    if not isinstance(obj, dict) or obj.get("ready") is not True:
        raise ProtocolError(f"expected the ready line {{\"ready\": true, ...}} first, found {str(line).strip()[:160]!r}")
    return obj


def same_bits(a: float, b: float) -> bool:
    """Bitwise equality of two float64s (-0.0 is not 0.0; a NaN equals the same NaN)."""
    return struct.pack("<d", a) == struct.pack("<d", b)


def differences(container: Response, host: Response, *, atol: float = 0.0, rtol: float = 0.0) -> list[str]:
    """How two answers to the same request differ ([] when they agree).

    Labels must be equal; probabilities bitwise equal, unless a tolerance is
    set (then `numbers_close`: |a-b| <= atol + rtol * max(|a|, |b|)). Two error
    answers agree only when their messages are identical: both sides must
    reject a bad request the same way.
    """
    if not container.ok or not host.ok:
        if container.error == host.error:
            return []
        return [f"container answered {_answer(container)}, host answered {_answer(host)}"]
    out: list[str] = []
    c_labels, h_labels = container.labels or (), host.labels or ()
    c_proba, h_proba = container.proba or (), host.proba or ()
    if len(c_labels) != len(h_labels):
        return [f"container answered {len(c_labels)} rows, host {len(h_labels)}"]
    exact = atol == 0 and rtol == 0
    for i, (cl, hl, cp, hp) in enumerate(zip(c_labels, h_labels, c_proba, h_proba, strict=True)):
        if type(cl) is not type(hl) or cl != hl:
            out.append(f"row {i}: label {cl!r} in the container, {hl!r} on the host")
        if len(cp) != len(hp):
            out.append(f"row {i}: {len(cp)} probabilities in the container, {len(hp)} on the host")
            continue
        for j, (a, b) in enumerate(zip(cp, hp, strict=True)):
            if not (same_bits(a, b) if exact else numbers_close(a, b, atol, rtol)):
                out.append(f"row {i}: proba[{j}] {a!r} in the container, {b!r} on the host (diff {a - b:.3g})")
    return out


def _answer(response: Response) -> str:
    return f"error {response.error!r}" if response.error is not None else f"{len(response.labels or ())} predictions"


def read_schema(out_dir: Path, spec: str) -> list[dict[str, Any]]:
    """The feature schema `FILE:KEY` from a side's output: [{"name", "min", "max"}, ...]."""
    file_name, _, key = spec.partition(":")
    path = Path(out_dir) / file_name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MlreproError(f"worker.schema: expected a JSON file {file_name} in the setup output, found none or unreadable ({exc}); "
                           "check [tool.mlrepro.worker] schema and setup") from None
    value: Any = data
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    valid = isinstance(value, list) and value and all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and _is_number(f.get("min")) and _is_number(f.get("max"))
        and math.isfinite(f["min"]) and math.isfinite(f["max"]) and f["min"] <= f["max"]
        for f in value
    )
    if not valid:
        raise MlreproError(f"worker.schema: expected {key!r} in {file_name} to be a non-empty list of "
                           f"{{'name', 'min', 'max'}} with finite min <= max, found {str(value)[:160]}")
    return [{"name": f["name"], "min": float(f["min"]), "max": float(f["max"])} for f in value]


# ---------------------------------------------------------------- a worker process


class WorkerError(StepError):
    """A prediction worker crashed, hung or broke the protocol: `evidence` (and the exception's notes) hold its stderr."""

    def __init__(self, message: str, *, where: str, exit_code_seen: int | None = None, evidence: str = "") -> None:
        super().__init__(message, where=where, step="worker", exit_code_seen=exit_code_seen, evidence=evidence)
        if evidence:
            self.add_note(f"--- worker stderr ({where}), last lines ---\n{evidence}")


class Stream(Protocol):
    """What a Worker needs from a running process: harness.docker.engine.ExecStream or `_ProcessStream`."""

    stderr: str

    def write(self, data: bytes) -> None: ...
    def readline(self, timeout: float) -> bytes: ...
    def exit_code(self) -> int | None: ...
    def close(self, timeout: float = 5.0) -> None: ...


class _ProcessStream(LineReader):
    """A host subprocess with the same interface as engine.ExecStream (its own session, killed as a group).

    stdout is read in the caller's thread (select + os.read: no hand-off
    between threads per answer); stderr is drained by a thread so a chatty
    worker can never block on a full pipe.
    """

    def __init__(self, command: list[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
        self._fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        super().__init__()
        self._stderr = bytearray()
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()

    def _read_stderr(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: self.proc.stderr.read(65536), b""):  # type: ignore[union-attr]
                self._stderr += chunk

    @property
    def stderr(self) -> str:
        if self.proc.poll() is not None:
            self._stderr_thread.join(1.0)  # the process is gone: let the drain catch its last words
        return self._stderr.decode("utf-8", "replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)  # unbuffered: a BrokenPipeError here means the worker is gone

    def _receive(self, timeout: float) -> bool:
        if not select.select([self._fd], [], [], timeout)[0]:
            return False
        chunk = os.read(self._fd, 262144)
        if chunk:
            self._stdout += chunk
        else:
            self._eof = True
        return True

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL the worker's process group (not once it is reaped: its pid may be reused)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()  # still running after EOF and the grace period: the whole group goes
        self.proc.wait()
        self._stderr_thread.join(1.0)
        for pipe in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


class Worker:
    """The client side of the protocol over one Stream: ids, ordering, timeouts, evidence."""

    def __init__(self, stream: Stream, *, where: str, timeout: float, kill_reason: Callable[[], str] | None = None) -> None:
        self.stream, self.where, self.timeout = stream, where, timeout
        self._kill_reason = kill_reason  # why a SIGKILL happened (out of memory?), when the side can tell
        self.info: dict[str, Any] = {}
        self._next_id = 0
        self._pending: deque[Any] = deque()
        self._broken: WorkerError | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.where} pid={self.info.get('pid')} pending={len(self._pending)}{' broken' if self._broken else ''}>"

    @property
    def stderr(self) -> str:
        return self.stream.stderr

    def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        line = self._readline(timeout or self.timeout, "start")
        try:
            self.info = decode_ready(line)
        except ProtocolError as exc:
            raise self._fail(f"the worker in the {self.where} did not start properly: {exc}") from None
        return self.info

    def submit(self, rows: Sequence[Mapping[str, float]]) -> int:
        """Send a request without waiting; `result(id)` collects the answer (answers come in order)."""
        self._next_id += 1
        self.send_line(encode_request(self._next_id, rows), self._next_id)
        return self._next_id

    def send_line(self, line: bytes, expect_id: Any = None) -> None:
        """Send one raw line (malformed ones too); its answer must carry `expect_id`."""
        if self._broken:
            raise self._broken
        try:
            self.stream.write(line)
        except (BrokenPipeError, OSError) as exc:
            raise self._fail(f"the worker in the {self.where} stopped reading requests ({exc})") from None
        self._pending.append(expect_id)

    def result(self, request_id: Any = None) -> Response:
        """The answer to the oldest pending request (which must be `request_id` when given)."""
        if not self._pending:
            raise ValueError(f"request_id={request_id!r}: no request is waiting for an answer; submit() one first")
        expected = self._pending.popleft()
        if request_id is not None and expected != request_id:
            raise ValueError(f"request_id={request_id!r}: answers come in request order; the next one answers {expected!r}")
        line = self._readline(self.timeout, f"request {expected!r}")
        try:
            response = decode_response(line)
        except ProtocolError as exc:
            raise self._fail(f"the worker in the {self.where} broke the protocol answering request {expected!r}: {exc}") from None
        if response.id != expected:
            raise self._fail(f"the worker in the {self.where} answered id {response.id!r} where {expected!r} was next; "
                             "expected answers in request order with the request's id")
        return response

    def predict(self, rows: Sequence[Mapping[str, float]]) -> Response:
        return self.result(self.submit(rows))

    def request_line(self, line: bytes, expect_id: Any = None) -> Response:
        """Send one raw line and wait for its answer."""
        self.send_line(line, expect_id)
        return self.result()

    def _readline(self, timeout: float, what: str) -> bytes:
        if self._broken:
            raise self._broken
        try:
            line = self.stream.readline(timeout)
        except TimeoutError:
            raise self._fail(f"the worker in the {self.where} did not answer {what} within {timeout:g} s; "
                             "raise [tool.mlrepro.worker] timeout or look at its stderr") from None
        if not line:
            code = self._exit_code()
            if code in (137, -9):
                why = f"was {(self._kill_reason and self._kill_reason()) or 'killed (SIGKILL or out of memory)'}"
            else:
                why = f"exited with code {code}" if code is not None else "ended"
            last = tail(self.stream.stderr, 1)
            raise self._fail(f"the worker in the {self.where} {why} before answering {what}" + (f": {last[:240]}" if last else ""),
                             exit_code=code)
        return line

    def _exit_code(self) -> int | None:
        for _ in range(20):  # the exit status lags the end of the output a little
            code = self.stream.exit_code()
            if code is not None:
                return code
            time.sleep(0.05)
        return None

    def _fail(self, message: str, exit_code: int | None = None) -> WorkerError:
        self._broken = WorkerError(message, where=self.where, exit_code_seen=exit_code, evidence=tail(self.stream.stderr, 40))
        return self._broken

    def close(self, timeout: float = 5.0) -> None:
        """EOF on the worker's stdin, so it exits by itself; whatever remains is killed by the owner.

        A worker already known to be broken (hung, crashed) gets no grace period.
        """
        self.stream.close(0.0 if self._broken else timeout)


def ask_both(container: Worker, host: Worker, rows: Sequence[Mapping[str, float]]) -> tuple[Response, Response]:
    """The same request to both workers at once (they compute in parallel); (container answer, host answer)."""
    c_id, h_id = container.submit(rows), host.submit(rows)
    return container.result(c_id), host.result(h_id)


# ---------------------------------------------------------------- the two sides


class _Side:
    """A side's worker as a resource: `start()` prepares and starts it, `close()` removes everything.

    `abort()` may be called from another thread while `start()` runs, to make
    it fail fast (used when the other side failed or on Ctrl-C).
    """

    where = ""

    def __init__(self, config: "Config") -> None:
        if config.worker is None:
            raise MlreproError("[tool.mlrepro.worker] is not configured; add it (command, setup, schema) to use workers")
        self.config = config
        self.settings = config.worker
        self.worker: Worker | None = None
        self.setup_logs: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self._aborted = False

    def start(self) -> "_Side":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def _check_aborted(self) -> None:
        if self._aborted:
            raise MlreproError(f"the {self.where} worker's start was aborted (the other side failed or the run was interrupted)")

    def abort(self) -> None:
        self._aborted = True

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Worker:
        self.start()
        assert self.worker is not None
        return self.worker

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run_worker(self, stream: Stream, kill_reason: Callable[[], str] | None = None) -> None:
        worker = Worker(stream, where=self.where, timeout=self.settings.timeout, kill_reason=kill_reason)
        self._stack.callback(worker.close)
        self.worker = worker
        worker.wait_ready()


class HostWorker(_Side):
    """The worker on the host: setup steps in a temporary directory, then the worker, with the host's interpreter."""

    where = "host"

    def __init__(self, config: "Config", python: str | None = None) -> None:
        super().__init__(config)
        self.python = python
        self.out_dir: Path | None = None
        self.stream: _ProcessStream | None = None

    def _start(self) -> None:
        from harness.sides.runner import expand, forwarded_env, host_python, run_step_on_host, run_tempdir

        python = self.python or host_python(self.config, progress=lambda message: None)
        tmp = run_tempdir("worker")  # named after the run, so `mlrepro clean` finds it if we are killed
        self._stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        out, inputs = tmp / "out", tmp / "in"
        out.mkdir()
        inputs.mkdir()
        for p in self.config.inputs:
            shutil.copyfile(p, inputs / p.name)
        env = {**os.environ, **forwarded_env(self.config)}
        cwd = self.config.host.workdir
        for step in _setup_steps(self.config):
            self._check_aborted()
            self.setup_logs[step.name] = run_step_on_host(step, python=python, out=out, inputs=inputs, cwd=cwd, env=env)
        self._check_aborted()
        self.out_dir = out
        command = expand(self.settings.command, out=str(out), inputs=str(inputs), python=python)
        try:
            self.stream = _ProcessStream(command, cwd=cwd, env=env)
        except OSError as exc:
            raise WorkerError(f"the worker command {command[0]!r} could not be started on the host ({exc.strerror or exc}); "
                              "check [tool.mlrepro.worker] command", where="host") from None
        self._stack.callback(self.stream.kill)  # runs after worker.close: a worker ignoring EOF is killed
        self._run_worker(self.stream)

    def abort(self) -> None:
        super().abort()
        if self.stream is not None:
            self.stream.kill()

    def kill(self) -> None:
        """SIGKILL the worker process (for tests of crash handling)."""
        assert self.stream is not None
        self.stream.kill()


class ContainerWorker(_Side):
    """The worker in a fresh labeled container of `image`: inputs copied in, setup steps run, worker exec'd."""

    where = "container"

    def __init__(self, engine: "Engine", config: "Config", image: str) -> None:
        super().__init__(config)
        self.engine, self.image = engine, image
        self.box = None  # harness.docker.engine.Container once started

    def _start(self) -> None:
        from harness.sides.runner import expand, forwarded_env, run_step_in_container

        wd = self.config.run.workdir_in_image
        out, inputs = f"{wd}/out", f"{wd}/in"
        # Locked down like a verification run: read-only root, only the workdir (a volume) writable.
        box = self._stack.enter_context(self.engine.container(
            self.image, role="worker", env=forwarded_env(self.config), mem_limit=self.config.run.mem_limit, writable=wd))
        self.box = box
        box.put_files(wd, {f"in/{p.name}": p.read_bytes() for p in self.config.inputs}, dirs=("out",))
        for step in _setup_steps(self.config):
            self._check_aborted()
            self.setup_logs[step.name] = run_step_in_container(box, step, out=out, inputs=inputs)
        self._check_aborted()
        started = time.time()
        stream = box.exec_stream(expand(self.settings.command, out=out, inputs=inputs, python="python"))
        self._run_worker(stream, kill_reason=lambda: box.kill_reason(started - 1))

    def abort(self) -> None:
        super().abort()
        if self.box is not None:
            with contextlib.suppress(Exception):
                self.box.raw.kill()

    def setup_file(self, name: str) -> bytes | None:
        """A file the setup steps wrote to {out}, e.g. the manifest."""
        assert self.box is not None
        return self.box.get_dir(f"{self.config.run.workdir_in_image}/out").get(name)

    def kill(self) -> None:
        """SIGKILL the worker process inside the container (for tests of crash handling)."""
        assert self.box is not None and self.worker is not None
        pid = self.worker.info.get("pid")
        if not isinstance(pid, int):
            raise MlreproError("the container worker's ready line has no integer 'pid'; cannot kill it selectively")
        self.box.exec(["python", "-c", f"import os, signal; os.kill({pid}, signal.SIGKILL)"], timeout=30)


def _setup_steps(config: "Config") -> list:
    by_name = {step.name: step for step in config.steps}
    return [by_name[name] for name in config.worker.setup]  # names validated by harness.config


@contextlib.contextmanager
def started_together(*sides: _Side) -> Iterator[tuple[Worker, ...]]:
    """Start every side at once (their setups overlap), yield their Workers, close them all on exit.

    If one side fails to start (or Ctrl-C arrives), the others are aborted,
    everything started is removed, and the first error propagates.
    """
    pool = ThreadPoolExecutor(max_workers=len(sides), thread_name_prefix="mlrepro-worker")
    futures = [pool.submit(side.start) for side in sides]
    try:
        try:
            for future in futures:
                future.result()
        except BaseException:
            for side in sides:
                side.abort()
            raise
        finally:
            pool.shutdown(wait=True)
        yield tuple(side.worker for side in sides)  # type: ignore[misc]
    finally:
        for side in sides:
            with contextlib.suppress(Exception):
                side.close()
