"""The lock lifecycle: refresh `requirements.txt` with pip-compile, and check it is fresh.

Refresh (`mlrepro lock`)
    pip-compile with ``--generate-hashes --allow-unsafe --strip-extras``, a stable
    header (``CUSTOM_COMPILE_COMMAND="mlrepro lock"``) and never an index URL,
    find-links or trusted host in the output. Inputs are validated before
    anything runs (`plan_refresh`), the result is validated with
    `harness.lock.parse_lock` after (`refresh`), and the text is returned: the
    CLI writes it atomically, and only when it changed. So every failure leaves
    `requirements.txt` byte-identical.

    Resolution for the image. pip-compile resolves for the interpreter that runs
    it (``--pip-args "--python-version ... --platform ..."`` does not change its
    answer), so a lock is only right for the image when the image's own Python
    computes it. `ContainerResolver` (the default) does exactly that: in a
    throwaway, labeled container of the resolved base image (network "bridge")
    it creates a venv with the image's python3, installs the host's exact pip
    and pip-tools versions from wheels fetched on the host for the image's
    target (no index needed for that step), copies in `requirements.in`, the
    existing lock (it seeds minimal upgrades, as pip-compile does with its
    output file) and the host's CA bundle (`PIP_CERT`; a copy, not a bind
    mount, so remote engines work too), runs pip-compile there against the
    index and copies the lock out. Measured on this machine (2 cores) for
    ml_project: 5-9 s to start the container and install pip-tools, then
    21-26 s to resolve from scratch (no pip cache in the container; the host
    resolver takes 4 s warm, 21 s cold), 1.5 s when the seeded lock is kept.
    `HostResolver` (``--resolver host``) runs pip-compile on the host; its answer
    is the image's only when the host's Python X.Y, OS, machine and glibc equal
    the image's, and it refuses otherwise.

    Both resolvers see the same pip configuration: pip config files and the
    host's PIP_* variables are ignored (a developer's pip.conf may add mirrors
    or find-links the container cannot see, and the lock must not depend on
    them), except those in `FORWARDED_ENV` and PIP_CERT. ``--index-url`` and
    ``--find-links DIR`` (offline: ``--no-index``) are explicit options.

    Failures of pip-compile become one line (`explain_failure`): no such
    package (the index is asked directly, from where pip-compile ran, to tell
    "does not exist" from "unreachable"), no matching version, conflicting
    requirements (who requires what), index unreachable or TLS not trusted.

Check (`mlrepro lock --check`, the freshness gate)
    Offline when the locked wheels are in the wheelhouse; pure apart from
    reading files. It verifies, for the image's target (Linux, the configured
    Python X.Y and machine): every direct requirement of `requirements.in`
    whose marker applies is pinned at a version its specifier allows and is
    annotated ``# via -r requirements.in`` (and nothing else is); every pin
    parses, is exact and has hashes; the header names the image's Python; each
    locked wheel in the wheelhouse has a hash the lock lists and fits the
    target's Python (Requires-Python); and the resolution is closed and
    minimal: every Requires-Dist of every locked package (markers and extras
    evaluated for the target) is satisfied by a pin, and every pin is reachable
    from `requirements.in`. Missing wheels are fetched with
    `harness.image.wheelhouse.fetch` (that needs the index).

    A stale lock is a result (`CheckResult`, exit 1, each finding names the
    package and says to run `mlrepro lock`); unusable input is a `LockError`
    (exit 2): a bad `requirements.in` line, a lock compiled for another Python,
    wheels neither at hand nor fetchable. python_full_version markers are
    evaluated as X.Y.0 (the lock only records X.Y).

Policy for a hand-broken existing lock: `mlrepro lock` refuses to seed a
resolution from it (an unpinned or unhashed line would otherwise be re-resolved
silently) and says to fix or delete the line, or use ``--upgrade``.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Protocol, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from harness.errors import LockError, WheelhouseError, tail
from harness.lock.lockfile import Lock, _logical_lines, parse_lock
from harness.image.wheelhouse import Target

if TYPE_CHECKING:  # docker stays unimported for the pure parts and --check
    from harness.docker.engine import Container, Engine

__all__ = [
    "COMPILE_COMMAND", "FORWARDED_ENV", "DEFAULT_INDEX_URL",
    "DirectRequirement", "WheelMetadata", "Finding", "CheckResult", "PinChange", "LockUpdate",
    "CompileOptions", "RefreshPlan", "HostResolver", "ContainerResolver", "container_resolver",
    "parse_requirements_in", "lock_python_version", "via_annotations", "marker_environment",
    "check_direct", "check_closure", "explain_failure", "pip_evidence", "diff_pins", "pip_compile_args", "pip_environment",
    "host_mismatch", "host_target", "read_wheel_metadata", "plan_refresh", "refresh", "check",
]

#: What the lock's header names as the command that made it.
COMPILE_COMMAND = "mlrepro lock"
DEFAULT_INDEX_URL = "https://pypi.org/simple"
#: Host variables both resolvers pass on to pip (everything else PIP_* is dropped).
FORWARDED_ENV = (
    "PIP_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
RUN_HINT = "run 'mlrepro lock'"

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# requirements.in ------------------------------------------------------------


@dataclass(frozen=True)
class DirectRequirement:
    """One line of requirements.in."""

    name: str  # canonical
    requirement: Requirement
    line: int

    @property
    def text(self) -> str:
        return str(self.requirement)


_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.I)
_ARCHIVE = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")


def parse_requirements_in(text: str, path: str = "requirements.in") -> tuple[DirectRequirement, ...]:
    """Names, specifiers and markers of `requirements.in`; one-line LockError on a line we cannot lock.

    Released packages only: editable, VCS, URL and path requirements cannot be
    pinned with hashes for a hermetic image; includes and pip options are
    refused so the file alone says what is locked (index options belong to
    `mlrepro lock --index-url` or PIP_INDEX_URL).
    """
    direct: list[DirectRequirement] = []
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        first = line.split()[0]
        if first in ("-e", "--editable") or first.startswith("--editable="):
            raise LockError(f"{where}: expected a released package such as 'numpy>=2', found an editable requirement ({line[:80]}); the image installs released wheels only: publish it, or vendor it into the project")
        if first in ("-r", "--requirement", "-c", "--constraint") or first.startswith(("-r", "-c", "--requirement=", "--constraint=")):
            raise LockError(f"{where}: expected requirements only, found an include ({line[:80]}); list those requirements in {path} itself")
        if first.startswith("-"):
            raise LockError(f"{where}: expected requirements only, found the pip option {first}; pass --index-url/--find-links to 'mlrepro lock' or set PIP_INDEX_URL instead")
        if _VCS.match(line) or "://" in line.split(";")[0] or line.startswith((".", "/", "~")) or line.split(";")[0].strip().endswith(_ARCHIVE):
            raise LockError(f"{where}: expected a released package such as 'numpy>=2', found a VCS/URL/path requirement ({line[:80]}); publish a release to the index, or vendor the code into the project")
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            raise LockError(f"{where}: expected a requirement such as 'scikit-learn>=1.3' or 'numpy; python_version >= \"3.11\"', found {line[:80]!r} ({reason}); fix the line") from None
        if req.url:
            raise LockError(f"{where}: expected a released package such as 'numpy>=2', found a URL requirement ({line[:80]}); publish a release to the index, or vendor the code into the project")
        direct.append(DirectRequirement(canonicalize_name(req.name), req, number))
    if not direct:
        raise LockError(f"{path}: expected at least one requirement, found none; list the project's direct dependencies, one per line")
    _reject_conflicting_pins(direct, path)
    return tuple(direct)


def _reject_conflicting_pins(direct: Sequence[DirectRequirement], path: str) -> None:
    """An exact pin that another unconditional line of the same package excludes."""
    unconditional = [d for d in direct if d.requirement.marker is None]
    for pinned in unconditional:
        for spec in pinned.requirement.specifier:
            if spec.operator not in ("==", "==="):
                continue
            for other in unconditional:
                if other is pinned or other.name != pinned.name:
                    continue
                if not other.requirement.specifier.contains(spec.version, prereleases=True):
                    a, b = sorted((pinned, other), key=lambda d: d.line)
                    raise LockError(
                        f"{path}:{b.line}: conflicting pins for {pinned.name}: '{a.text}' (line {a.line}) and '{b.text}' (line {b.line}) cannot both hold; keep one of them"
                    )


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
        elif part:
            entries.append(canonicalize_name(part.split("[")[0].split()[0]))
    return entries


# Wheels ---------------------------------------------------------------------


@dataclass(frozen=True)
class WheelMetadata:
    name: str  # canonical
    version: str
    requires_dist: tuple[str, ...]
    requires_python: str | None = None


def read_wheel_metadata(path: Path) -> WheelMetadata:
    """Name, version, Requires-Dist and Requires-Python from a wheel's `*.dist-info/METADATA`."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            if not names:
                raise WheelhouseError(f"{path.name}: expected a wheel with .dist-info/METADATA, found none; delete it and run 'mlrepro wheelhouse'")
            raw = zf.read(names[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelhouseError(f"{path.name}: expected a readable wheel, found {type(exc).__name__}: {exc}; delete it and run 'mlrepro wheelhouse'") from None
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    return WheelMetadata(
        name=canonicalize_name(str(message.get("Name", ""))),
        version=str(message.get("Version", "")),
        requires_dist=tuple(str(r) for r in message.get_all("Requires-Dist") or ()),
        requires_python=str(message["Requires-Python"]) if message.get("Requires-Python") else None,
    )


def _wheel_files(directory: Path) -> dict[tuple[str, Version], list[Path]]:
    found: dict[tuple[str, Version], list[Path]] = {}
    for path in sorted(directory.glob("*.whl")) if directory.is_dir() else ():
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        found.setdefault((canonicalize_name(name), version), []).append(path)
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# The freshness check (pure) -------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One reason the lock is stale; `package` is None when it is about the file as a whole."""

    package: str | None
    message: str


@dataclass(frozen=True)
class CheckResult:
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


# Refresh: the pure parts ----------------------------------------------------


@dataclass(frozen=True)
class CompileOptions:
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    index_url: str | None = None
    find_links: Path | None = None  # resolve offline from this wheel directory only


def pip_compile_args(*, src: str, output: str, options: CompileOptions, find_links: str | None = None,
                     cache_dir: str | None = None) -> list[str]:
    """pip-compile's arguments; `find_links` is the wheel directory as the resolver sees it."""
    args = [
        "--generate-hashes", "--allow-unsafe", "--strip-extras", "--resolver=backtracking",
        "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host", "--no-emit-options",
        "--no-config", "--newline=lf", "--quiet", "--output-file", output,
    ]
    if options.upgrade:
        args.append("--upgrade")
    for package in options.upgrade_packages:
        args += ["--upgrade-package", package]
    if find_links is not None:
        args += ["--no-index", "--find-links", find_links]
    elif options.index_url:
        args += ["--index-url", options.index_url]
    if cache_dir:
        args += ["--cache-dir", cache_dir]
    return args + [src]


def pip_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables pip may see from the host: the forwarded ones, nothing from pip config."""
    env = {k: environ[k] for k in FORWARDED_ENV if environ.get(k)}
    env.update({
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "CUSTOM_COMPILE_COMMAND": COMPILE_COMMAND,
    })
    return env


def host_mismatch(target: Target, *, python_version: str, system: str, machine: str, glibc: str) -> str | None:
    """Why the host cannot answer for the image, or None when it can."""
    host = f"Python {python_version} on {system}/{machine} glibc {glibc or 'none'}"
    image = f"Python {target.python_version} on linux/{target.arch} glibc {target.glibc}"
    if (python_version, system, machine, glibc) != (target.python_version, "linux", target.arch, target.glibc):
        return f"the host is {host} but the image is {image}"
    return None


def host_target() -> dict[str, str]:
    """This interpreter's python X.Y, OS, machine and glibc X.Y, as `host_mismatch` takes them."""
    libc, libc_version = platform.libc_ver()
    return {
        "python_version": "%d.%d" % sys.version_info[:2],
        "system": sys.platform,
        "machine": _arch(platform.machine()),
        "glibc": ".".join(libc_version.split(".")[:2]) if libc == "glibc" else "",
    }


def _arch(machine: str) -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine)


_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)")
_REQ_INFO = re.compile(r"RequirementInformation\(requirement=\w+\('([^']*)'\), parent=(None|\w+\('([^']*)'\))\)")
_UNREACHABLE = re.compile(r"NewConnectionError|ConnectionError|Max retries exceeded|ProxyError|Name or service not known|Temporary failure in name resolution|Network is unreachable|Connection refused|timed out", re.I)
_TLS = re.compile(r"CERTIFICATE_VERIFY_FAILED|SSLError|certificate verify failed", re.I)


def _candidate(link: str) -> str:
    """'alpha 1.0' from a candidate's link (wheel or sdist URL)."""
    filename = link.split()[0].split("#")[0].rstrip("/").rsplit("/", 1)[-1]
    with contextlib.suppress(InvalidWheelFilename, InvalidVersion):
        name, version, _, _ = parse_wheel_filename(filename)
        return f"{name} {version}"
    for ext in _ARCHIVE:
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename


def explain_failure(output: str, *, probe: Callable[[str], "Probe"] | None = None, source: str = DEFAULT_INDEX_URL,
                    offline_dir: str | None = None, in_name: str = "requirements.in") -> str:
    """pip-compile's failure as one line: what was expected, what was found, what to do.

    `probe(name)` asks the index about a package pip found no version of,
    from where pip-compile ran (None: do not ask).
    """
    if _TLS.search(output):
        return f"could not reach the index {source}: its TLS certificate is not trusted ({_TLS.search(output).group(0)}); point PIP_CERT at the CA bundle that signs it"
    conflicts = _REQ_INFO.findall(output)
    if "conflicting dependencies" in output or "ResolutionImpossible" in output and len({c[0] for c in conflicts}) > 1:
        parts = []
        for requirement, _, link in conflicts:
            who = _candidate(link) if link else in_name
            part = f"{who} requires {requirement}"
            if part not in parts:
                parts.append(part)
        if len(parts) > 1:
            return f"conflicting requirements: {'; '.join(parts)}; no version satisfies them all: relax a specifier in {in_name}, or upgrade the package that holds the old bound ('mlrepro lock --upgrade-package NAME')"
    missing = _NOT_FOUND.search(output)
    if missing:
        requirement, versions = missing.group(1), missing.group(2).strip()
        name = re.split(r"[\s<>=!~;\[(@]", requirement, maxsplit=1)[0]
        if versions and versions != "none":
            return f"no release of {name} matches '{requirement}' for the image's Python (available: {versions}); relax the specifier in {in_name}"
        if offline_dir is not None:
            return f"no wheel of {name} in {offline_dir} (resolving offline with --find-links); add it there, or drop --find-links to use the index"
        if probe is not None:
            answer = probe(name)
            if answer.status == 404:
                return f"package {name} does not exist on {source} (HTTP 404); check the name in {in_name}"
            if answer.status is None:
                if _TLS.search(answer.error):
                    return f"could not reach the index {source}: its TLS certificate is not trusted ({answer.error}); point PIP_CERT at the CA bundle that signs it"
                return f"the index {source} is unreachable ({answer.error}); check the network, proxy or --index-url, and retry"
            if answer.status != 200:
                return f"the index {source} answered HTTP {answer.status} for {name}; check --index-url and its credentials"
            return f"{name} exists on {source} but has no release usable by the image's Python and platform; pin a version that has one, or check Requires-Python"
        return f"no release of {name} found on {source}; check the name in {in_name} and that the index is reachable"
    if _UNREACHABLE.search(output):
        return f"the index {source} is unreachable ({_UNREACHABLE.search(output).group(0)}); check the network, proxy or --index-url, and retry"
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")]
    last = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1].strip()
    return f"pip-compile failed: {last[:300]}; see the output below"


_TRACEBACK_NOISE = ("Traceback (most recent call last)", "The above exception was", "During handling of the above")


def pip_evidence(output: str, lines: int = 20) -> str:
    """pip-compile's output without Python tracebacks: its ERROR/WARNING lines and final exception."""
    kept = []
    for line in output.splitlines():
        stripped = line.strip()
        if not stripped or line.startswith(("  File ", "    ")) or stripped.startswith(_TRACEBACK_NOISE) or set(stripped) <= set("^~ "):
            continue
        kept.append(stripped)
    return tail("\n".join(kept) if kept else output, lines)


@dataclass(frozen=True)
class PinChange:
    name: str
    old: str | None  # None: added
    new: str | None  # None: removed

    def __str__(self) -> str:
        if self.old is None:
            return f"+ {self.name} {self.new}"
        if self.new is None:
            return f"- {self.name} {self.old}"
        return f"~ {self.name} {self.old} -> {self.new}"


def diff_pins(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[PinChange, ...]:
    names = sorted(set(old) | set(new))
    return tuple(PinChange(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n))


# Resolvers ------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """The index's answer for one project page: HTTP status, or None and the connection error."""

    status: int | None
    error: str = ""


# Runs under any python3 (host or image): ask the index for one project page.
_PROBE_SCRIPT = r"""
import json, os, ssl, sys, urllib.error, urllib.request
url = sys.argv[1].rstrip("/") + "/" + sys.argv[2] + "/"
ctx = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
try:
    with urllib.request.urlopen(url, timeout=20, context=ctx) as r:
        print(json.dumps({"status": r.status}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code}))
except Exception as e:
    print(json.dumps({"status": None, "error": (type(e).__name__ + ": " + str(getattr(e, "reason", e)))[:200]}))
"""


def _parse_probe(output: str) -> Probe:
    for line in reversed(output.strip().splitlines()):
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            return Probe(data.get("status"), data.get("error", ""))
    return Probe(None, f"probe gave no answer: {output.strip()[:120]}")


@dataclass(frozen=True)
class CompileRun:
    exit_code: int
    output: str
    lock_text: str | None
    seconds: float


class Resolver(Protocol):
    """Where pip-compile runs. `describe()` names it for messages."""

    def describe(self) -> str: ...
    def ensure_target(self, target: Target) -> None: ...
    def compile(self, files: Mapping[str, bytes], *, src: str, output: str, options: CompileOptions) -> CompileRun: ...
    def probe(self, index_url: str, name: str) -> Probe: ...


class HostResolver:
    """pip-compile under this interpreter; only the image's answer when the host matches the image."""

    def __init__(self, *, environ: Mapping[str, str] | None = None, cache_dir: Path | None = None, timeout: float = 1800) -> None:
        self.env = _host_env(os.environ if environ is None else environ)
        self.cache_dir = cache_dir
        self.timeout = timeout

    def describe(self) -> str:
        return f"the host's Python {platform.python_version()}"

    def ensure_target(self, target: Target) -> None:
        reason = host_mismatch(target, **host_target())
        if reason:
            raise LockError(f"--resolver host cannot lock for the image: {reason}; use the default container resolver (drop --resolver host)")

    def compile(self, files: Mapping[str, bytes], *, src: str, output: str, options: CompileOptions) -> CompileRun:
        from harness.ownership import scratch_dir  # lazily: --check must not need docker's imports

        with scratch_dir("lock") as work:
            for name, data in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_bytes(data)
            args = pip_compile_args(src=src, output=output, options=options,
                                    find_links=str(options.find_links.resolve()) if options.find_links else None,
                                    cache_dir=str(self.cache_dir) if self.cache_dir else None)
            start = time.monotonic()
            try:
                proc = subprocess.run([sys.executable, "-m", "piptools", "compile", *args], cwd=work, env=self.env,
                                      capture_output=True, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise LockError(f"pip-compile on the host did not finish within {self.timeout:g} s; check the index and retry") from None
            seconds = time.monotonic() - start
            out_path = work / output
            text = out_path.read_text(encoding="utf-8") if proc.returncode == 0 and out_path.is_file() else None
            return CompileRun(proc.returncode, proc.stdout + proc.stderr, text, seconds)

    def probe(self, index_url: str, name: str) -> Probe:
        try:
            proc = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT, index_url, name], env=self.env,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return Probe(None, "no answer within 60 s")
        return _parse_probe(proc.stdout + proc.stderr)


def _host_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if not k.startswith("PIP_") or k.startswith("PIP_TOOLS_")}
    env.update(pip_environment(environ))
    if environ.get("PIP_CERT"):
        env["PIP_CERT"] = environ["PIP_CERT"]
    return env


def ca_bundle(environ: Mapping[str, str]) -> Path | None:
    """The CA bundle the host trusts for the index (PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, system)."""
    import ssl

    candidates = [environ.get("PIP_CERT"), environ.get("REQUESTS_CA_BUNDLE"), environ.get("SSL_CERT_FILE"),
                  ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class ContainerResolver:
    """pip-compile under the image's own python3, in a container opened by `container_resolver`."""

    ROOT = "/tmp/mlrepro-lock"

    def __init__(self, container: "Container", *, image: str, python: Mapping[str, str], env: Mapping[str, str], timeout: float) -> None:
        self.container, self.image, self.python, self.env, self.timeout = container, image, python, dict(env), timeout
        self._runs = 0

    def describe(self) -> str:
        return f"Python {self.python.get('full', '?')} in a container of {self.image}"

    def ensure_target(self, target: Target) -> None:
        found = (self.python.get("python"), self.python.get("machine"))
        if found != (target.python_version, target.arch):
            raise LockError(
                f"the base image {self.image} runs Python {found[0]} on {found[1]}, but the image is configured for Python "
                f"{target.python_version} on {target.arch} ([tool.mlrepro] wheelhouse.python_version); make them agree"
            )

    def _exec(self, command: list[str], *, timeout: float, what: str, workdir: str | None = None) -> "ExecResultLike":
        result = self.container.exec(command, timeout=timeout, env=self.env, workdir=workdir)
        if result.timed_out:
            raise LockError(f"{what} in the container did not finish within {timeout:g} s and was stopped; check the index and retry")
        return result

    def compile(self, files: Mapping[str, bytes], *, src: str, output: str, options: CompileOptions) -> CompileRun:
        self._runs += 1
        work = f"{self.ROOT}/src{self._runs}"
        self.container.put_files(work, dict(files))
        links = None
        if options.find_links is not None:
            links = f"{self.ROOT}/links{self._runs}"
            self.container.put_files(links, {p.name: p.read_bytes() for p in sorted(options.find_links.iterdir()) if p.is_file()})
        args = pip_compile_args(src=src, output=output, options=options, find_links=links)
        start = time.monotonic()
        result = self._exec([f"{self.ROOT}/venv/bin/pip-compile", *args], timeout=self.timeout, what="pip-compile", workdir=work)
        seconds = time.monotonic() - start
        text = None
        if result.exit_code == 0:
            produced = self.container.get_dir(work)
            data = produced.get(output)
            text = data.decode("utf-8") if data is not None else None
        return CompileRun(result.exit_code, result.output, text, seconds)

    def probe(self, index_url: str, name: str) -> Probe:
        result = self._exec(["python3", "-c", _PROBE_SCRIPT, index_url, name], timeout=60, what="index probe")
        return _parse_probe(result.output)


class ExecResultLike(Protocol):
    exit_code: int
    output: str


_PYTHON_INFO = "import json, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'full': platform.python_version(), 'machine': platform.machine()}))"


def fetch_tool_wheels(directory: Path, target: Target, *, environ: Mapping[str, str]) -> list[Path]:
    """The host's exact pip and pip-tools (and their dependencies) as wheels for the image's Python."""
    pins = [f"pip=={importlib_metadata.version('pip')}", f"pip-tools=={importlib_metadata.version('pip-tools')}"]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(directory), *target.pip_args(), *pins]
    proc = subprocess.run(cmd, env=_host_env(environ), capture_output=True, text=True)
    if proc.returncode != 0:
        reason = explain_failure(proc.stderr, source=environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL)
        raise LockError(f"could not fetch {' and '.join(pins)} for the image's Python {target.python_version} on the host: {reason}", evidence=tail(proc.stderr))
    return sorted(directory.glob("*.whl"))


@contextlib.contextmanager
def container_resolver(engine: "Engine", image: str, target: Target, *, environ: Mapping[str, str] | None = None,
                       timeout: float = 1800, progress: Progress = _quiet) -> Iterator[ContainerResolver]:
    """A container of `image` with pip-tools installed in a venv of its python3; removed on exit."""
    environ = os.environ if environ is None else environ
    root = ContainerResolver.ROOT
    env = pip_environment(environ)
    files: dict[str, bytes] = {}
    bundle = ca_bundle(environ)
    if bundle is not None:
        files["host-ca.crt"] = bundle.read_bytes()
        env["PIP_CERT"] = f"{root}/host-ca.crt"
    start = time.monotonic()
    from harness.ownership import scratch_dir

    with scratch_dir("pip-tools") as tmp:
        for wheel in fetch_tool_wheels(tmp, target, environ=environ):
            files[f"tools/{wheel.name}"] = wheel.read_bytes()
    pip_version, tools_version = importlib_metadata.version("pip"), importlib_metadata.version("pip-tools")
    with engine.container(image, role="lock", env=env, network="bridge") as container:
        container.put_files(root, files)
        info = container.exec(["python3", "-c", _PYTHON_INFO], timeout=60)
        try:
            python = json.loads(info.output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise LockError(f"the base image {image} has no working python3 ({info.output.strip()[:160]!r}); use a Python base image") from None
        resolver = ContainerResolver(container, image=image, python=python, env=env, timeout=timeout)
        resolver.ensure_target(target)
        made = resolver._exec(["python3", "-m", "venv", f"{root}/venv"], timeout=300, what="python3 -m venv")
        if made.exit_code != 0:
            raise LockError(f"the base image {image} cannot create a venv (python3 -m venv exit {made.exit_code}); install python3-venv in it, or use --resolver host", evidence=tail(made.output))
        installed = resolver._exec([f"{root}/venv/bin/pip", "install", "--quiet", "--no-index", "--find-links", f"{root}/tools",
                                    f"pip=={pip_version}", f"pip-tools=={tools_version}"], timeout=600, what="pip install pip-tools")
        if installed.exit_code != 0:
            raise LockError(f"could not install pip-tools {tools_version} in a container of {image} (exit {installed.exit_code}); see the output below", evidence=tail(installed.output))
        progress(f"pip-tools {tools_version} ready under Python {python['full']} in a container of {image} ({time.monotonic() - start:.1f} s)")
        yield resolver


# Refresh --------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshPlan:
    """Validated inputs of one `mlrepro lock`: nothing has run yet."""

    requirements_in: Path
    lock_path: Path
    in_text: str
    old_text: str | None  # the existing lock, None when there is none
    old_lock: Lock | None
    direct: tuple[DirectRequirement, ...]
    target: Target
    options: CompileOptions
    files: Mapping[str, bytes] = field(repr=False)  # what pip-compile's working directory holds
    src: str = "requirements.in"
    output: str = "requirements.txt"


@dataclass(frozen=True)
class LockUpdate:
    path: Path
    old_text: str | None
    text: str
    lock: Lock
    changes: tuple[PinChange, ...]
    resolver: str
    seconds: float

    @property
    def changed(self) -> bool:
        return self.text != self.old_text


def _read(path: Path, what: str, hint: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"{path}: expected {what}, found no such file; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: expected a readable UTF-8 {what}, found {type(exc).__name__}: {exc}") from None


def _lock_problem(exc: LockError) -> str:
    """parse_lock's message without its advice, to attach the advice that fits the caller."""
    return exc.message.rsplit("; ", 1)[0]


def plan_refresh(requirements_in: Path, lock_path: Path, target: Target, options: CompileOptions = CompileOptions()) -> RefreshPlan:
    """Read and validate everything `refresh` needs; LockError (exit 2) before anything runs."""
    if options.upgrade and options.upgrade_packages:
        raise LockError("expected --upgrade or --upgrade-package, found both; --upgrade already re-resolves every package")
    if options.find_links is not None and not options.find_links.is_dir():
        raise LockError(f"--find-links: expected a directory of wheels, found {str(options.find_links)!r}")
    in_text = _read(requirements_in, "requirements.in", "create it with the project's direct dependencies, one per line")
    direct = parse_requirements_in(in_text, requirements_in.name)
    old_text: str | None = None
    old_lock: Lock | None = None
    if lock_path.exists():
        old_text = _read(lock_path, "lock file", "remove it and run 'mlrepro lock'")
    if old_text is not None and not options.upgrade:
        # The existing lock seeds the resolution: a broken line would be re-resolved silently.
        try:
            old_lock = parse_lock(old_text, lock_path.name)
        except LockError as exc:
            raise LockError(f"{_lock_problem(exc)}; the existing lock seeds the resolution: fix or delete that line and run 'mlrepro lock' again, or re-resolve everything with 'mlrepro lock --upgrade'") from None
        compiled_for = lock_python_version(old_text)
        if compiled_for is not None and compiled_for != target.python_version:
            raise LockError(f"{lock_path.name}: expected a lock compiled for the image's Python {target.python_version}, found one compiled with Python {compiled_for}; its pins may not exist for {target.python_version}: re-resolve with 'mlrepro lock --upgrade'")
    known = {d.name for d in direct} | set(old_lock.pins if old_lock else ())
    for package in options.upgrade_packages:
        try:
            name = canonicalize_name(Requirement(package).name)
        except InvalidRequirement:
            raise LockError(f"--upgrade-package: expected a package name such as 'numpy' (or 'numpy<3'), found {package!r}") from None
        if name not in known:
            raise LockError(f"--upgrade-package {package}: expected a package in {requirements_in.name} or {lock_path.name}, found none named {name}; check the name")
    # pip-compile writes '# via -r <input relative to the cwd>': keep the project's layout.
    common = Path(os.path.commonpath([requirements_in.resolve().parent, lock_path.resolve().parent]))
    src = requirements_in.resolve().relative_to(common).as_posix()
    output = lock_path.resolve().relative_to(common).as_posix()
    files = {src: in_text.encode("utf-8")}
    if old_text is not None and not options.upgrade:
        files[output] = old_text.encode("utf-8")
    return RefreshPlan(requirements_in, lock_path, in_text, old_text, old_lock, direct, target, options, files, src, output)


def refresh(plan: RefreshPlan, resolver: Resolver, *, progress: Progress = _quiet) -> LockUpdate:
    """Run pip-compile through `resolver`; the new lock text, validated (never written here)."""
    resolver.ensure_target(plan.target)
    progress(f"resolving {plan.src} with pip-compile under {resolver.describe()}")
    run = resolver.compile(plan.files, src=plan.src, output=plan.output, options=plan.options)
    source = plan.options.index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL
    if run.exit_code != 0 or run.lock_text is None:
        offline = str(plan.options.find_links) if plan.options.find_links is not None else None
        message = explain_failure(run.output, probe=lambda name: resolver.probe(source, name), source=source,
                                  offline_dir=offline, in_name=plan.requirements_in.name)
        raise LockError(f"{plan.lock_path.name} left unchanged: {message}", evidence=pip_evidence(run.output))
    text = run.lock_text
    try:
        lock = parse_lock(text, plan.lock_path.name)
    except LockError as exc:
        raise LockError(f"{plan.lock_path.name} left unchanged: pip-compile produced an unusable lock ({_lock_problem(exc)}); report this with the output below", evidence=tail(text, 40)) from None
    if not lock.pins:
        raise LockError(f"{plan.lock_path.name} left unchanged: {plan.requirements_in.name} resolved to no packages for the image (every requirement's marker excludes Linux/Python {plan.target.python_version}); check the markers")
    compiled_for = lock_python_version(text)
    if compiled_for != plan.target.python_version:
        raise LockError(f"{plan.lock_path.name} left unchanged: expected a lock for Python {plan.target.python_version}, pip-compile produced one for {compiled_for}; check the resolver's interpreter")
    old = plan.old_lock.versions if plan.old_lock else (_lenient_versions(plan.old_text) if plan.old_text else {})
    progress(f"resolved {len(lock.pins)} pins in {run.seconds:.1f} s")
    return LockUpdate(plan.lock_path, plan.old_text, text, lock, diff_pins(old, lock.versions), resolver.describe(), run.seconds)


def _lenient_versions(text: str) -> dict[str, str]:
    """Versions of a lock that may not parse (for reporting changes after --upgrade)."""
    try:
        return parse_lock(text).versions
    except LockError:
        return {}


# Check ----------------------------------------------------------------------


def check(requirements_in: Path, lock_path: Path, target: Target, wheelhouse: Path, *,
          fetch_missing: bool = True, progress: Progress = _quiet) -> CheckResult:
    """Is `lock_path` still the resolution of `requirements_in` for `target`? Offline when the wheels are at hand."""
    in_name, lock_name = requirements_in.name, lock_path.name
    direct = parse_requirements_in(_read(requirements_in, "requirements.in", "create it, or point [tool.mlrepro] requirements_in at it"), in_name)
    if not lock_path.exists():
        return CheckResult((Finding(None, f"{lock_name} does not exist; {RUN_HINT} to create it"),), 0, target.key())
    text = _read(lock_path, "lock file", RUN_HINT)
    compiled_for = lock_python_version(text)
    if compiled_for is not None and compiled_for != target.python_version:
        raise LockError(f"{lock_name}: expected a lock compiled for the image's Python {target.python_version}, found one compiled with Python {compiled_for}; re-resolve it with 'mlrepro lock --upgrade'")
    try:
        lock = parse_lock(text, lock_name)
    except LockError as exc:
        return CheckResult((Finding(None, f"{_lock_problem(exc)}; a hand edit? restore the line, or delete it and {RUN_HINT}"),), 0, target.key())
    findings = list(check_direct(direct, lock, text, target, in_name))
    if compiled_for is None:
        findings.insert(0, Finding(None, f"{lock_name} has no pip-compile header naming its Python; {RUN_HINT}"))
    if not lock.pins:
        findings.append(Finding(None, f"{lock_name} pins nothing; {RUN_HINT}"))
    if findings:
        return CheckResult(tuple(findings), len(lock.pins), target.key())
    metadata, wheel_findings = _locked_metadata(lock, lock_path, target, wheelhouse, fetch_missing=fetch_missing, progress=progress)
    if wheel_findings:
        return CheckResult(wheel_findings, len(lock.pins), target.key())
    return CheckResult(check_closure(direct, lock, metadata, target, in_name), len(lock.pins), target.key())


_MISMATCH = re.compile(r"^\s+([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) from ", re.M)


def _locked_metadata(lock: Lock, lock_path: Path, target: Target, wheelhouse: Path, *, fetch_missing: bool,
                     progress: Progress) -> tuple[dict[str, WheelMetadata], tuple[Finding, ...]]:
    """Metadata of every locked wheel, from the wheelhouse (fetched when incomplete), plus hash findings."""
    lock_name = lock_path.name
    wheels = _wheel_files(wheelhouse)
    missing = [pin for pin in lock.pins.values() if (pin.name, Version(pin.version)) not in wheels]
    if missing:
        # A version edited by hand keeps the hashes of the old version: recognise them before fetching.
        by_hash = {f"sha256:{_sha256(p)}": (name, version) for (name, version), paths in wheels.items() for p in paths}
        edited = [Finding(pin.name, f"{lock_name}:{pin.line} pins {pin.name}=={pin.version} with the hashes of {pin.name} {by_hash[h][1]} (a hand edit); {RUN_HINT}")
                  for pin in missing for h in pin.hashes[:1] if h in by_hash and by_hash[h][0] == pin.name]
        if edited:
            return {}, tuple(edited)
        listed = ", ".join(f"{p.name}=={p.version}" for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        if not fetch_missing:
            raise LockError(f"the check needs the locked wheels, and {len(missing)} are not in {wheelhouse} ({listed}); run 'mlrepro wheelhouse' with the index reachable")
        from harness.image.wheelhouse import fetch

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
        wheels = _wheel_files(wheelhouse)
    metadata: dict[str, WheelMetadata] = {}
    findings: list[Finding] = []
    for pin in lock.pins.values():
        paths = wheels.get((pin.name, Version(pin.version)))
        if not paths:
            raise LockError(f"{wheelhouse}: expected a wheel of {pin.name}=={pin.version}, found none after fetching; run 'mlrepro wheelhouse'")
        path = paths[0]
        sha256s = [h for h in pin.hashes if h.startswith("sha256:")]
        if sha256s and not any(f"sha256:{_sha256(p)}" in sha256s for p in paths):
            findings.append(Finding(pin.name, f"{lock_name}:{pin.line}: none of the hashes of {pin.name}=={pin.version} is that of {path.name} (a hand edit?); {RUN_HINT}"))
        metadata[pin.name] = read_wheel_metadata(path)
    return metadata, tuple(findings)
