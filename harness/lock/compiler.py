"""pip-compile itself: how it is invoked, what one run gives, and what its failures mean.

Invocation (`pip_compile_args`)
    ``--generate-hashes --allow-unsafe --strip-extras``, a stable header
    (``CUSTOM_COMPILE_COMMAND="mlrepro lock"``) and never an index URL,
    find-links or trusted host in the output: the lock says what is installed,
    not where it came from.

Environment (`pip_environment`)
    Both resolvers see the same pip configuration: pip config files and the
    host's PIP_* variables are ignored (a developer's pip.conf may add mirrors
    or find-links the container cannot see, and the lock must not depend on
    them), except those in `FORWARDED_ENV` and PIP_CERT. ``--index-url`` and
    ``--find-links DIR`` (offline: ``--no-index``) are explicit options.

Failures (`explain_failure`, `pip_evidence`)
    Failures of pip-compile become one line: no such package (the index is
    asked directly, from where pip-compile ran, to tell "does not exist" from
    "unreachable": a `Probe`), no matching version, conflicting requirements
    (who requires what), index unreachable or TLS not trusted. The output,
    without Python tracebacks, travels with the error as its evidence.

Pure: no process is started here; the resolvers (`harness.lock.resolvers`) run it.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from harness.errors import tail
from harness.lock.requirements import ARCHIVE_SUFFIXES

__all__ = [
    "COMPILE_COMMAND", "DEFAULT_INDEX_URL", "FORWARDED_ENV", "CompileOptions", "CompileRun", "Probe",
    "explain_failure", "pip_compile_args", "pip_environment", "pip_evidence",
]

#: What the lock's header names as the command that made it.
COMPILE_COMMAND = "mlrepro lock"
DEFAULT_INDEX_URL = "https://pypi.org/simple"
#: Host variables both resolvers pass on to pip (everything else PIP_* is dropped).
FORWARDED_ENV = (
    "PIP_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)


@dataclass(frozen=True)
class CompileOptions:
    """What `mlrepro lock` asks of one resolution (its --upgrade, --upgrade-package, --index-url, --find-links)."""

    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    index_url: str | None = None
    find_links: Path | None = None  # resolve offline from this wheel directory only


@dataclass(frozen=True)
class CompileRun:
    """One pip-compile run: `lock_text` is the output file, None when it failed or wrote none."""

    exit_code: int
    output: str
    lock_text: str | None
    seconds: float


@dataclass(frozen=True)
class Probe:
    """The index's answer for one project page: HTTP status, or None and the connection error."""

    status: int | None
    error: str = ""


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
    for ext in ARCHIVE_SUFFIXES:
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename


def explain_failure(output: str, *, probe: Callable[[str], Probe] | None = None, source: str = DEFAULT_INDEX_URL,
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
