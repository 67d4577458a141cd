"""The image side: the configured steps run in a fresh, locked-down container of the image.

The container has no network, runs as the image's (non-root) user, with a
read-only root filesystem, no capabilities, and one labeled volume at
`run.workdir_in_image` as the only writable place (`Engine.container`). It is
removed on `close()`, whatever happened. Commands whose first word is
`python` run with the image's own `python` on its PATH.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Mapping

from harness.config import Config
from harness.errors import MlreproError
from harness.sides.process import Completed
from harness.sides.side import Side, Stream, Workspace
from harness.sides.steps import PROBE_SOURCE, forwarded_env

if TYPE_CHECKING:
    from harness.docker import Container, Engine


class ContainerSide(Side):
    """Steps in a container of `image` (a tag or ID) on `engine`, labeled with `role`."""

    where = "image"
    place = "in the image"
    python = "python"

    def __init__(self, engine: "Engine", config: Config, image: str, *, role: str = "verify") -> None:
        self.engine, self.config, self.image, self.role = engine, config, image, role
        wd = config.run.workdir_in_image
        self._workspace = Workspace(root=wd, out=f"{wd}/out", inputs=f"{wd}/in")
        self._stack = contextlib.ExitStack()
        self.box: "Container | None" = None
        self._aborted = False

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    def open(self) -> None:
        wd = self._workspace.root
        self.box = self._stack.enter_context(self.engine.container(
            self.image, role=self.role, env=forwarded_env(self.config, workspace=self._workspace, python=self.python), mem_limit=self.config.run.mem_limit, writable=wd))
        files = {"probe.py": PROBE_SOURCE, **{f"in/{p.name}": p.read_bytes() for p in self.config.inputs}}
        self.box.put_files(wd, files, dirs=("out",))

    def probe_key(self) -> tuple[str, dict] | None:
        """(slot, key) of this side's environment probe for `harness.sides.probe_cache`; None: always probe."""
        from harness.sides.probe_cache import PROBE_SHA256, determinism_subset, machine

        image_id = self.engine.image_id(self.image)
        engine_machine = getattr(self.engine, "machine", None)
        if not image_id or engine_machine is None:
            return None
        env = forwarded_env(self.config, workspace=self._workspace, python=self.python)
        key = {"side": "image", "image": image_id, "env": determinism_subset(env, self.config.probe_env), "probe": PROBE_SHA256,
               "probe_env": list(self.config.probe_env), "mem_limit": self.config.run.mem_limit,
               "engine": engine_machine(), "cpu": machine()["cpu"]}
        return f"image {image_id}", key

    def close(self) -> None:
        with contextlib.suppress(Exception):  # removal must not mask the error that brought us here
            self._stack.close()

    def _open_box(self) -> "Container":
        if self._aborted:
            raise MlreproError(f"the {self.where} side was stopped (the other side failed or the run was interrupted)")
        if self.box is None:
            raise MlreproError("the image side is not open: use it as a context manager (with ContainerSide(...) as side)")
        return self.box

    def execute(self, argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Completed:
        result = self._open_box().exec(argv, timeout=timeout, env=env)
        return Completed(None if result.timed_out else result.exit_code, result.output)

    def spawn(self, argv: list[str]) -> Stream:
        return self._open_box().exec_stream(argv)

    def outputs(self) -> dict[str, bytes]:
        return self._open_box().get_dir(self._workspace.out)

    def seed(self, files: Mapping[str, bytes]) -> None:
        self._open_box().put_files(self._workspace.root, {f"out/{rel}": data for rel, data in files.items()})

    def abort(self) -> None:
        self._aborted = True
        if self.box is not None:
            self.box.kill()

    def kill_reason(self, since: float) -> str:
        return self.box.kill_reason(since) if self.box is not None else ""


__all__ = ["ContainerSide"]
