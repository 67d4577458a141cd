"""`[tool.mlrepro]` in pyproject.toml: what to build, run and compare.

The harness knows nothing about any particular project: everything it builds,
runs and compares comes from here. The defaults describe no project in
particular (no steps, no inputs, no artifacts; the image named after the
project): a minimal `[tool.mlrepro]` is enough for the commands that only
lock and build, and the commands that run steps ask for what they need
(`Config.require_steps`, `Config.require_artifacts`) with an example line.
Unknown keys are errors (a typo must not silently fall back to a default),
and every error names the key: ``[tool.mlrepro] steps[1].timeout: expected a
positive number of seconds, found -3``.

Placeholders (`PLACEHOLDERS`): `{out}`, `{inputs}` and `{python}` (the
side's interpreter) in every word of a step's command, in `run.env` values
and in a step's own `env` table; they are filled per side
(`harness.sides.steps.expand`).
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from harness.compare import ARTIFACT_MODES, DEFAULT_IGNORED_PACKAGES, HOST_EXTRAS, PYTHON_POLICIES, ArtifactRule
from harness.errors import MISSING, ConfigError

PLACEHOLDERS = frozenset({"out", "inputs", "python"})
HOST_MODES = ("current", "venv")


@dataclass(frozen=True)
class Step:
    """One command run the same way in the container and on the host.

    `{out}` is the output directory (shared by all steps of a run),
    `{inputs}` the directory holding the configured input files, `{python}`
    the side's interpreter; `env` is set for this step only (after `run.env`),
    so a project that reads its paths from variables needs no `sh -c`.
    """

    name: str
    command: tuple[str, ...]
    timeout: float
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildConfig:
    dockerfile: Path
    context: Path
    image_name: str
    base_image: str
    fallback_base_image: str
    build_args: Mapping[str, str]
    timeout: float
    #: Context paths allowed to look like secrets (a test fixture's key): everything else found is refused.
    allow_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class WheelhouseConfig:
    dir: Path
    python_version: str
    glibc: str


@dataclass(frozen=True)
class HostConfig:
    mode: str  # "current": this interpreter; "venv": a venv synced from the lock
    venv: Path
    workdir: Path


@dataclass(frozen=True)
class RunConfig:
    env: Mapping[str, str]  # set on both sides
    pass_env: tuple[str, ...]  # host variables copied into the container when set
    mem_limit: str | None
    workdir_in_image: str  # where inputs/outputs live inside the container
    probe_cache: bool = True  # reuse an environment probe whose key is unchanged (`harness.sides.probe_cache`)


@dataclass(frozen=True)
class CompareConfig:
    python_policy: str
    host_extras: str
    ignore_packages: frozenset[str]
    repeat: int = 1  # runs of the host side (self-consistency: two runs of one side must agree)
    repeat_image: bool = False  # the image side is repeated too


@dataclass(frozen=True)
class WorkerConfig:
    """A persistent prediction worker, for property-based parity tests.

    `command` starts a process answering JSON-lines requests on stdin/stdout
    (one per line); `setup` names the steps run first on each side (e.g.
    training, so the worker has a model in `{out}`); `schema` points at the
    feature schema inside an artifact, as `FILE:KEY` (a JSON list of
    {"name", "min", "max"}).
    """

    command: tuple[str, ...]
    setup: tuple[str, ...]
    schema: str
    timeout: float
    atol: float
    rtol: float


@dataclass(frozen=True)
class Config:
    root: Path
    project: str
    lock: Path
    requirements_in: Path
    build: BuildConfig
    wheelhouse: WheelhouseConfig
    steps: tuple[Step, ...]
    inputs: tuple[Path, ...]
    artifacts: tuple[ArtifactRule, ...]
    host: HostConfig
    run: RunConfig
    compare: CompareConfig
    probe_env: tuple[str, ...] = field(default=())
    worker: WorkerConfig | None = None
    #: `[tool.mlrepro.kubernetes]` as written (None when absent): validated key by key by
    #: `harness.kubernetes.settings` when a kubernetes command runs, the only place that reads it.
    kubernetes: Mapping[str, Any] | None = None

    def require_steps(self) -> tuple[Step, ...]:
        """The steps, for a command that runs them; a one-line error with an example when there are none."""
        if not self.steps:
            raise ConfigError("steps", "at least one step", MISSING,
                              hint='add e.g. [[tool.mlrepro.steps]] name = "train" command = ["python", "train.py", "--out", "{out}"]')
        return self.steps

    def require_artifacts(self) -> tuple[ArtifactRule, ...]:
        """The artifacts, for a command that compares them; a verification comparing no output proves little."""
        if not self.artifacts:
            raise ConfigError("artifacts", "at least one artifact to compare", MISSING,
                              hint='add e.g. [[tool.mlrepro.artifacts]] path = "predictions.csv" compare = "numeric"')
        return self.artifacts


# Variables that change how BLAS/OpenMP compute: a host setting the container
# lacks would make the two sides compute differently for reasons that are not
# the image's fault, so they are forwarded (and the probe reports them).
DEFAULT_PASS_ENV = ("OMP_*", "OPENBLAS_*", "MKL_*", "BLIS_*", "NUMEXPR_*", "PYTHONHASHSEED")


class _Table:
    """A TOML table read key by key, so every error can name its full key."""

    def __init__(self, data: Any, prefix: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(prefix or "tool.mlrepro", "a table", data)
        self.data, self.prefix, self.used = data, prefix, set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def str(self, name: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(self.key(name), "a non-empty string", value)
        if choices and value not in choices:
            raise ConfigError(self.key(name), "one of " + ", ".join(choices), value)
        return value

    def seconds(self, name: str, default: float) -> float:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(self.key(name), "a positive number of seconds", value)
        return float(value)

    def number(self, name: str, default: float) -> float:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(self.key(name), "a finite number >= 0", value)
        return float(value)

    def strings(self, name: str, default: list[str]) -> tuple[str, ...]:
        value = self.get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(self.key(name), "a list of non-empty strings", value)
        return tuple(value)

    def str_map(self, name: str, default: dict[str, str]) -> dict[str, str]:
        value = self.get(name, default)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(self.key(name), "a table of string values", value)
        return dict(value)

    def table(self, name: str) -> "_Table":
        return _Table(self.get(name, {}), self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "a known key (see docs/configuration in README)", "unknown key")


def find_pyproject(start: Path | None = None) -> Path:
    """The nearest pyproject.toml at or above `start` (default: the current directory)."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    raise ConfigError("pyproject.toml", f"a pyproject.toml in {here} or a parent directory", "none")


def load_config(path: Path | None = None) -> Config:
    """Read and validate `[tool.mlrepro]` from `path` (a pyproject.toml or its directory)."""
    if path is None:
        path = find_pyproject()
    elif path.is_dir():
        path = path / "pyproject.toml"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("pyproject.toml", "an existing file", str(path)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("pyproject.toml", "a readable TOML file", f"{path}: {exc}") from None
    data = document.get("tool", {}).get("mlrepro", {})
    return parse_config(data, path.parent.resolve())


def parse_config(data: Mapping[str, Any], root: Path) -> Config:
    """Validate a `[tool.mlrepro]` mapping; paths are resolved against `root`."""
    top = _Table(dict(data), "")
    project_name = top.str("project", root.name)

    def rel(value: str) -> Path:
        return (root / value).resolve()

    build_t = top.table("build")
    build = BuildConfig(
        dockerfile=rel(build_t.str("dockerfile", "Dockerfile")),
        context=rel(build_t.str("context", ".")),
        image_name=_image_name(build_t, build_t.str("image_name", default_image_name(project_name))),
        base_image=build_t.str("base_image", "python:3.11-slim-bookworm"),
        fallback_base_image=build_t.str("fallback_base_image", "mlrepro/python:3.11-bookworm"),
        build_args=build_t.str_map("build_args", {}),
        timeout=build_t.seconds("timeout", 1800),
        allow_secrets=tuple(_context_path(build_t, "allow_secrets", p) for p in build_t.strings("allow_secrets", [])),
    )
    build_t.done()

    wheel_t = top.table("wheelhouse")
    wheelhouse = WheelhouseConfig(
        dir=rel(wheel_t.str("dir", "wheelhouse")),
        python_version=wheel_t.str("python_version", "3.11"),
        glibc=wheel_t.str("glibc", "2.36"),
    )
    wheel_t.done()

    # Absent: no steps (a command that runs them says so); present but empty: a mistake.
    steps_raw = top.get("steps", [])
    if not isinstance(steps_raw, list) or ("steps" in top.data and not steps_raw):
        raise ConfigError("steps", "a non-empty array of tables ([[tool.mlrepro.steps]])", steps_raw)
    steps = tuple(_step(_Table(raw, f"steps[{i}]")) for i, raw in enumerate(steps_raw))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ConfigError("steps", "unique step names", names)

    inputs = tuple(rel(p) for p in top.strings("inputs", []))
    for i, p in enumerate(inputs):
        if not p.is_file():
            raise ConfigError(f"inputs[{i}]", "an existing file", str(p))
    if len({p.name for p in inputs}) != len(inputs):
        raise ConfigError("inputs", "files with distinct names (they share one directory)", [p.name for p in inputs])

    artifacts_raw = top.get("artifacts", [])
    if not isinstance(artifacts_raw, list) or ("artifacts" in top.data and not artifacts_raw):
        raise ConfigError("artifacts", "a non-empty array of tables ([[tool.mlrepro.artifacts]])", artifacts_raw)
    artifacts = tuple(_artifact(_Table(raw, f"artifacts[{i}]")) for i, raw in enumerate(artifacts_raw))
    for i, rule in enumerate(artifacts):
        first = next(j for j, other in enumerate(artifacts) if other.path == rule.path)
        if first != i:
            raise ConfigError(f"artifacts[{i}].path", f"a file not already compared by artifacts[{first}]", rule.path,
                              hint="one rule per file: merge the two tables")

    host_t = top.table("host")
    host = HostConfig(
        mode=host_t.str("mode", "current", HOST_MODES),
        venv=rel(host_t.str("venv", ".mlrepro/host-venv")),
        workdir=rel(host_t.str("workdir", ".")),
    )
    host_t.done()

    run_t = top.table("run")
    mem = run_t.get("mem_limit", None)
    # Docker's own syntax, checked here so a typo fails before the build, not after it.
    if mem is not None and (not isinstance(mem, str) or not re.fullmatch(r"[0-9]+(\.[0-9]+)?[bkmgBKMG]?", mem)):
        raise ConfigError("run.mem_limit", "a size such as '512m' or '2g'", mem)
    run = RunConfig(
        env=_placeholders(run_t, "env", run_t.str_map("env", {})),
        pass_env=run_t.strings("pass_env", list(DEFAULT_PASS_ENV)),
        mem_limit=mem,
        workdir_in_image=run_t.str("workdir_in_image", "/tmp/mlrepro"),
        probe_cache=_flag(run_t, "probe_cache", True),
    )
    run_t.done()

    compare_t = top.table("compare")
    compare = CompareConfig(
        python_policy=compare_t.str("python_policy", "minor", PYTHON_POLICIES),
        host_extras=compare_t.str("host_extras", "note", HOST_EXTRAS),
        ignore_packages=frozenset(compare_t.strings("ignore_packages", sorted(DEFAULT_IGNORED_PACKAGES))),
        repeat=_count(compare_t, "repeat", 1),
        repeat_image=_flag(compare_t, "repeat_image", False),
    )
    compare_t.done()

    worker = None
    if "worker" in top.data:
        worker_t = top.table("worker")
        command = worker_t.get("command", None)
        if isinstance(command, str):
            command = command.split()
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise ConfigError("worker.command", "a non-empty list of strings", command)
        setup = worker_t.strings("setup", [])
        unknown = [name for name in setup if name not in names]
        if unknown:
            raise ConfigError("worker.setup", "names of configured steps (" + ", ".join(names) + ")", unknown)
        schema = worker_t.get("schema", None)
        if not isinstance(schema, str) or ":" not in schema:
            raise ConfigError("worker.schema", "FILE:KEY, e.g. 'manifest.json:features'", schema)
        worker = WorkerConfig(tuple(command), setup, schema, worker_t.seconds("timeout", 60),
                              worker_t.number("atol", 0.0), worker_t.number("rtol", 0.0))
        worker_t.done()

    config = Config(
        root=root,
        project=project_name,
        lock=rel(top.str("lock", "requirements.txt")),
        requirements_in=rel(top.str("requirements_in", default_requirements_in(root))),
        build=build,
        wheelhouse=wheelhouse,
        steps=steps,
        inputs=inputs,
        artifacts=artifacts,
        host=host,
        run=run,
        compare=compare,
        probe_env=top.strings("probe_env", []),
        worker=worker,
        kubernetes=_raw_table(top, "kubernetes"),
    )
    top.done()
    return config


def default_image_name(project: str) -> str:
    """`mlrepro/<project>`, lowercased and reduced to what a repository name allows."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", project.lower()).strip("-._") or "project"
    return f"mlrepro/{slug}"


def default_requirements_in(root: Path) -> str:
    """requirements.in when the project has one; else pyproject.toml (its [project] dependencies, read by pip-compile)."""
    if not (root / "requirements.in").exists() and (root / "pyproject.toml").is_file():
        return "pyproject.toml"
    return "requirements.in"


def _placeholders(table: _Table, name: str, values: Mapping[str, str]) -> dict[str, str]:
    """`values` (an env table) after checking that every placeholder in them is a known one."""
    for value in values.values():
        _check_placeholders(table.key(name), value)
    return dict(values)


def _check_placeholders(key: str, word: str) -> None:
    try:
        fields = [field_name for _, field_name, _, _ in string.Formatter().parse(word)]
    except ValueError:
        raise ConfigError(key, "balanced braces (write {{ and }} for literal ones)", word) from None
    for field_name in fields:
        if field_name is not None and field_name not in PLACEHOLDERS:
            raise ConfigError(key, "placeholders {out}, {inputs} or {python} only", word)


def _count(table: _Table, name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(table.key(name), "a whole number of runs >= 1", value)
    return value


def _flag(table: _Table, name: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(table.key(name), "true or false", value)
    return value


def _raw_table(table: _Table, name: str) -> dict[str, Any] | None:
    value = table.get(name, None)
    if value is not None and not isinstance(value, dict):
        raise ConfigError(table.key(name), "a table", value)
    return value


def _context_path(table: _Table, key: str, value: str) -> str:
    """A path relative to the build context, normalized (`./a/` is `a`), or a ConfigError naming `key`."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ConfigError(table.key(key), "paths relative to the build context", value)
    return path.as_posix()


def _image_name(table: _Table, value: str) -> str:
    # Docker repository names: lowercase, no tag (the harness adds the content hash as tag).
    allowed = set(string.ascii_lowercase + string.digits + "._-/:")
    if ":" in value.rsplit("/", 1)[-1] or not set(value) <= allowed:
        raise ConfigError(table.key("image_name"), "a lowercase repository name without a tag", value)
    return value


def _step(t: _Table) -> Step:
    name = t.str("name", "")
    command = t.get("command", None)
    if isinstance(command, str):
        command = command.split()
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ConfigError(t.key("command"), "a non-empty list of strings", command)
    for part in command:
        _check_placeholders(t.key("command"), part)
    env = _placeholders(t, "env", t.str_map("env", {}))
    step = Step(name=name, command=tuple(command), timeout=t.seconds("timeout", 600), env=env)
    t.done()
    return step


def _artifact(t: _Table) -> ArtifactRule:
    written = t.str("path", "")
    if "\\" in written:
        raise ConfigError(t.key("path"), "'/' as the path separator", written, hint="write it as " + repr(written.replace("\\", "/")))
    if written.startswith("/") or ".." in PurePosixPath(written).parts:
        raise ConfigError(t.key("path"), "a path relative to the output directory", written)
    path = PurePosixPath(written).as_posix()  # `./a.csv` and `a.csv/` are `a.csv`: the name the outputs are collected under
    if path in ("", "."):
        raise ConfigError(t.key("path"), "a file path relative to the output directory", written)
    mode = t.str("compare", "bitwise", ARTIFACT_MODES)
    key = t.get("key", None)
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(t.key("key"), "a dotted key such as 'canonical_hash'", key)
    if mode == "hash" and key is None:
        raise ConfigError(t.key("key"), "a key naming the hash inside the JSON file (compare = 'hash')", None)
    rule = ArtifactRule(path=path, mode=mode, atol=t.number("atol", 0.0), rtol=t.number("rtol", 0.0), key=key)
    t.done()
    return rule
