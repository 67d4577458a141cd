"""Sides: where the configured steps run, behind one protocol (`Side`).

- `side`: the protocol and the workspace;
- `steps`: running configured steps on any side (`run_steps`, `run_step`, `RunResult`);
- `host`, `container`: the two sides there are today;
- `process`: the one manager of host processes; `venv`: the one venv manager;
- `probe`: the environment probe (stdlib only; runs unchanged on every side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from harness.config import Config
from harness.sides.container import ContainerSide
from harness.sides.host import HostSide
from harness.sides.side import Side, Workspace
from harness.sides.steps import RunResult, expand, forwarded_env, run_step, run_steps

if TYPE_CHECKING:
    from harness.docker import Engine


def run_in_image(engine: "Engine", config: Config, image: str, *, progress: Callable[[str], None] = print) -> RunResult:
    """The configured steps in a fresh container of `image`, then everything removed."""
    with ContainerSide(engine, config, image) as side:
        return run_steps(side, config, progress=progress)


def run_on_host(config: Config, python: str | None = None, *, progress: Callable[[str], None] = print) -> RunResult:
    """The configured steps on the host with `python` (default: the configured host interpreter)."""
    with HostSide(config, python, progress=progress) as side:
        return run_steps(side, config, progress=progress)


__all__ = ["ContainerSide", "HostSide", "RunResult", "Side", "Workspace", "expand", "forwarded_env", "run_in_image", "run_on_host",
           "run_step", "run_steps"]
