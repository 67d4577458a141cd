"""The prediction-worker protocol: JSON lines on a worker's stdin/stdout, and how two answers compare. Pure.

Protocol, one line per message::

    worker, once ready:   {"ready": true, ...anything informative...}
    request:              {"id": 7, "rows": [{"feature": 1.5, ...}, ...]}
    response:             {"id": 7, "labels": [...], "proba": [[...], ...]}
    or:                   {"id": 7, "error": "one line"}      (the worker keeps serving)

Responses come in request order with the request's id. EOF on stdin asks the
worker to exit (code 0); stderr is the worker's log, kept as evidence.
Requests are encoded with NaN/Infinity tokens allowed on purpose (a test must
be able to send them and see them rejected); responses are decoded strictly
(a NaN token in a response is a protocol error).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from harness.compare import numbers_close

MAX_SHOWN = 5  # differences listed in one message


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



__all__ = ["MAX_SHOWN", "ProtocolError", "Response", "decode_ready", "decode_response", "differences", "encode_request", "same_bits"]
