"""The layout's rules, checked on the source: no import cycle, one adapter, small modules, a curated API.

The import graph is read with `ast` from every module under harness/ (imports
inside functions included: a lazy import hides a cycle, it does not remove
it; imports under `if TYPE_CHECKING:` are left out, they never run).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import harness

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness"
MAX_LINES = 500
ADAPTER = "harness.docker"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:`."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    return skipped


def imports_of(name: str) -> set[str]:
    """Every module `name` imports (absolute names; relative imports resolved)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_blocks(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            # `from harness.sides import probe` imports the submodule harness.sides.probe
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return found


def graph() -> dict[str, set[str]]:
    return {name: {dep for dep in imports_of(name) if dep in MODULES and dep != name} for name in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path a -> ... -> a, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_harness() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_the_adapter_imports_docker_or_testcontainers() -> None:
    offenders = {
        name: sorted(dep for dep in imports_of(name) if dep.split(".")[0] in ("docker", "testcontainers"))
        for name in MODULES if not (name == ADAPTER or name.startswith(ADAPTER + "."))
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_the_adapter_does_not_speak_the_domain() -> None:
    domain = ("harness.release", "harness.sides", "harness.lock", "harness.verify", "harness.parity", "harness.cli")
    offenders = {name: sorted(d for d in imports_of(name) if d.startswith(domain)) for name in MODULES if name.startswith(ADAPTER)}
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_ownership_imports_no_docker() -> None:
    assert not any(dep.startswith(("docker", "testcontainers", ADAPTER)) for dep in imports_of("harness.ownership"))


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_harness_never_imports_the_example_project() -> None:
    assert {name for name in MODULES if any(dep.split(".")[0] == "ml_project" for dep in imports_of(name))} == set()


def test_the_public_api_is_exactly_the_curated_list() -> None:
    assert sorted(harness.__all__) == sorted(set(harness.__all__))
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'runner'"):
        harness.runner  # noqa: B018
    # Each public name is the object its defining module exports, not a copy.
    assert harness.run_both is importlib.import_module("harness.verify").run_both
    assert harness.HostSide is importlib.import_module("harness.sides.host").HostSide


def test_every_sub_package_lists_its_public_names() -> None:
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name != "harness":
            module = importlib.import_module(name)
            assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
            assert all(hasattr(module, n) for n in module.__all__), name
