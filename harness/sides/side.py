"""A side: one place where the configured steps run, behind one protocol.

Verification runs the same steps on two sides and compares what they wrote;
the parity workers run a long-lived process on each; the demo runs one step
in another environment against the image's outputs. All of them go through
`Side`, so a new kind of side (a recorded reference, another CPU
architecture, a Kubernetes Job) is one new class, and `compare`, `report`
and the CLI never change for it.

A side is a resource: `with side:` prepares its workspace (an empty output
directory, the configured inputs, the environment probe) and removes
everything it made on exit, whatever happened. `abort()` may be called from
another thread at any time (the other side failed, Ctrl-C) and makes the
work in flight fail fast.

Implementations: `harness.sides.host.HostSide` (a host interpreter) and
`harness.sides.container.ContainerSide` (a locked-down container of an image).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Mapping, Protocol

from harness.sides.process import Completed


@dataclass(frozen=True)
class Workspace:
    """Paths as the side's own processes see them (a container's, or the host's)."""

    root: str
    out: str  # `{out}`: shared by the steps of one run, compared afterwards
    inputs: str  # `{inputs}`: the configured input files

    @property
    def probe(self) -> str:
        return f"{self.root}/probe.py"


class Stream(Protocol):
    """A long-lived process with stdin/stdout attached: `ExecStream` in a container, `ProcessStream` on the host."""

    stderr: str

    def write(self, data: bytes) -> None: ...
    def readline(self, timeout: float) -> bytes: ...
    def exit_code(self) -> int | None: ...
    def close(self, timeout: float = 5.0) -> None: ...


class Side(abc.ABC):
    """Where steps run. Subclasses implement the abstract methods; everything else is shared."""

    #: The side's name in reports and messages ("image", "host", "drifted venv", ...).
    where: str = ""
    #: How messages name the place: "in the image", "on the host".
    place: str = ""
    #: What a command's first word `python` becomes on this side.
    python: str = "python"

    def __enter__(self) -> "Side":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    @abc.abstractmethod
    def workspace(self) -> Workspace:
        """The side's paths; valid once `open()` returned."""

    @abc.abstractmethod
    def open(self) -> None:
        """Make the workspace: empty `out`, the inputs in `inputs`, the probe at `workspace.probe`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Remove everything the side made (processes, containers, directories). Idempotent; never raises."""

    @abc.abstractmethod
    def execute(self, argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Completed:
        """Run `argv` to its end in the workspace's environment (plus `env`); killed past `timeout` (`exit_code` None)."""

    @abc.abstractmethod
    def spawn(self, argv: list[str]) -> Stream:
        """Start a long-lived process with stdin/stdout attached (a prediction worker)."""

    @abc.abstractmethod
    def outputs(self) -> dict[str, bytes]:
        """Every regular file under `out`, by path relative to it."""

    @abc.abstractmethod
    def seed(self, files: Mapping[str, bytes]) -> None:
        """Write `files` (relative path -> bytes) under `out`: another side's outputs, for a cross-load."""

    def abort(self) -> None:
        """Make the work in flight fail fast (thread-safe); `close()` still removes everything."""

    def kill_reason(self, since: float) -> str:
        """Why a process of this side got SIGKILL after `since` (time.time()), when the side can tell."""
        return ""

    def output(self, name: str) -> bytes | None:
        """One file under `out` (None when absent)."""
        return self.outputs().get(name)


__all__ = ["Completed", "Side", "Stream", "Workspace"]
