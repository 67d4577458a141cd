"""Reading artifact bytes as text and JSON, and JSON documents as leaves by path.

Shared by the numeric tables and the json/hash modes so that both read a
file the same way and both name a value the same way ('proba[0]', 'a.b').
"""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

from harness.compare.tolerance import is_number

__all__ = ["ABSENT", "Unparsable", "both", "decode", "evidence", "exactly_equal", "flatten", "json_loads", "json_type", "path_text"]

# Stands for a leaf or cell one side has and the other lacks.
ABSENT = object()


class Unparsable(Exception):
    """Content that cannot be read in the rule's mode; the message says why.

    Never leaves the package: compare_artifact turns it into a 'differs'
    result whose summary is this message, because bad content is a finding,
    not a failure of the harness.
    """


T = TypeVar("T")
R = TypeVar("R")


def both(read: Callable[[T], R], image: T, host: T) -> tuple[R, R]:
    """`read` of each side; if either is Unparsable, one Unparsable naming every side that failed."""
    values, errors = [], []
    for item in (image, host):
        try:
            values.append(read(item))
        except Unparsable as exc:
            errors.append(str(exc))
    if errors:
        raise Unparsable("; ".join(errors))
    return values[0], values[1]


def decode(data: bytes, side: str) -> str:
    """UTF-8 text, without the byte order mark some Windows tools write first."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unparsable(f"{side} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def json_loads(text: str, where: str) -> Any:
    """json.loads whose every failure is Unparsable, naming `where` (e.g. 'image line 3')."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unparsable(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise Unparsable(f"{where} is JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer beyond int()'s digit limit
        raise Unparsable(f"{where} is not readable JSON ({exc})") from None


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if is_number(value):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def flatten(value: Any, prefix: tuple, out: dict[tuple, Any]) -> dict[tuple, Any]:
    """Leaves by path tuple (str for object keys, int for list indexes).

    Tuples, not strings, so that {"a.b": 1} and {"a": {"b": 1}} stay two
    different leaves; empty containers are leaves themselves.
    """
    if isinstance(value, dict) and value:
        for k, v in value.items():
            flatten(v, prefix + (k,), out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            flatten(v, prefix + (i,), out)
    else:
        out[prefix] = value
    return out


def path_text(path: tuple) -> str:
    """'a.b', 'proba[0]', or '(root)' for a document that is one value."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def exactly_equal(a: Any, b: Any) -> bool:
    """Equality for values that are not compared as numbers."""
    # Type-aware: JSON true is not 1, and "1" is not 1.
    return type(a) is type(b) and a == b


def evidence(value: Any) -> Any:
    """A leaf as it is shown in a result's details."""
    return "(absent)" if value is ABSENT else value
