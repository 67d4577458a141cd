"""The lock update (`mlrepro lock`): plan it, resolve it through a resolver, say what changed.

Inputs are validated before anything runs (`plan_refresh`: requirements.in,
the existing lock, the options), pip-compile runs through a `Resolver`
(`harness.lock.resolvers`), and its result is validated with
`harness.lock.parse_lock` after (`refresh`), then the text is returned: the
CLI writes it atomically, and only when it changed. So every failure leaves
`requirements.txt` byte-identical.

The existing lock seeds the resolution (pip-compile keeps the pins it still
can: minimal upgrades), so `--upgrade-package NAME` re-resolves only NAME and
`--upgrade` starts from scratch.

Policy for a hand-broken existing lock: `mlrepro lock` refuses to seed a
resolution from it (an unpinned or unhashed line would otherwise be re-resolved
silently) and says to fix or delete the line, or use ``--upgrade``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import LockError, tail
from harness.lock.compiler import DEFAULT_INDEX_URL, CompileOptions, explain_failure, pip_evidence
from harness.lock.lockfile import Lock, lock_problem, lock_python_version, parse_lock, read_file
from harness.lock.requirements import DirectRequirement, parse_direct

if TYPE_CHECKING:  # only types: the resolvers are the effects, this module decides
    from harness.image.wheelhouse import Target
    from harness.lock.resolvers import Resolver

__all__ = ["LockUpdate", "PinChange", "RefreshPlan", "diff_pins", "plan_refresh", "refresh"]


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class PinChange:
    """One package whose pin an update adds, removes or moves; printed as '+', '-' or '~' lines."""

    name: str
    old: str | None  # None: added
    new: str | None  # None: removed

    def __str__(self) -> str:
        if self.old is None:
            return f"+ {self.name} {self.new}"
        if self.new is None:
            return f"- {self.name} {self.old}"
        return f"~ {self.name} {self.old} -> {self.new}"


def diff_pins(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[PinChange, ...]:
    """The changes from `old` to `new` versions (name -> version), by name."""
    names = sorted(set(old) | set(new))
    return tuple(PinChange(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n))


@dataclass(frozen=True)
class RefreshPlan:
    """Validated inputs of one `mlrepro lock`: nothing has run yet."""

    requirements_in: Path
    lock_path: Path
    in_text: str
    old_text: str | None  # the existing lock, None when there is none
    old_lock: Lock | None
    direct: tuple[DirectRequirement, ...]
    target: Target
    options: CompileOptions
    files: Mapping[str, bytes] = field(repr=False)  # what pip-compile's working directory holds
    src: str = "requirements.in"
    output: str = "requirements.txt"


@dataclass(frozen=True)
class LockUpdate:
    """What `refresh` produced: the new text, validated, and what changed; nothing is written yet."""

    path: Path
    old_text: str | None
    text: str
    lock: Lock
    changes: tuple[PinChange, ...]
    resolver: str
    seconds: float

    @property
    def changed(self) -> bool:
        return self.text != self.old_text


def plan_refresh(requirements_in: Path, lock_path: Path, target: Target, options: CompileOptions = CompileOptions()) -> RefreshPlan:
    """Read and validate everything `refresh` needs; LockError (exit 2) before anything runs."""
    if options.upgrade and options.upgrade_packages:
        raise LockError("expected --upgrade or --upgrade-package, found both; --upgrade already re-resolves every package")
    if options.find_links is not None and not options.find_links.is_dir():
        raise LockError(f"--find-links: expected a directory of wheels, found {str(options.find_links)!r}")
    in_text = read_file(requirements_in, "requirements.in", "create it with the project's direct dependencies, one per line")
    direct = parse_direct(in_text, requirements_in.name)  # requirements.in, or pyproject.toml (pip-compile reads it itself)
    old_text: str | None = None
    old_lock: Lock | None = None
    if lock_path.exists():
        old_text = read_file(lock_path, "lock file", "remove it and run 'mlrepro lock'")
    if old_text is not None and not options.upgrade:
        # The existing lock seeds the resolution: a broken line would be re-resolved silently.
        try:
            old_lock = parse_lock(old_text, lock_path.name)
        except LockError as exc:
            raise LockError(f"{lock_problem(exc)}; the existing lock seeds the resolution: fix or delete that line and run 'mlrepro lock' again, or re-resolve everything with 'mlrepro lock --upgrade'") from None
        compiled_for = lock_python_version(old_text)
        if compiled_for is not None and compiled_for != target.python_version:
            raise LockError(f"{lock_path.name}: expected a lock compiled for the image's Python {target.python_version}, found one compiled with Python {compiled_for}; its pins may not exist for {target.python_version}: re-resolve with 'mlrepro lock --upgrade'")
    known = {d.name for d in direct} | set(old_lock.pins if old_lock else ())
    for package in options.upgrade_packages:
        try:
            name = canonicalize_name(Requirement(package).name)
        except InvalidRequirement:
            raise LockError(f"--upgrade-package: expected a package name such as 'numpy' (or 'numpy<3'), found {package!r}") from None
        if name not in known:
            raise LockError(f"--upgrade-package {package}: expected a package in {requirements_in.name} or {lock_path.name}, found none named {name}; check the name")
    # pip-compile writes '# via -r <input relative to the cwd>': keep the project's layout.
    common = Path(os.path.commonpath([requirements_in.resolve().parent, lock_path.resolve().parent]))
    src = requirements_in.resolve().relative_to(common).as_posix()
    output = lock_path.resolve().relative_to(common).as_posix()
    files = {src: in_text.encode("utf-8")}
    if old_text is not None and not options.upgrade:
        files[output] = old_text.encode("utf-8")
    return RefreshPlan(requirements_in, lock_path, in_text, old_text, old_lock, direct, target, options, files, src, output)


def refresh(plan: RefreshPlan, resolver: Resolver, *, progress: Callable[[str], None] = _quiet) -> LockUpdate:
    """Run pip-compile through `resolver`; the new lock text, validated (never written here)."""
    resolver.ensure_target(plan.target)
    progress(f"resolving {plan.src} with pip-compile under {resolver.describe()}")
    run = resolver.compile(plan.files, src=plan.src, output=plan.output, options=plan.options)
    source = plan.options.index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL
    if run.exit_code != 0 or run.lock_text is None:
        offline = str(plan.options.find_links) if plan.options.find_links is not None else None
        message = explain_failure(run.output, probe=lambda name: resolver.probe(source, name), source=source,
                                  offline_dir=offline, in_name=plan.requirements_in.name)
        raise LockError(f"{plan.lock_path.name} left unchanged: {message}", evidence=pip_evidence(run.output))
    text = run.lock_text
    try:
        lock = parse_lock(text, plan.lock_path.name)
    except LockError as exc:
        raise LockError(f"{plan.lock_path.name} left unchanged: pip-compile produced an unusable lock ({lock_problem(exc)}); report this with the output below", evidence=tail(text, 40)) from None
    if not lock.pins:
        raise LockError(f"{plan.lock_path.name} left unchanged: {plan.requirements_in.name} resolved to no packages for the image (every requirement's marker excludes Linux/Python {plan.target.python_version}); check the markers")
    compiled_for = lock_python_version(text)
    if compiled_for != plan.target.python_version:
        raise LockError(f"{plan.lock_path.name} left unchanged: expected a lock for Python {plan.target.python_version}, pip-compile produced one for {compiled_for}; check the resolver's interpreter")
    old = plan.old_lock.versions if plan.old_lock else (_lenient_versions(plan.old_text) if plan.old_text else {})
    progress(f"resolved {len(lock.pins)} pins in {run.seconds:.1f} s")
    return LockUpdate(plan.lock_path, plan.old_text, text, lock, diff_pins(old, lock.versions), resolver.describe(), run.seconds)


def _lenient_versions(text: str) -> dict[str, str]:
    """Versions of a lock that may not parse (for reporting changes after --upgrade)."""
    try:
        return parse_lock(text).versions
    except LockError:
        return {}
