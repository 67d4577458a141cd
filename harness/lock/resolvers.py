"""Where pip-compile runs: the `Resolver` seam, the host, and a container of the image.

pip-compile resolves for the interpreter that runs it (``--pip-args
"--python-version ... --platform ..."`` does not change its answer), so a lock
is only right for the image when the image's own Python computes it.

`ContainerResolver` (the default, opened by `container_resolver`) does exactly
that: in a throwaway, labeled container of the resolved base image (network
"bridge") it creates a venv with the image's python3, installs the host's
exact pip and pip-tools versions from wheels fetched on the host for the
image's target (no index needed for that step), copies in `requirements.in`,
the existing lock (it seeds minimal upgrades, as pip-compile does with its
output file) and the host's CA bundle (`PIP_CERT`; a copy, not a bind mount,
so remote engines work too), runs pip-compile there against the index and
copies the lock out. Measured on this machine (2 cores) for ml_project: 5-9 s
to start the container and install pip-tools, then 21-26 s to resolve from
scratch (no pip cache in the container; the host resolver takes 4 s warm,
21 s cold), 1.5 s when the seeded lock is kept.

`HostResolver` (``--resolver host``) runs pip-compile on the host; its answer
is the image's only when the host's Python X.Y, OS, machine and glibc equal
the image's (`host_mismatch`), and it refuses otherwise.

The `Resolver` protocol is the seam the refresh logic is tested through: a
fake resolver returns a canned `CompileRun`, no container and no network.
Docker stays unimported here (the engine's types only under TYPE_CHECKING):
`harness.lock` is imported by `--check`, which needs no engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Protocol

from harness.errors import LockError, tail
from harness.lock.compiler import DEFAULT_INDEX_URL, CompileOptions, CompileRun, Probe, explain_failure, pip_compile_args, pip_environment

if TYPE_CHECKING:  # docker stays unimported for the pure parts and --check
    from harness.docker.engine import Container, Engine
    from harness.image.wheelhouse import Target

__all__ = [
    "ContainerResolver", "HostResolver", "Resolver", "ca_bundle", "container_resolver", "fetch_tool_wheels",
    "host_mismatch", "host_target",
]


def _quiet(message: str) -> None:
    pass


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
        from harness.ownership import scratch_dir  # lazily: importing it fixes the run id, which --check never needs

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
                       timeout: float = 1800, progress: Callable[[str], None] = _quiet) -> Iterator[ContainerResolver]:
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
