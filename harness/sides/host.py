"""The host side: the configured steps run by a host interpreter in a temporary workspace.

The interpreter is the current one, a venv synced from the lock (`host.mode =
"venv"`), or one the caller gives (the demo's drifted venv). The workspace is
a run-named temporary directory (`harness.ownership.run_tempdir`), so `mlrepro
clean` finds it if this process is killed; every process goes through this
side's own `HostProcesses`, so `abort()` and `close()` stop exactly what this
side started.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Mapping

from harness.config import Config
from harness.errors import MlreproError
from harness.ownership import run_tempdir
from harness.sides.process import Completed, HostProcesses, ProcessStream
from harness.sides.side import Side, Workspace
from harness.sides.steps import PROBE_SOURCE, forwarded_env, host_environment, interpreter_path


class HostSide(Side):
    """Steps on this machine, with `python` (default: the configured host interpreter)."""

    where = "host"
    place = "on the host"

    def __init__(self, config: Config, python: str | None = None, *, kind: str = "host",
                 progress: Callable[[str], None] = lambda message: None) -> None:
        self.config, self.kind, self._progress = config, kind, progress
        self._given_python = python
        self.python = python or "python"
        self.processes = HostProcesses()
        self.env = {**host_environment(config), **forwarded_env(config)}
        self._tmp: Path | None = None
        self._aborted = False

    @property
    def workspace(self) -> Workspace:
        if self._tmp is None:
            raise MlreproError("the host side is not open: use it as a context manager (with HostSide(...) as side)")
        return Workspace(root=str(self._tmp), out=str(self._tmp / "out"), inputs=str(self._tmp / "in"))

    @property
    def out_dir(self) -> Path:
        return Path(self.workspace.out)

    def open(self) -> None:
        from harness.sides.venv import host_python  # a venv is only made when the configuration asks for one

        self.python = self._given_python or host_python(self.config, progress=self._progress)
        self._tmp = run_tempdir(self.kind)
        # run.env's placeholders name this side's paths; the interpreter's directory leads PATH so
        # that `sh -c "python ..."` and the venv's console scripts are this side's too.
        self.env = {**host_environment(self.config), **forwarded_env(self.config, workspace=self.workspace, python=self.python)}
        self.env["PATH"] = interpreter_path(self.python, self.env.get("PATH", os.defpath))
        try:
            (self._tmp / "out").mkdir()
            (self._tmp / "in").mkdir()
            for path in self.config.inputs:
                shutil.copyfile(path, self._tmp / "in" / path.name)
            (self._tmp / "probe.py").write_bytes(PROBE_SOURCE)
        except OSError as exc:
            raise MlreproError(f"cannot prepare the host run in {self._tmp.parent}: {exc.strerror or exc}; "
                               "free space there or point TMPDIR at a writable directory") from None

    def probe_key(self) -> tuple[str, dict] | None:
        """(slot, key) of this side's environment probe for `harness.sides.probe_cache` (after `open`)."""
        from harness.sides.probe_cache import PROBE_SHA256, determinism_subset, interpreter_fingerprint, machine

        if self._tmp is None:
            return None
        interpreter = interpreter_fingerprint(self.python)
        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION")
        except (AttributeError, ValueError, OSError):
            libc = None
        key = {"side": "host", "interpreter": interpreter, "pythonpath": self.env.get("PYTHONPATH"),
               "env": determinism_subset(self.env, self.config.probe_env), "probe": PROBE_SHA256,
               "probe_env": list(self.config.probe_env), "libc": libc, "machine": machine()}
        return f"host {interpreter['python']}", key

    def close(self) -> None:
        self.processes.kill_all()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _check(self) -> None:
        if self._aborted:
            raise MlreproError(f"the {self.where} side was stopped (the other side failed or the run was interrupted)")

    def execute(self, argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Completed:
        self._check()
        try:
            return self.processes.run(argv, cwd=self.config.host.workdir, env={**self.env, **(env or {})}, timeout=timeout)
        except OSError as exc:
            raise MlreproError(f"cannot start {argv[0]!r} {self.place} ({exc.strerror or exc}); check the command and host.workdir") from None

    def spawn(self, argv: list[str]) -> ProcessStream:
        self._check()
        try:
            return self.processes.spawn(argv, cwd=self.config.host.workdir, env=self.env)
        except OSError as exc:
            raise MlreproError(f"cannot start {argv[0]!r} {self.place} ({exc.strerror or exc}); check the command and host.workdir") from None

    def outputs(self) -> dict[str, bytes]:
        out = self.out_dir
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    def seed(self, files: Mapping[str, bytes]) -> None:
        for rel, data in files.items():
            dest = self.out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)

    def abort(self) -> None:
        self._aborted = True
        self.processes.kill_all()


__all__ = ["HostSide"]
