"""The lock (`requirements.txt` compiled by pip-compile): parsing, identity, and its text beyond the pins.

Pure: text in, frozen data out. Every pin must be `name==version` with at least
one `--hash`, because the image installs with `--require-hashes` and the
comparison needs one exact version per package. Beyond the pins, the freshness
check reads what pip-compile wrote around them: the Python its header names
(`lock_python_version`) and who required each pin (`via_annotations`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import LockError

__all__ = ["Lock", "Pin", "lock_problem", "lock_python_version", "logical_lines", "parse_lock", "read_file", "read_lock", "via_annotations"]


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    hashes: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Lock:
    path: str
    sha256: str
    pins: Mapping[str, Pin]

    @property
    def versions(self) -> dict[str, str]:
        return {name: pin.version for name, pin in self.pins.items()}


_HASH = re.compile(r"--hash[= ](sha256|sha384|sha512):([0-9a-f]+)")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and drop comments, keeping the first line number."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def parse_lock(text: str, path: str = "requirements.txt") -> Lock:
    pins: dict[str, Pin] = {}
    for number, line in logical_lines(text):
        where = f"{path}:{number}"
        if line.startswith("-"):
            option = line.split()[0]
            if option in ("-e", "--editable"):
                raise LockError(f"{where}: expected a pinned requirement, found an editable one ({line[:80]}); a lock for an image must pin released wheels")
            # --index-url, --find-links and friends do not pin anything.
            continue
        hashes = tuple(f"{a}:{h}" for a, h in _HASH.findall(line))
        spec = _HASH.sub("", line).strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise LockError(f"{where}: expected 'name==version --hash=sha256:...', found {spec[:80]!r} ({str(exc).splitlines()[0]}); regenerate it with 'mlrepro lock'") from None
        if req.url:
            raise LockError(f"{where}: expected a pinned release, found a URL/VCS requirement ({spec[:80]}); publish a wheel or vendor it")
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "==="):
            raise LockError(f"{where}: expected {req.name}==<version>, found {spec!r} (unpinned); run 'mlrepro lock' to pin it")
        if not hashes:
            raise LockError(f"{where}: expected --hash entries for {req.name}, found none; run 'mlrepro lock' (it uses --generate-hashes)")
        name = canonicalize_name(req.name)
        if name in pins and pins[name].version != specs[0].version:
            raise LockError(f"{where}: {name} is pinned twice ({pins[name].version} at line {pins[name].line}, {specs[0].version} here); run 'mlrepro lock'")
        pins[name] = Pin(name=name, version=specs[0].version, hashes=hashes, line=number)
    return Lock(path=path, sha256=hashlib.sha256(text.encode()).hexdigest(), pins=pins)


def read_lock(path: Path) -> Lock:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"{path}: expected a lock file, found none; create it with 'mlrepro lock'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: expected a readable UTF-8 lock file, found {type(exc).__name__}: {exc}") from None
    lock = parse_lock(text, path.name)
    if not lock.pins:
        raise LockError(f"{path}: expected pinned requirements, found none; run 'mlrepro lock'")
    return lock


def read_file(path: Path, what: str, hint: str) -> str:
    """The text of requirements.in or the lock; a one-line LockError naming `path` and `what` otherwise.

    Both files are inputs of the lifecycle (`mlrepro lock` and `--check`), and
    `hint` says what to do about a missing one, which depends on the caller.
    """
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"{path}: expected {what}, found no such file; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: expected a readable UTF-8 {what}, found {type(exc).__name__}: {exc}") from None


def lock_problem(exc: LockError) -> str:
    """parse_lock's message without its advice, to attach the advice that fits the caller."""
    return exc.message.rsplit("; ", 1)[0]


# The lock's text beyond its pins -------------------------------------------

_HEADER = re.compile(r"^#\s*This file is autogenerated by pip-compile with Python (\d+\.\d+)", re.M)
_PIN_START = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==|===)")


def lock_python_version(text: str) -> str | None:
    """X.Y from pip-compile's header ('autogenerated by pip-compile with Python 3.11'), or None."""
    match = _HEADER.search(text)
    return match.group(1) if match else None


def via_annotations(text: str) -> dict[str, frozenset[str]]:
    """pip-compile's '# via' annotations: canonical name -> its entries ('-r requirements.in', 'scipy')."""
    out: dict[str, set[str]] = {}
    current: str | None = None
    in_via = False
    for raw in text.splitlines():
        stripped = raw.strip()
        if raw and not raw[0].isspace() and not stripped.startswith("#"):
            match = _PIN_START.match(stripped)
            current = canonicalize_name(match.group(1)) if match else None
            in_via = False
            if current is not None:
                out.setdefault(current, set())
            if current is not None and "# via " in raw:  # annotation-style=line
                out[current].update(_via_entries(raw.split("# via ", 1)[1]))
            continue
        if current is None:
            continue
        if not raw[:1].isspace():  # a top-level comment ends the entry
            current, in_via = None, False
            continue
        if stripped.startswith("# via"):
            rest = stripped[len("# via"):].strip()
            in_via = not rest
            if rest:
                out[current].update(_via_entries(rest))
        elif in_via and stripped.startswith("#   "):
            out[current].update(_via_entries(stripped[1:]))
        elif not stripped.startswith("#"):
            in_via = False
    return {name: frozenset(entries) for name, entries in out.items()}


def _via_entries(text: str) -> list[str]:
    entries = []
    for part in text.split(","):
        part = part.strip()
        if part.startswith(("-r ", "-c ")):
            entries.append(part.split(" (line")[0])
        elif part.endswith(".toml)"):
            # 'NAME (pyproject.toml)': pip-compile read [project] dependencies; like '-r FILE', a direct requirement.
            entries.append("-r " + part.rsplit("(", 1)[1].rstrip(")"))
        elif part:
            entries.append(canonicalize_name(part.split("[")[0].split()[0]))
    return entries
