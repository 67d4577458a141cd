"""What an existing project is, as `mlrepro init` needs to know it: read-only.

Projects come in many shapes: top-level scripts, a package run with `-m`, a
`src/` package with console scripts; dependencies in `requirements.in`, in
a plain `requirements.txt` that is really an input, not a lock, or
`[project] dependencies`. `read_layout` finds out which, without writing anything,
and refuses (one line, `InitError`) what it cannot work from: no dependency
list at all, or a pyproject.toml it cannot read (it would have to append to it).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import MlreproError

__all__ = ["DEPENDENCY_INPUTS", "IGNORED_DIRS", "InitError", "Layout", "read_layout"]

#: Where a project's direct dependencies may be, in the order they are looked for. An unhashed
#: requirements.txt comes before [project] dependencies: `mlrepro lock` writes the lock under that
#: name, so it must become requirements.in first (else the lock would overwrite the user's pins).
DEPENDENCY_INPUTS = ("requirements.in", "requirements.txt", "pyproject.toml")
#: Directories that are never the project's runtime code.
IGNORED_DIRS = frozenset({"tests", "test", "docs", "examples", "data", "out", "build", "dist", "wheelhouse", "notebooks"})
#: Top-level Python files that are tooling, not the project's steps.
IGNORED_SCRIPTS = frozenset({"setup.py", "conftest.py", "noxfile.py", "tasks.py", "fabfile.py"})


class InitError(MlreproError):
    """`mlrepro init` cannot adopt the project as it is: the message says what to add or fix; nothing was written."""


@dataclass(frozen=True)
class Layout:
    """An existing project as found on disk."""

    root: Path
    name: str  # [project] name, else the directory's name
    pyproject: str | None  # pyproject.toml's text; None when there is none
    has_config: bool  # pyproject.toml already holds [tool.mlrepro]
    dependencies: str  # one of DEPENDENCY_INPUTS: where the direct dependencies are
    installable: bool  # [project] and [build-system]: a package, importable from anywhere in the image
    scripts: tuple[str, ...]  # top-level *.py files
    packages: tuple[str, ...]  # top-level package directories (holding __init__.py)
    src: bool  # a src/ directory (the src layout)
    console_scripts: tuple[tuple[str, str], ...]  # [project.scripts]: (name, "module:function")
    readme: str | None  # the [project] readme file, needed to build the project
    has_dockerfile: bool
    has_dockerignore: bool

    @property
    def move_requirements(self) -> bool:
        """The dependencies are an unhashed requirements.txt, which must become requirements.in (the lock takes its name)."""
        return self.dependencies == "requirements.txt"


def _read_pyproject(root: Path) -> tuple[str | None, dict[str, Any]]:
    path = root / "pyproject.toml"
    if not path.exists():
        return None, {}
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InitError(f"{path}: expected a readable TOML file, found {type(exc).__name__}: {exc}; fix it first "
                        "(mlrepro init appends [tool.mlrepro] to it and never rewrites a file it cannot read)") from None


def _is_lock(text: str) -> bool:
    return "--hash=" in text


def _dependencies(root: Path, document: dict[str, Any]) -> str:
    if (root / "requirements.in").is_file():
        return "requirements.in"
    requirements = root / "requirements.txt"
    locked = False
    if requirements.is_file():
        try:
            text = requirements.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InitError(f"{requirements}: expected a readable requirements file, found {type(exc).__name__}: {exc}; "
                            "fix its permissions or encoding, then run 'mlrepro init' again") from None
        if not _is_lock(text):
            return "requirements.txt"
        locked = True
    project = document.get("project") if isinstance(document.get("project"), dict) else {}
    if isinstance(project.get("dependencies"), list) and project["dependencies"]:
        return "pyproject.toml"
    if locked:
        raise InitError(f"{requirements}: expected the project's direct dependencies, found a lock (--hash lines) without its input; "
                        "create requirements.in with the direct dependencies, one per line, then run 'mlrepro init' again")
    raise InitError(f"{root}: expected the project's dependencies in requirements.in, requirements.txt or [project] dependencies "
                    "of pyproject.toml, found none; create requirements.in with one requirement per line (e.g. 'numpy>=2'), "
                    "then run 'mlrepro init' again")


def read_layout(root: Path) -> Layout:
    """The project at `root` as it is; `InitError` when it has no dependency list or an unreadable pyproject.toml."""
    if not root.is_dir():
        raise InitError(f"{root}: expected an existing project directory, found {'a file' if root.exists() else 'nothing'}; pass the project's directory")
    text, document = _read_pyproject(root)
    project = document.get("project") if isinstance(document.get("project"), dict) else {}
    tool = document.get("tool") if isinstance(document.get("tool"), dict) else {}
    dependencies = _dependencies(root, document)
    scripts = tuple(sorted(p.name for p in root.glob("*.py") if p.is_file() and p.name not in IGNORED_SCRIPTS))
    packages = tuple(sorted(p.name for p in root.iterdir()
                            if p.is_dir() and (p / "__init__.py").is_file() and p.name not in IGNORED_DIRS and not p.name.startswith(".")))
    readme = project.get("readme") if isinstance(project.get("readme"), str) else None
    console = project.get("scripts") if isinstance(project.get("scripts"), dict) else {}
    return Layout(
        root=root,
        name=project.get("name") if isinstance(project.get("name"), str) and project.get("name") else root.resolve().name,
        pyproject=text,
        has_config="mlrepro" in tool,
        dependencies=dependencies,
        installable=bool(project) and "build-system" in document,
        scripts=scripts,
        packages=packages,
        src=(root / "src").is_dir(),
        console_scripts=tuple(sorted((name, target) for name, target in console.items() if isinstance(target, str))),
        readme=readme if readme and (root / readme).is_file() else None,
        has_dockerfile=(root / "Dockerfile").exists(),
        has_dockerignore=(root / ".dockerignore").exists(),
    )
