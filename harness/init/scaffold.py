"""What `mlrepro init` writes and keeps: decided first (`plan`, pure), then done (`apply`).

Never overwrite: an existing Dockerfile, .dockerignore or `[tool.mlrepro]`
is kept and said so, which also makes a second run change nothing. The plan
is complete before the first byte is written, so a refusal (an unhashed
requirements.txt without `--move-requirements`) leaves the project exactly
as it was; each file is written atomically (`harness.files.write_atomic`), a
write that fails undoes the ones before it, and an existing pyproject.toml
only gets the skeleton appended, the rest byte for byte as it was (and only
when the result still parses, with the new [tool.mlrepro] in it).
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import MlreproError
from harness.files import write_atomic
from harness.init.layout import InitError, Layout
from harness.init.templates import dockerfile, dockerignore, skeleton

__all__ = ["LOCK", "Action", "Plan", "apply", "plan"]

LOCK = "requirements.txt"


@dataclass(frozen=True)
class Action:
    """One file: `verb` is write (new), append (to an existing file), move (rename), or keep (left alone)."""

    path: str  # relative to the project
    verb: str
    text: str = ""
    why: str = ""
    before: str = ""  # append: the file as it was (restored if a later write fails)

    def line(self) -> str:
        return {
            "write": f"wrote {self.path}",
            "append": f"appended [tool.mlrepro] to {self.path} (the rest of it unchanged)",
            "move": f"moved {self.why} -> {self.path} (it lists the direct dependencies; {LOCK} becomes the lock)",
            "keep": f"kept {self.path} ({self.why})",
        }[self.verb]


@dataclass(frozen=True)
class Plan:
    root: Path
    actions: tuple[Action, ...]

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.verb != "keep")


def _check_appended(layout: Layout, text: str) -> None:
    """The pyproject.toml with the skeleton appended must still be TOML and hold [tool.mlrepro], else nothing is written."""
    try:
        tool = tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError as exc:
        tool, error = None, str(exc)
    if not isinstance(tool, dict) or not isinstance(tool.get("mlrepro"), dict):
        found = f"a file that would no longer parse ({error})" if tool is None else "a [tool] that cannot take a [tool.mlrepro] table"
        raise InitError(f"{layout.root / 'pyproject.toml'}: expected to append [tool.mlrepro], found {found}; nothing was written: "
                        "write [tool.mlrepro] yourself (README, 'Use it on your project'), then run 'mlrepro init' again")


def plan(layout: Layout, *, move_requirements: bool = False) -> Plan:
    """Every action, decided from the layout alone; `InitError` (nothing written) when it cannot proceed."""
    actions: list[Action] = []
    if layout.move_requirements:
        if not move_requirements:
            raise InitError(f"{layout.root / 'requirements.txt'}: expected the direct dependencies in requirements.in, found them in an "
                            f"unhashed requirements.txt (mlrepro writes the lock under that name); rerun as 'mlrepro init --move-requirements' "
                            "to rename it to requirements.in, or rename it yourself")
        actions.append(Action("requirements.in", "move", why="requirements.txt"))
    if layout.has_dockerfile:
        actions.append(Action("Dockerfile", "keep", why="exists; not overwritten: check it against the contract in README, 'Use it on your project'"))
    else:
        actions.append(Action("Dockerfile", "write", dockerfile(layout, LOCK)))
    if layout.has_dockerignore:
        actions.append(Action(".dockerignore", "keep", why="exists; not overwritten: make sure it keeps .git, venvs, out/ and secrets out"))
    else:
        # An allow-list only fits our own Dockerfile; a kept one may COPY anything.
        actions.append(Action(".dockerignore", "write", dockerignore(layout, allow_list=not layout.has_dockerfile, lock=LOCK)))
    if layout.pyproject is None:
        actions.append(Action("pyproject.toml", "write", skeleton(layout, LOCK).lstrip("\n")))
    elif layout.has_config:
        actions.append(Action("pyproject.toml", "keep", why="[tool.mlrepro] exists"))
    else:
        separator = "" if layout.pyproject.endswith("\n") or not layout.pyproject else "\n"
        appended = layout.pyproject + separator + skeleton(layout, LOCK)
        _check_appended(layout, appended)
        actions.append(Action("pyproject.toml", "append", appended, before=layout.pyproject))
    return Plan(layout.root, tuple(actions))


def apply(done: Plan) -> None:
    """Carry out the plan, all of it or none of it; a file that appeared since it was planned is not overwritten.

    Every target is checked before the first write; a write that fails (a full
    disk, a read-only directory) undoes the ones before it, so the project is
    left as it was and the error is one line.
    """
    for action in done.changes:
        path = done.root / action.path
        if action.verb in ("write", "move") and path.exists():
            raise InitError(f"{path}: expected no file there (planned to {action.verb} it), found one written meanwhile; "
                            "nothing was written, rerun 'mlrepro init'")
    undo: list[Callable[[], None]] = []
    try:
        for action in done.changes:
            path = done.root / action.path
            if action.verb == "move":
                source = done.root / action.why
                try:
                    os.rename(source, path)
                except OSError as exc:
                    raise InitError(f"cannot move {source} to {path}: {exc.strerror or exc}; nothing was written") from None
                undo.append(lambda source=source, path=path: os.rename(path, source))
                continue
            existed = path.exists()
            mode = stat.S_IMODE(path.stat().st_mode) if existed else 0o644
            write_atomic(path, action.text)
            undo.append((lambda path=path, before=action.before: write_atomic(path, before)) if existed
                        else (lambda path=path: path.unlink(missing_ok=True)))
            os.chmod(path, mode)  # an appended pyproject.toml keeps its mode; a new file is 0644
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except (OSError, MlreproError):  # pragma: no cover - undoing on a disk that refuses writes
                pass
        raise
