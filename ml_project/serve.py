"""`python -m ml_project.serve --model DIR`: a persistent prediction worker speaking JSON lines.

The model is loaded (and checked) once; then every line on stdin is one request
and gets exactly one line on stdout, flushed at once. EOF on stdin ends the
worker with exit 0. A bad model directory is one `error:` line on stderr, exit 2.
Otherwise stderr is the worker's log: one `serve:` line at startup, and warnings.

Protocol (UTF-8, one JSON value per line)::

    worker, once ready:  {"ready": true, "pid": 12, "features": [...], "classes": [0, 1]}
    request:             {"id": 7, "rows": [{"mean_radius": 14.2, ...}, ...]}
    response:            {"id": 7, "labels": [1, ...], "proba": [[0.01, 0.99], ...]}
    or, for a bad one:   {"id": 7, "error": "one line saying what was expected and found"}

`id` is echoed (an integer or string; null when the line could not be read).
Each row is a JSON object with exactly the model's feature names, the same
rules as a `.jsonl` file given to `ml_project.predict` (the same validation
code checks it, so the messages match). A request fails as a whole: one bad
row gets an error response, never a partial answer.

Floats round-trip exactly: JSON numbers are parsed to the nearest float64
(Python's parser) and written with repr() (shortest round-trip), so -0.0,
subnormals such as 5e-324 and 1e300 survive unchanged.

NaN and infinity are rejected, exactly like predict's CLI: the tokens `NaN`,
`Infinity` and `-Infinity` (which strict JSON lacks) are read, so that they can
be answered with a precise error rather than "invalid JSON", and a literal that
overflows (1e999) counts as infinite. Outputs are written with
allow_nan=False: a non-finite probability would become an error response,
never a non-JSON line.

BLAS/OpenMP thread pools are limited once for the worker's lifetime (entering
the limit costs milliseconds; the worker is single-threaded anyway).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ml_project import cli, dataset, persistence, tables
from ml_project.errors import ProjectError
from ml_project.predict import _check_model
from ml_project.threads import limited_threads, thread_count

REQUEST_KEYS = frozenset({"id", "rows"})


class BadRequest(ValueError):
    """A request the worker answers with an error response (and then keeps serving)."""

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def _request_id(obj: Any) -> Any:
    value = obj.get("id") if isinstance(obj, dict) else None
    valid = value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    return value if valid else None


def parse_request(line: str | bytes, names: Sequence[str]) -> tuple[Any, np.ndarray]:
    """(id, float64 matrix with columns in `names` order) from one request line; BadRequest if unusable."""
    try:
        pairs = json.loads(line, object_pairs_hook=tables._Pairs)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, or an integer literal of over 4300 digits
        if isinstance(exc, json.JSONDecodeError):
            msg = f"{exc.msg} at column {exc.colno}"
        else:
            msg = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc).split(";")[0][:120]
        raise BadRequest(f"request is not valid JSON ({msg}); expected one JSON object per line") from None
    except RecursionError:
        raise BadRequest("request is nested too deeply; expected a JSON object with 'id' and 'rows'") from None
    if not isinstance(pairs, tables._Pairs):
        raise BadRequest(f"request is {tables._json_kind(pairs)}; expected a JSON object with 'id' and 'rows'")
    keys = [k for k, _ in pairs]
    obj = dict(pairs)
    if len(keys) != len(obj):
        raise BadRequest(f"request repeats a key ({sorted({k for k in keys if keys.count(k) > 1})[0]!r}); expected 'id' and 'rows' once each")
    request_id = _request_id(obj)
    unknown = sorted(set(obj) - REQUEST_KEYS)
    if unknown:
        raise BadRequest(f"request has unexpected key(s) {', '.join(map(repr, unknown))}; expected only 'id' and 'rows'", request_id)
    if "id" in obj and request_id is None and obj["id"] is not None:
        raise BadRequest(f"request 'id' is {tables._json_kind(obj['id'])}; expected an integer or a string", request_id)
    rows = obj.get("rows")
    if not isinstance(rows, list) or isinstance(rows, tables._Pairs) or not rows:  # _Pairs: a JSON object
        found = "missing" if "rows" not in obj else ("an empty array" if rows == [] else tables._json_kind(rows))
        raise BadRequest(f"request 'rows' is {found}; expected a non-empty array of objects keyed by feature name", request_id)
    matrix: list[list[float]] = []
    expected = set(names)
    for i, row in enumerate(rows, start=1):
        where = f"row {i}"
        if not isinstance(row, tables._Pairs):
            raise BadRequest(f"{where} is {tables._json_kind(row)}; expected a JSON object mapping feature name to number", request_id)
        try:
            values = dict(row)
            if len(values) != len(row) or values.keys() != expected:  # only then pay for the detailed message
                tables._check_columns([k for k, _ in row], names, where)
            matrix.append([tables._number(values[n], f"{where}, column {n!r}") for n in names])
        except ProjectError as exc:
            raise BadRequest(str(exc), request_id) from None
    return request_id, np.asarray(matrix, dtype=np.float64).reshape(len(matrix), len(names))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def encode(obj: dict[str, Any]) -> str:
    """One response line (no NaN/inf tokens: strict JSON)."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")) + "\n"


def error_line(request_id: Any, message: str) -> str:
    return encode({"id": request_id, "error": " ".join(str(message).split())})


class Server:
    """A loaded, checked model answering requests; `handle` never raises for bad input."""

    def __init__(self, model_dir: Path) -> None:
        thread_count()  # a bad ML_PROJECT_THREADS fails at startup, not on the first request
        self.model_dir = Path(model_dir)
        loaded = persistence.load_model(self.model_dir)
        self.model = loaded.model
        self.version_mismatch = loaded.version_mismatch
        self.names = dataset.feature_names()
        _check_model(self.model, len(self.names), self.model_dir)
        self.classes = [_plain(c) for c in self.model.classes_]

    def ready_line(self) -> str:
        return encode({"ready": True, "pid": os.getpid(), "features": self.names, "classes": self.classes})

    def handle(self, line: str | bytes) -> str:
        """The response line for one request line."""
        try:
            request_id, X = parse_request(line, self.names)
        except BadRequest as exc:
            return error_line(exc.request_id, str(exc))
        try:
            proba = self.model.predict_proba(X)
            labels = self.model.predict(X)
        except Exception as exc:  # noqa: BLE001 - e.g. 1e308 overflowing to inf inside the pipeline
            cause = f"; {self.version_mismatch}" if self.version_mismatch else ""
            return error_line(request_id, f"the model cannot predict these rows ({type(exc).__name__}: {exc}){cause}; "
                                          "expected rows this model can score")
        response = {
            "id": request_id,
            "labels": [_plain(label) for label in labels],
            "proba": [[float(p) for p in row] for row in np.asarray(proba, dtype=np.float64)],
        }
        try:
            return encode(response)
        except ValueError:
            return error_line(request_id, "the model produced a non-finite probability; expected finite outputs")

    def serve(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        """Answer every line of `stdin` until EOF, flushing after each answer."""
        stdout.write(self.ready_line().encode())
        stdout.flush()
        for line in stdin:
            if not line.strip():
                continue  # blank lines are keep-alives, not requests
            stdout.write(self.handle(line).encode())
            stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m ml_project.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="model directory written by ml_project.train")
    return parser


def _run(args: argparse.Namespace) -> None:
    server = Server(args.model)
    if server.version_mismatch:
        cli.print_warning(f"{server.version_mismatch}; predictions may differ from the original environment's")
    # One log line, so a worker's stderr always shows what it was serving when something went wrong.
    sys.stderr.write(f"serve: model '{args.model}' loaded ({len(server.names)} features, classes {server.classes}); "
                     "answering JSON lines on stdin until EOF\n")
    sys.stderr.flush()
    with limited_threads():
        try:
            server.serve(sys.stdin.buffer, sys.stdout.buffer)
        except BrokenPipeError:  # the client went away: nobody is left to answer
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush stays quiet


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    return cli.run(_parser(), argv, _run)


if __name__ == "__main__":
    raise SystemExit(main())
