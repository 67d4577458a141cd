"""Adopting mlrepro in projects shaped unlike ml_project (issue 14), through the CLI as a user would.

Each fixture goes from no Dockerfile to `mlrepro init` -> (the user's edit:
steps and artifacts) -> `mlrepro lock` (pip-compile in a container of the base
image, against the real index) -> `mlrepro verify`, in a private copy. Real
engine, real pip-compile, real images; nothing mocked. The three shapes:

- `envpaths`: top-level scripts reading their paths and seed from environment
  variables (`run.env` and per-step `env` with placeholders; a `sh -c` step);
- `quantiles`: dependencies only in `[project] dependencies`, run with `-m`;
- `srcpkg`: a `src/` package whose steps are its console scripts (installed
  in the image by the generated Dockerfile, and in the user's venv on the host).

Then self-consistency on `envpaths`: unseeded, `--repeat 2` says
NON-DETERMINISTIC (exit 3); seeded, REPRODUCIBLE; another numpy in the image
than on the host is still DRIFT.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import Report
from tests.adoption import QUICK_START, copy_fixture, fill_in, mlrepro, outcome


def quick_start(project: Path, *, python: str = sys.executable) -> subprocess.CompletedProcess:
    """README's quick start for a new project, command for command (`QUICK_START`); the `mlrepro verify` it ran.

    Between `mlrepro init` and `mlrepro lock` comes the user's edit (`fill_in`),
    as README says; every command must succeed, verify with exit 0.
    """
    assert not (project / "Dockerfile").exists() and not (project / "requirements.txt").exists()
    results = {}
    for command in QUICK_START:
        if command == "mlrepro lock":
            fill_in(project)
        result = mlrepro(*command.split()[1:], cwd=project, python=python)
        assert result.returncode == 0, f"{command}: {outcome(result)}"
        results[command] = result
    init_lines = results["mlrepro init"].stdout.splitlines()
    assert {"wrote Dockerfile", "wrote .dockerignore"} <= set(init_lines), init_lines
    assert init_lines[-2:] == ["next: mlrepro lock", "then: mlrepro verify"], init_lines
    assert "requirements.txt written" in results["mlrepro lock"].stdout, outcome(results["mlrepro lock"])
    return results["mlrepro verify"]


def reproducible(result: subprocess.CompletedProcess, image_name: str, artifacts: tuple[str, ...]) -> None:
    """`mlrepro verify` said REPRODUCIBLE for `image_name`, every artifact identical (the stdout a user reads)."""
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith(f"REPRODUCIBLE: image {image_name}:"), outcome(result)
    assert f"(1 package, {len(artifacts)} artifacts identical" in lines[-1], lines[-1]
    for path in artifacts:
        row = next((line for line in lines if f" {path} " in line), None)
        assert row is not None and " identical " in row, (path, result.stdout)


@pytest.fixture(scope="module")
def env_project(tmp_path_factory, engine) -> Path:
    """envpaths adopted and locked once; tests copy it (the lock and wheelhouse come along)."""
    project = copy_fixture("envpaths", tmp_path_factory.mktemp("adopt"))
    reproducible(quick_start(project), "mlrepro/envpaths", ("coef.json", "predictions.csv"))
    return project


def private(project: Path, tmp_path: Path) -> Path:
    dest = tmp_path / project.name
    shutil.copytree(project, dest)
    return dest


def verify(project: Path, *args: str, python: str = sys.executable) -> tuple[subprocess.CompletedProcess, Report]:
    result = mlrepro("verify", "--json", str(project / "report.json"), *args, cwd=project, python=python)
    assert (project / "report.json").is_file(), outcome(result)
    return result, Report.from_json((project / "report.json").read_text())


def test_env_variable_project_is_reproducible_and_self_consistent(env_project, tmp_path):
    project = private(env_project, tmp_path)
    result, report = verify(project, "--repeat", "2", "--summary-md", str(project / "summary.md"))
    assert result.returncode == 0, outcome(result)
    assert result.stdout.strip().splitlines()[-1].startswith("REPRODUCIBLE: image mlrepro/envpaths:")
    assert {a.path: a.status for a in report.artifacts} == {"coef.json": "identical", "predictions.csv": "identical"}
    assert [(c.side, c.runs, c.moved) for c in report.consistency] == [("host", 2, ())]
    summary = (project / "summary.md").read_text()
    assert summary.startswith("### ✅ mlrepro: envpaths: REPRODUCIBLE") and "| coef.json | json | identical |" in summary


def test_unseeded_project_is_non_deterministic_not_drift(env_project, tmp_path):
    project = private(env_project, tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(', SEED = "7"', ""))  # the bootstrap is now unseeded
    result, report = verify(project, "--repeat", "2")
    assert result.returncode == 3, outcome(result)
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("NON-DETERMINISTIC: host: 2 runs disagree on coef.json, predictions.csv"), verdict
    assert "the steps may use unseeded randomness" in verdict and "PYTHONHASHSEED is unset" in verdict
    assert not report.deterministic and not report.reproducible
    (host,) = report.consistency
    assert [a.path for a in host.moved] == ["coef.json", "predictions.csv"]
    assert "40 of 40 rows differ" in host.moved[1].summary


def test_another_numpy_in_the_image_is_still_drift_with_repeats(env_project, tmp_path):
    project = private(env_project, tmp_path)
    (project / "requirements.in").write_text("numpy==2.2.6\n")
    lock = mlrepro("lock", cwd=project)
    assert lock.returncode == 0, outcome(lock)
    assert "~ numpy" in lock.stdout and "-> 2.2.6" in lock.stdout
    result, report = verify(project, "--repeat", "2")
    assert result.returncode == 1, outcome(result)
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("DRIFT: ") and "numpy: lock 2.2.6, image 2.2.6, host " in verdict, verdict
    assert report.deterministic and [c.moved for c in report.consistency] == [()]


def test_project_with_dependencies_only_in_pyproject(tmp_path, engine):
    project = copy_fixture("quantiles", tmp_path)
    original = (project / "pyproject.toml").read_text()
    result = quick_start(project)
    reproducible(result, "mlrepro/quantile-report", ("summary.json", "bins.csv"))
    text = (project / "pyproject.toml").read_text()
    assert text.startswith(original) and 'requirements_in = "pyproject.toml"' in text  # appended, the rest untouched
    assert not (project / "requirements.in").exists()
    assert "# via quantile-report (pyproject.toml)" in (project / "requirements.txt").read_text()
    check = mlrepro("lock", "--check", cwd=project)
    assert check.returncode == 0 and "is fresh" in check.stdout, outcome(check)


def user_venv(project: Path, where: Path) -> str:
    """The user's own venv: the project installed editable (its console scripts), mlrepro and numpy beside it.

    mlrepro and numpy come from this test run's environment through a .pth
    file (the venv's own site-packages stay first), so nothing is downloaded.
    """
    venv = where / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next((venv / "lib").glob("python3.*")) / "site-packages"
    ours = next(p for p in sys.path if p.endswith("site-packages") and (Path(p) / "numpy").is_dir())
    (site / "zz_mlrepro_test.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    python = str(venv / "bin" / "python")
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation", "-e", str(project)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (venv / "bin" / "smoother-fit").is_file()
    return python


def test_src_package_with_console_scripts(tmp_path, engine):
    project = copy_fixture("srcpkg", tmp_path)
    python = user_venv(project, tmp_path)
    result = quick_start(project, python=python)
    reproducible(result, "mlrepro/smoother", ("kernel.json", "smoothed.csv"))
    dockerfile = (project / "Dockerfile").read_text()
    # The package is laid out as an editable install (no build backend offline): src/ on the path, one wrapper per script.
    assert "COPY src/ /app/src/" in dockerfile and "/_smoother.pth" in dockerfile, dockerfile
    assert "'import smoother.cli as _entry' 'sys.exit(_entry.fit())' > /opt/venv/bin/smoother-fit" in dockerfile, dockerfile
