"""Persistent prediction workers on any side, for property-based parity tests.

A worker is the project's own long-lived process (`[tool.mlrepro.worker]
command`, e.g. `python -m ml_project.serve --model {out}`): it loads the
model once and answers requests (`harness.parity.protocol`), so a property
test pays milliseconds per example instead of a `docker exec` plus an
interpreter start each time.

`WorkerSide` puts a worker on any `harness.sides.Side`: the side prepares its
workspace exactly like a verification run, the configured `setup` steps run
there (`run_step`), then the worker is spawned (`Side.spawn`). `HostWorker`
and `ContainerWorker` are the two sides there are today. A `WorkerSide` is a
context manager that always removes what it made (process, container,
temporary directory), on errors and Ctrl-C too. A worker that dies, hangs or
breaks the protocol raises `WorkerError` (a StepError) with its stderr.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from harness.errors import MlreproError, StepError, tail
from harness.parity.protocol import ProtocolError, Response, decode_ready, decode_response, encode_request
from harness.parity.schema import read_schema
from harness.sides import ContainerSide, HostSide, Side, expand, run_step
from harness.sides.side import Stream

if TYPE_CHECKING:
    from harness.config import Config
    from harness.docker import Engine

__all__ = ["ContainerWorker", "HostWorker", "Worker", "WorkerError", "WorkerSide", "ask_both", "started_together"]


class WorkerError(StepError):
    """A prediction worker crashed, hung or broke the protocol: `evidence` (and the exception's notes) hold its stderr."""

    def __init__(self, message: str, *, where: str, exit_code_seen: int | None = None, evidence: str = "") -> None:
        super().__init__(message, where=where, step="worker", exit_code_seen=exit_code_seen, evidence=evidence)
        if evidence:
            self.add_note(f"--- worker stderr ({where}), last lines ---\n{evidence}")


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
            raise self._gone(f"request {expect_id!r}", f"stopped reading requests ({exc})") from None
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
            raise self._gone(what, "ended")
        return line

    def _gone(self, what: str, otherwise: str) -> "WorkerError":
        """The error for a worker found gone (EOF, or a closed stdin): how it ended, when that can be told."""
        code = self._exit_code()
        if code in (137, -9):
            why = f"was {(self._kill_reason and self._kill_reason()) or 'killed (SIGKILL or out of memory)'}"
        else:
            why = f"exited with code {code}" if code is not None else otherwise
        last = tail(self.stream.stderr, 1)
        return self._fail(f"the worker in the {self.where} {why} before answering {what}" + (f": {last[:240]}" if last else ""),
                          exit_code=code)

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


class WorkerSide:
    """A worker on `side` as a resource: `start()` prepares and starts it, `close()` removes everything.

    `abort()` may be called from another thread while `start()` runs, to make
    it fail fast (used when the other side failed or on Ctrl-C).
    """

    def __init__(self, side: Side, config: "Config") -> None:
        if config.worker is None:
            raise MlreproError("[tool.mlrepro.worker] is not configured; add it (command, setup, schema) to use workers")
        self.side, self.config, self.settings = side, config, config.worker
        self.where = "container" if side.where == "image" else side.where
        self.worker: Worker | None = None
        self.stream: Stream | None = None
        self.setup_logs: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self._aborted = False

    def start(self) -> "WorkerSide":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self._stack.enter_context(self.side)
        by_name = {step.name: step for step in self.config.steps}
        for name in self.settings.setup:  # names validated by harness.config
            self._check_aborted()
            self.setup_logs[name] = run_step(self.side, by_name[name])
        self._check_aborted()
        command = expand(self.settings.command, self.side.workspace, self.side.python)
        started = time.time()
        try:
            self.stream = self.side.spawn(command)
        except MlreproError as exc:
            raise WorkerError(f"the worker command {command[0]!r} could not be started {self.side.place} ({exc}); "
                              "check [tool.mlrepro.worker] command", where=self.where) from None
        worker = Worker(self.stream, where=self.where, timeout=self.settings.timeout,
                        kill_reason=lambda: self.side.kill_reason(started - 1))
        self._stack.callback(worker.close)  # runs before the side closes: EOF first, then the side kills what remains
        self.worker = worker
        worker.wait_ready()

    def _check_aborted(self) -> None:
        if self._aborted:
            raise MlreproError(f"the {self.where} worker's start was aborted (the other side failed or the run was interrupted)")

    def abort(self) -> None:
        self._aborted = True
        self.side.abort()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Worker:
        self.start()
        assert self.worker is not None
        return self.worker

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def schema(self) -> list[dict[str, Any]]:
        """The feature schema (`worker.schema`, FILE:KEY) from this side's setup output."""
        return read_schema(self.side.output(self.settings.schema.partition(":")[0]), self.settings.schema)

    def kill(self) -> None:
        """SIGKILL the worker process by the pid its ready line gave (for tests of crash handling)."""
        assert self.worker is not None
        pid = self.worker.info.get("pid")
        if not isinstance(pid, int):
            raise MlreproError("the worker's ready line has no integer 'pid'; cannot kill it selectively")
        self.side.execute([self.side.python, "-c", f"import os, signal; os.kill({pid}, signal.SIGKILL)"], timeout=30)


class HostWorker(WorkerSide):
    """The worker on the host: setup steps in a temporary directory, then the worker, with the host's interpreter."""

    def __init__(self, config: "Config", python: str | None = None) -> None:
        super().__init__(HostSide(config, python, kind="worker"), config)


class ContainerWorker(WorkerSide):
    """The worker in a fresh labeled container of `image`: inputs copied in, setup steps run, worker exec'd."""

    def __init__(self, engine: "Engine", config: "Config", image: str) -> None:
        super().__init__(ContainerSide(engine, config, image, role="worker"), config)

    @property
    def box(self):  # noqa: ANN201 - harness.docker.Container, once started
        """The container the worker runs in (for tests that kill it from outside)."""
        return self.side.box


@contextlib.contextmanager
def started_together(*sides: "WorkerSide") -> Iterator[tuple[Worker, ...]]:
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
