"""The freshness check (`mlrepro lock --check`): is the lock still the resolution of requirements.in?

Offline when the locked wheels are in the wheelhouse; pure apart from reading
files. It verifies, for the image's target (Linux, the configured Python X.Y
and machine): every direct requirement of `requirements.in` whose marker
applies is pinned at a version its specifier allows and is annotated
``# via -r requirements.in`` (and nothing else is); every pin parses, is exact
and has hashes; the header names the image's Python; each locked wheel in the
wheelhouse has a hash the lock lists and fits the target's Python
(Requires-Python); and the resolution is closed and minimal: every
Requires-Dist of every locked package (markers and extras evaluated for the
target) is satisfied by a pin, and every pin is reachable from
`requirements.in`. Missing wheels are fetched by the `fetch` the caller passes
(the CLI passes `harness.image.wheelhouse.fetch`, which needs the index);
without one, missing wheels are unusable input. Passing it in keeps this
package free of `harness.image`, which itself imports the lock.

A stale lock is a result (`CheckResult`, exit 1, each finding names the
package and says to run `mlrepro lock`); unusable input is a `LockError`
(exit 2): a bad `requirements.in` line, a lock compiled for another Python,
wheels neither at hand nor fetchable. python_full_version markers are
evaluated as X.Y.0 (the lock only records X.Y).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness.errors import LockError, WheelhouseError
from harness.lock.lockfile import Lock, lock_problem, lock_python_version, parse_lock, read_file, via_annotations
from harness.lock.requirements import DirectRequirement, parse_direct
from harness.lock.wheels import WheelMetadata, damaged, file_sha256, read_wheel_metadata, wheel_files

if TYPE_CHECKING:  # harness.image imports the lock: only its types here
    from harness.image.wheelhouse import Target

__all__ = ["RUN_HINT", "CheckResult", "Finding", "WheelFetch", "check", "check_closure", "check_direct", "marker_environment"]

RUN_HINT = "run 'mlrepro lock'"


def _quiet(message: str) -> None:
    pass


class WheelFetch(Protocol):
    """Fetches the locked wheels into a directory; `harness.image.wheelhouse.fetch` is one."""

    def __call__(self, directory: Path, lock_path: Path, lock: Lock, target: Target, *,
                 progress: Callable[[str], None]) -> object: ...


@dataclass(frozen=True)
class Finding:
    """One reason the lock is stale; `package` is None when it is about the file as a whole."""

    package: str | None
    message: str


@dataclass(frozen=True)
class CheckResult:
    """The check's verdict: fresh when there is no finding; `pins` and `target` for the report line."""

    findings: tuple[Finding, ...]
    pins: int = 0
    target: str = ""

    @property
    def fresh(self) -> bool:
        return not self.findings


def marker_environment(target: Target) -> dict[str, str]:
    """PEP 508 marker values of the image: Linux, CPython `target.python_version`, `target.arch`."""
    full = f"{target.python_version}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": target.arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full,
        "python_version": target.python_version,
        "sys_platform": "linux",
        "extra": "",
    }


def _applies(req: Requirement, env: Mapping[str, str], extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**env, "extra": extra})


def check_direct(direct: Sequence[DirectRequirement], lock: Lock, lock_text: str, target: Target,
                 in_name: str = "requirements.in") -> tuple[Finding, ...]:
    """What can be said from the two files alone: direct pins, their specifiers, the '# via -r' annotations."""
    env = marker_environment(target)
    lock_name = Path(lock.path).name
    findings: list[Finding] = []
    wanted: dict[str, DirectRequirement] = {}
    for d in direct:
        if not _applies(d.requirement, env):
            continue
        wanted.setdefault(d.name, d)
        pin = lock.pins.get(d.name)
        if pin is None:
            findings.append(Finding(d.name, f"{in_name}:{d.line} asks for '{d.text}', but {lock_name} does not pin {d.name} (a dependency was added); {RUN_HINT}"))
        elif not d.requirement.specifier.contains(pin.version, prereleases=True):
            findings.append(Finding(d.name, f"{in_name}:{d.line} asks for '{d.text}', but {lock_name}:{pin.line} pins {d.name}=={pin.version} (re-pinned or edited); {RUN_HINT}"))
    annotations = via_annotations(lock_text)
    if any(annotations.values()):
        recorded = {name for name, vias in annotations.items() if any(v.startswith("-r ") for v in vias)}
        for name in sorted(set(wanted) - recorded):
            pin = lock.pins.get(name)
            if pin is not None and annotations.get(name):
                findings.append(Finding(name, f"{in_name} now lists {name}, but {lock_name} records it only as a dependency of {', '.join(sorted(v for v in annotations[name] if not v.startswith('-')))} (a dependency was added); {RUN_HINT}"))
        for name in sorted(recorded - set(wanted)):
            findings.append(Finding(name, f"{lock_name} records {name} as required by {in_name}, which no longer lists it (a dependency was removed); {RUN_HINT}"))
    return tuple(findings)


def check_closure(direct: Sequence[DirectRequirement], lock: Lock, metadata: Mapping[str, WheelMetadata],
                  target: Target, in_name: str = "requirements.in") -> tuple[Finding, ...]:
    """Closed and minimal: every requirement of every reached package pinned and satisfied, every pin reached.

    `metadata` must hold every pin. Markers and extras are evaluated for `target`.
    """
    env = marker_environment(target)
    lock_name = Path(lock.path).name
    findings: list[Finding] = []
    reached: set[str] = set()
    done: set[tuple[str, str]] = set()
    queue: list[tuple[str, str]] = []

    def need(parent: str, req: Requirement) -> None:
        name = canonicalize_name(req.name)
        pin = lock.pins.get(name)
        if pin is None:
            findings.append(Finding(name, f"{parent} requires '{req}', but {lock_name} has no pin for {name}; {RUN_HINT}"))
            return
        if not req.specifier.contains(pin.version, prereleases=True):
            findings.append(Finding(name, f"{parent} requires '{req}', but {lock_name}:{pin.line} pins {name}=={pin.version}; {RUN_HINT}"))
        reached.add(name)
        for extra in ("", *sorted(canonicalize_name(e) for e in req.extras)):
            if (name, extra) not in done:
                done.add((name, extra))
                queue.append((name, extra))

    for d in direct:
        if _applies(d.requirement, env):
            need(f"{in_name}:{d.line}", d.requirement)
    while queue:
        name, extra = queue.pop(0)
        meta = metadata[name]
        pin = lock.pins[name]
        for raw in meta.requires_dist:
            try:
                req = Requirement(raw)
            except InvalidRequirement:
                continue  # pip would refuse such a wheel; not the lock's fault
            if _applies(req, env, extra):
                need(f"{name}=={pin.version}", req)
    python = Version(f"{target.python_version}.0")
    for name, pin in sorted(lock.pins.items()):
        meta = metadata.get(name)
        if meta is not None and meta.requires_python:
            try:
                ok = SpecifierSet(meta.requires_python).contains(python, prereleases=True)
            except InvalidSpecifier:
                ok = True
            if not ok:
                findings.append(Finding(name, f"{name}=={pin.version} requires Python {meta.requires_python}, but the image runs Python {target.python_version}; {RUN_HINT}"))
        if name not in reached:
            findings.append(Finding(name, f"{lock_name}:{pin.line} pins {name}=={pin.version}, but nothing in {in_name} needs it any more (a dependency was removed); {RUN_HINT}"))
    return tuple(findings)


def check(requirements_in: Path, lock_path: Path, target: Target, wheelhouse: Path, *,
          fetch: WheelFetch | None = None, progress: Callable[[str], None] = _quiet) -> CheckResult:
    """Is `lock_path` still the resolution of `requirements_in` for `target`? Offline when the wheels are at hand.

    `fetch` fills `wheelhouse` when locked wheels are missing from it (None:
    missing wheels are a LockError that says to run 'mlrepro wheelhouse').
    """
    in_name, lock_name = requirements_in.name, lock_path.name
    direct = parse_direct(read_file(requirements_in, "requirements.in", "create it, or point [tool.mlrepro] requirements_in at it"), in_name)
    if not lock_path.exists():
        return CheckResult((Finding(None, f"{lock_name} does not exist; {RUN_HINT} to create it"),), 0, target.key())
    text = read_file(lock_path, "lock file", RUN_HINT)
    compiled_for = lock_python_version(text)
    if compiled_for is not None and compiled_for != target.python_version:
        raise LockError(f"{lock_name}: expected a lock compiled for the image's Python {target.python_version}, found one compiled with Python {compiled_for}; re-resolve it with 'mlrepro lock --upgrade'")
    try:
        lock = parse_lock(text, lock_name)
    except LockError as exc:
        return CheckResult((Finding(None, f"{lock_problem(exc)}; a hand edit? restore the line, or delete it and {RUN_HINT}"),), 0, target.key())
    findings = list(check_direct(direct, lock, text, target, in_name))
    if compiled_for is None:
        findings.insert(0, Finding(None, f"{lock_name} has no pip-compile header naming its Python; {RUN_HINT}"))
    if not lock.pins:
        findings.append(Finding(None, f"{lock_name} pins nothing; {RUN_HINT}"))
    if findings:
        return CheckResult(tuple(findings), len(lock.pins), target.key())
    metadata, wheel_findings = _locked_metadata(lock, lock_path, target, wheelhouse, fetch=fetch, progress=progress)
    if wheel_findings:
        return CheckResult(wheel_findings, len(lock.pins), target.key())
    return CheckResult(check_closure(direct, lock, metadata, target, in_name), len(lock.pins), target.key())


def _drop_damaged(lock: Lock, wheels: dict, fetch: WheelFetch | None, progress: Callable[[str], None]) -> dict:
    """A locked wheel whose hash the lock does not list may be a damaged download, not a stale lock: a wheel
    that is no intact zip is removed (and fetched again), so the verdict is about the lock, never the disk."""
    kept = {key: list(paths) for key, paths in wheels.items()}
    for pin in lock.pins.values():
        for path in list(kept.get((pin.name, Version(pin.version)), ())):
            if f"sha256:{file_sha256(path)}" in pin.hashes:
                continue
            why = damaged(path)
            if why is None:
                continue  # intact but not the locked bytes: the lock's finding, below
            if fetch is None:
                raise LockError(f"{path}: the wheelhouse holds a damaged wheel ({why}); the lock is not at fault: "
                                "delete it and run 'mlrepro wheelhouse'")
            progress(f"{path.name} in the wheelhouse is damaged ({why}): removed, fetching it again (the lock is not at fault)")
            path.unlink()
            kept[(pin.name, Version(pin.version))].remove(path)
    return {key: paths for key, paths in kept.items() if paths}


_MISMATCH = re.compile(r"^\s+([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) from ", re.M)


def _locked_metadata(lock: Lock, lock_path: Path, target: Target, wheelhouse: Path, *, fetch: WheelFetch | None,
                     progress: Callable[[str], None]) -> tuple[dict[str, WheelMetadata], tuple[Finding, ...]]:
    """Metadata of every locked wheel, from the wheelhouse (fetched when incomplete), plus hash findings."""
    lock_name = lock_path.name
    wheels = _drop_damaged(lock, wheel_files(wheelhouse), fetch, progress)
    missing = [pin for pin in lock.pins.values() if (pin.name, Version(pin.version)) not in wheels]
    if missing:
        # A version edited by hand keeps the hashes of the old version: recognise them before fetching.
        by_hash = {f"sha256:{file_sha256(p)}": (name, version) for (name, version), paths in wheels.items() for p in paths}
        edited = [Finding(pin.name, f"{lock_name}:{pin.line} pins {pin.name}=={pin.version} with the hashes of {pin.name} {by_hash[h][1]} (a hand edit); {RUN_HINT}")
                  for pin in missing for h in pin.hashes[:1] if h in by_hash and by_hash[h][0] == pin.name]
        if edited:
            return {}, tuple(edited)
        listed = ", ".join(f"{p.name}=={p.version}" for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        if fetch is None:
            raise LockError(f"the check needs the locked wheels, and {len(missing)} are not in {wheelhouse} ({listed}); run 'mlrepro wheelhouse' with the index reachable")
        progress(f"{len(missing)} locked wheel(s) not in {wheelhouse.name}/ ({listed}): fetching them to read their metadata")
        try:
            fetch(wheelhouse, lock_path, lock, target, progress=progress)
        except WheelhouseError as exc:
            if "DO NOT MATCH THE HASHES" in f"{exc.message}\n{exc.evidence}".upper():
                mismatched = _MISMATCH.findall(exc.evidence)  # the evidence is a tail: the names may be cut off
                if mismatched:
                    return {}, tuple(Finding(canonicalize_name(n), f"{lock_name} pins {n}=={v} with hashes that are not those of its wheels (a hand edit); {RUN_HINT}") for n, v in mismatched)
                return {}, (Finding(None, f"the index serves wheels whose hashes {lock_name} does not list, for one of {listed} (a version or hash edited by hand); {RUN_HINT}"),)
            raise LockError(f"the check needs the locked wheels, {len(missing)} are not in {wheelhouse} ({listed}) and fetching them failed: {exc.message}", evidence=exc.evidence) from None
        wheels = wheel_files(wheelhouse)
    metadata: dict[str, WheelMetadata] = {}
    findings: list[Finding] = []
    for pin in lock.pins.values():
        paths = wheels.get((pin.name, Version(pin.version)))
        if not paths:
            raise LockError(f"{wheelhouse}: expected a wheel of {pin.name}=={pin.version}, found none after fetching; run 'mlrepro wheelhouse'")
        path = paths[0]
        sha256s = [h for h in pin.hashes if h.startswith("sha256:")]
        if sha256s and not any(f"sha256:{file_sha256(p)}" in sha256s for p in paths):
            findings.append(Finding(pin.name, f"{lock_name}:{pin.line}: none of the hashes of {pin.name}=={pin.version} is that of {path.name} (a hand edit?); {RUN_HINT}"))
        metadata[pin.name] = read_wheel_metadata(path)
    return metadata, tuple(findings)
