"""requirements.in (or pyproject.toml's [project] dependencies): the project's direct dependencies.

Pure: text in, frozen data out. Released packages only, one requirement a line
(names, specifiers, extras, markers): that file alone says what is locked, so
includes, pip options, editable, VCS, URL and path requirements are refused
with a one-line `LockError` naming the line. Two unconditional lines that pin
the same package to incompatible versions are refused too, before pip-compile
would spend a resolution on them.

A project whose dependencies live in `pyproject.toml` (`[project]
dependencies`) needs no requirements.in: `parse_direct` reads that array with
the same rules, and pip-compile is given the pyproject.toml itself.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import LockError
from harness.lock.lockfile import logical_lines

__all__ = ["ARCHIVE_SUFFIXES", "DirectRequirement", "is_pyproject", "parse_direct", "parse_pyproject_dependencies", "parse_requirements_in"]

#: File names of distribution archives: a line ending in one is a path, not a released package.
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")


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


def parse_requirements_in(text: str, path: str = "requirements.in") -> tuple[DirectRequirement, ...]:
    """Names, specifiers and markers of `requirements.in`; one-line LockError on a line we cannot lock.

    Released packages only: editable, VCS, URL and path requirements cannot be
    pinned with hashes for a hermetic image; includes and pip options are
    refused so the file alone says what is locked (index options belong to
    `mlrepro lock --index-url` or PIP_INDEX_URL).
    """
    direct: list[DirectRequirement] = []
    for number, line in logical_lines(text):
        where = f"{path}:{number}"
        first = line.split()[0]
        if first in ("-e", "--editable") or first.startswith("--editable="):
            raise LockError(f"{where}: expected a released package such as 'numpy>=2', found an editable requirement ({line[:80]}); the image installs released wheels only: publish it, or vendor it into the project")
        if first in ("-r", "--requirement", "-c", "--constraint") or first.startswith(("-r", "-c", "--requirement=", "--constraint=")):
            raise LockError(f"{where}: expected requirements only, found an include ({line[:80]}); list those requirements in {path} itself")
        if first.startswith("-"):
            raise LockError(f"{where}: expected requirements only, found the pip option {first}; pass --index-url/--find-links to 'mlrepro lock' or set PIP_INDEX_URL instead")
        if _VCS.match(line) or "://" in line.split(";")[0] or line.startswith((".", "/", "~")) or line.split(";")[0].strip().endswith(ARCHIVE_SUFFIXES):
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


def is_pyproject(name: str) -> bool:
    """Whether a dependency input is a pyproject.toml (its [project] dependencies) rather than a requirements file."""
    return name.endswith(".toml")


def parse_direct(text: str, path: str) -> tuple[DirectRequirement, ...]:
    """The direct dependencies of either input: requirements.in lines, or pyproject.toml's [project] dependencies."""
    return parse_pyproject_dependencies(text, path) if is_pyproject(path) else parse_requirements_in(text, path)


def parse_pyproject_dependencies(text: str, path: str = "pyproject.toml") -> tuple[DirectRequirement, ...]:
    """`[project] dependencies` of a pyproject.toml, under requirements.in's rules; line numbers are the file's."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: expected a readable TOML file, found an error ({exc}); fix the file") from None
    project = document.get("project")
    if not isinstance(project, dict):
        raise LockError(f"{path}: expected a [project] table with dependencies = [...], found none; add it, or list the dependencies in requirements.in")
    if "dependencies" in (project.get("dynamic") or []):
        raise LockError(f"{path}: expected [project] dependencies listed in the file, found them dynamic; list them there, or in requirements.in")
    dependencies = project.get("dependencies")
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise LockError(f"{path}: expected [project] dependencies = [\"numpy>=2\", ...], found {dependencies!r}; list the project's direct dependencies there")
    lines = text.splitlines()
    # Each requirement on a line of its own, numbered as in the file (where the string first appears).
    numbered = [""] * len(lines)
    taken: set[int] = set()
    for dependency in dependencies:
        number = next((i for i, line in enumerate(lines) if i not in taken and (f'"{dependency}"' in line or f"'{dependency}'" in line)), None)
        if number is None or numbered[number]:
            numbered.append(dependency)
        else:
            numbered[number] = dependency
            taken.add(number)
    return parse_requirements_in("\n".join(numbered) + "\n", path)


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

