"""The drift catalogue (issue 5): every kind of drift, injected for real, is caught and named.

Each test injects one drift between the verified image and a host side, runs
the real steps (real engine, real interpreters, real pip), and asserts that the
report names that drift: its category, its subject and a message with the
lock, image and host values. Nothing is mocked; the expensive parts (the image
run, the venvs) are built once per module, and the venvs under `.mlrepro/`
are reused across sessions while their lock is unchanged.

| drift | test |
| --- | --- |
| another version of a direct dependency (scikit-learn) | test_another_version_of_a_direct_dependency |
| another version of transitive ones (numpy, scipy, their OpenBLAS) | test_another_version_of_transitive_dependencies |
| an extra package on the host | test_an_extra_package |
| a missing package on the host | test_a_missing_package |
| thread counts (ml_project's fit and predict) | test_thread_counts_are_named |
| thread counts that change results (a BLAS reduction) | test_thread_counts_that_change_results |
| another Python minor version | test_another_python_minor_version |
| a changed seed / training parameter | test_a_changed_training_parameter |
| a file in the image that differs from the source (stale COPY) | tests/integration/test_verify.py::test_stale_image_is_caught_as_output_drift |
| a stale lock relative to requirements.in | test_a_stale_lock_is_named |
| no false alarms: three verifications of this repository | test_three_verifications_of_this_repository_are_identical |
| the demo itself (`mlrepro demo`) | test_demo_command_shows_measured_drift |
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.compare import ArtifactRule, Difference
from harness.config import Step
from harness.demo import DEFAULT_DRIFT_LOCK, DEFAULT_DRIFT_VENV
from harness.ownership import RUN_ID
from harness.lock import read_lock
from harness.plugin import assert_reproducible, missing_prerequisite
from harness.report import Report
from harness.sides import run_in_image, run_on_host
from harness.sides.venv import ensure_venv, host_python
from harness.verify import compare_runs, run_both

ROOT = Path(__file__).resolve().parents[2]
DRIFT_LOCK = ROOT / DEFAULT_DRIFT_LOCK
CATALOGUE_VENV = ROOT / ".mlrepro" / "catalogue-venv"
# The extra package: small, pure Python, never locked by ml_project.
EXTRA, EXTRA_VERSION = "six", "1.17.0"
# The missing package: locked (a dependency of skops) but not imported by train or predict,
# so the steps still succeed and only the harness can notice.
MISSING = "prettytable"


def quiet(message: str) -> None:
    pass


def named(report: Report, category: str) -> dict[str, Difference]:
    return {d.subject: d for d in report.differences if d.category == category}


def drifted_subjects(report: Report) -> set[str]:
    return {d.subject for d in report.drift}


def package_line(name: str, lock: str | None, image: str | None, host: str | None) -> str:
    return f"{name}: lock {lock or '-'}, image {image or '-'}, host {host or '-'}"


@pytest.fixture(scope="module")
def image_run(engine, repo_config, prepared):
    """The steps once in this repository's image, shared by every comparison below."""
    return run_in_image(engine, repo_config, prepared[1].tag, progress=quiet)


def report_of(config, prepared, image_run, host_run) -> Report:
    lock, image = prepared
    return compare_runs(config, lock, image, image_run, host_run)


# Versions: the demo's drifted venv (older scikit-learn, numpy, scipy) ------------------


@pytest.fixture(scope="module")
def drift_report(repo_config, prepared, image_run) -> Report:
    python = ensure_venv(DRIFT_LOCK, ROOT / DEFAULT_DRIFT_VENV, progress=quiet)
    return report_of(repo_config, prepared, image_run, run_on_host(repo_config, python, progress=quiet))


def _assert_version_drift(report: Report, lock_versions: dict, name: str) -> None:
    drifted = read_lock(DRIFT_LOCK).versions[name]
    assert lock_versions[name] != drifted, f"examples/drift pins {name} at the lock's version: nothing to detect"
    difference = named(report, "package")[name]
    assert difference.severity == "drift"
    assert difference.message == package_line(name, lock_versions[name], lock_versions[name], drifted)
    assert difference.details["problems"] == ["host version differs from lock"]
    assert difference.message in report.verdict()


def test_another_version_of_a_direct_dependency(drift_report, prepared):
    _assert_version_drift(drift_report, prepared[0].versions, "scikit-learn")
    # What it did (measured): every prediction and the model's hash changed.
    status = {a.path: a.status for a in drift_report.artifacts}
    assert status["predictions.csv"] == "differs" and status["manifest.json"] == "differs"
    assert {"predictions.csv", "manifest.json"} <= drifted_subjects(drift_report)


def test_another_version_of_transitive_dependencies(drift_report, prepared):
    for name in ("numpy", "scipy"):
        _assert_version_drift(drift_report, prepared[0].versions, name)
    # numpy and scipy vendor their OpenBLAS: the native library changed with them, and is named too.
    blas = named(drift_report, "threads")["blas.version"]
    assert blas.severity == "drift" and blas.message.startswith("threads: blas version image ")


# Extra and missing packages: a venv synced from the lock, then edited with pip -------------


def pip(python: str, *args: str) -> None:
    proc = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def edited_venv(repo_config, prepared):
    """(config, run with one extra package, run with one locked package removed), in that order."""
    config = replace(repo_config, host=replace(repo_config.host, mode="venv", venv=CATALOGUE_VENV))
    python = host_python(config, progress=quiet)  # pip-sync: exactly the lock (also undoes the last session's edits)
    pip(python, "install", "--no-deps", "--only-binary=:all:", f"{EXTRA}=={EXTRA_VERSION}")
    with_extra = run_on_host(config, python, progress=quiet)
    pip(python, "uninstall", "--yes", EXTRA, MISSING)
    without = run_on_host(config, python, progress=quiet)
    return config, with_extra, without


def test_an_extra_package(edited_venv, prepared, image_run):
    config, with_extra, _ = edited_venv
    strict = replace(config, compare=replace(config.compare, host_extras="drift"))
    report = report_of(strict, prepared, image_run, with_extra)
    difference = named(report, "package")[EXTRA]
    assert difference.severity == "drift"
    assert difference.message == package_line(EXTRA, None, None, EXTRA_VERSION)
    assert difference.details["problems"] == ["on host but not in lock"]
    assert drifted_subjects(report) == {EXTRA}  # the outputs did not change: only the harness sees it
    # Under the repository's policy (host_extras = "note") it is reported, not failed.
    lenient = report_of(config, prepared, image_run, with_extra)
    assert lenient.reproducible
    assert f"{EXTRA} {EXTRA_VERSION}" in named(lenient, "package")["host extras"].message


def test_a_missing_package(edited_venv, prepared, image_run):
    config, _, without = edited_venv
    report = report_of(config, prepared, image_run, without)
    locked = prepared[0].versions[MISSING]
    difference = named(report, "package")[MISSING]
    assert difference.severity == "drift"
    assert difference.message == package_line(MISSING, locked, locked, None)
    assert difference.details["problems"] == ["missing from host"]
    assert drifted_subjects(report) == {MISSING}  # train and predict never import it: outputs identical


# Threads ------------------------------------------------------------------------------


def _other_count(image_run, *names: str) -> str:
    """A thread count the image does not use, so the injected setting really differs."""
    used = {str(p.get("num_threads")) for p in image_run.probe.get("threadpools") or []}
    used |= {image_run.probe.get("env", {}).get(n) for n in names}
    return next(c for c in ("1", "2", "3", "4") if c not in used)


def test_thread_counts_are_named(repo_config, prepared, image_run):
    """Host BLAS/OpenMP pools and ml_project's fit/predict threads changed; the image keeps its own.

    Measured here (2 cores): ml_project's outputs stay bit-identical (LogisticRegression
    on 455 x 30 rows), so this drift is caught by the probe alone, never by the outputs.
    """
    count = _other_count(image_run, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = {"OMP_NUM_THREADS": count, "OPENBLAS_NUM_THREADS": count, "ML_PROJECT_THREADS": "2"}
    host_config = replace(repo_config, run=replace(repo_config.run, env={**repo_config.run.env, **env}),
                          probe_env=(*repo_config.probe_env, "ML_PROJECT_THREADS"))
    report = report_of(repo_config, prepared, image_run, run_on_host(host_config, sys.executable, progress=quiet))
    image_env = image_run.probe.get("env", {})
    env_named = named(report, "env")
    for name, value in env.items():
        shown = image_env.get(name, "unset")
        assert env_named[name].message == f"{name}: image {shown}, host {value}" and env_named[name].severity == "drift"
    threads = named(report, "threads")
    assert threads["blas.num_threads"].severity == "drift"
    assert threads["blas.num_threads"].message.endswith(f", host {count}")
    assert threads["openmp.num_threads"].message.endswith(f", host {count}")
    assert not any(d.category == "package" for d in report.drift)


DOT = ("import sys, numpy as np; r = np.random.default_rng(0); a = r.standard_normal(2000000); "
       "b = r.standard_normal(2000000); open(sys.argv[1], 'w').write(repr(float(a @ b)) + chr(10))")


def _dot_config(config, threads: str):
    """One step whose result depends on summation order: a long dot product in OpenBLAS."""
    return replace(config, steps=(Step("dot", ("python", "-c", DOT, "{out}/dot.txt"), 120),),
                   artifacts=(ArtifactRule("dot.txt", "bitwise"),),
                   run=replace(config.run, env={**config.run.env, "OPENBLAS_NUM_THREADS": threads}))


def test_thread_counts_that_change_results(engine, repo_config, prepared):
    """OpenBLAS splits a long ddot across threads: 1 vs 2 threads sums in another order."""
    if len(os.sched_getaffinity(0)) < 2:
        missing_prerequisite("one CPU: OpenBLAS caps its threads at the CPU count, so 2 threads cannot be injected")
    lock, image = prepared
    one = _dot_config(repo_config, "1")
    in_image = run_in_image(engine, one, image.tag, progress=quiet)
    same = compare_runs(one, lock, image, in_image, run_on_host(one, sys.executable, progress=quiet))
    assert {a.path: a.status for a in same.artifacts} == {"dot.txt": "identical"}  # the control: same count, same bits
    other = compare_runs(one, lock, image, in_image, run_on_host(_dot_config(repo_config, "2"), sys.executable, progress=quiet))
    assert {a.path: a.status for a in other.artifacts} == {"dot.txt": "differs"}
    assert named(other, "env")["OPENBLAS_NUM_THREADS"].message == "OPENBLAS_NUM_THREADS: image 1, host 2"
    assert named(other, "threads")["blas.num_threads"].message.endswith(", host 2")
    assert {"OPENBLAS_NUM_THREADS", "blas.num_threads", "dot.txt"} <= drifted_subjects(other)


# Python -------------------------------------------------------------------------------


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def second_interpreter(image_minor: str) -> str | None:
    """A working CPython 3.x other than the image's X.Y that the lock supports (>= 3.11), or None."""
    candidates = []
    for minor in ("3.12", "3.13"):
        if minor == image_minor:
            continue
        candidates.append(shutil.which(f"python{minor}"))
        candidates += [str(p) for p in sorted(_pyenv_root().glob(f"versions/{minor}.*/bin/python{minor}"))]
    for candidate in filter(None, candidates):
        try:
            proc = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if proc.returncode == 0 and proc.stdout.strip() not in ("", image_minor):
            return candidate
    return None


def test_another_python_minor_version(repo_config, prepared, image_run):
    image_version = image_run.probe["python"]["version"]
    image_minor = ".".join(image_version.split(".")[:2])
    interpreter = second_interpreter(image_minor)
    if interpreter is None:
        missing_prerequisite(f"no second CPython interpreter (3.12 or 3.13, on PATH or under pyenv) besides the image's {image_minor}")
    minor = Path(interpreter).name.removeprefix("python")
    python = ensure_venv(repo_config.lock, ROOT / ".mlrepro" / f"catalogue-python{minor}", base_python=interpreter, progress=quiet)
    report = report_of(repo_config, prepared, image_run, run_on_host(repo_config, python, progress=quiet))
    host_version = report.environments["host"]["python"]["version"]
    difference = named(report, "python")["python"]
    assert difference.severity == "drift" and difference.details["level"] == "minor"
    assert difference.message == (f"python: image {image_version}, host {host_version} "
                                  "(minor version differs; policy 'minor' requires the same major.minor version)")
    assert not any(d.category == "package" for d in report.drift)  # same lock: the interpreter is the only change


# Training parameters ---------------------------------------------------------------------


def test_a_changed_training_parameter(repo_config, prepared, image_run):
    steps = tuple(replace(s, command=(*s.command, "--seed", "7")) if s.name == "train" else s for s in repo_config.steps)
    report = report_of(repo_config, prepared, image_run, run_on_host(replace(repo_config, steps=steps), sys.executable, progress=quiet))
    assert drifted_subjects(report) == {"predictions.csv", "metrics.json", "manifest.json"}
    artifacts = {a.path: a for a in report.artifacts}
    assert artifacts["manifest.json"].summary.startswith("manifest.json canonical_hash: image sha256:")
    assert "rows differ" in artifacts["predictions.csv"].summary or "row differs" in artifacts["predictions.csv"].summary
    assert all(d.category == "artifact" for d in report.drift)  # nothing in the environment changed


# The lock ----------------------------------------------------------------------------------


def test_a_stale_lock_is_named(tmp_path):
    """requirements.in re-pinned without re-locking: `mlrepro lock --check` exits 1 naming the package."""
    from click.testing import CliRunner

    from harness.cli.lock import lock_command

    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    for name in ("pyproject.toml", "requirements.in", "requirements.txt", "examples/holdout.csv"):
        shutil.copyfile(ROOT / name, project / name)
    (project / "wheelhouse").symlink_to(ROOT / "wheelhouse")
    runner = CliRunner()
    fresh = runner.invoke(lock_command, ["--config", str(project), "--check"])
    assert fresh.exit_code == 0, fresh.output
    source = (project / "requirements.in").read_text()
    assert "\nscikit-learn\n" in source
    (project / "requirements.in").write_text(source.replace("\nscikit-learn\n", "\nscikit-learn<1.9\n"))
    stale = runner.invoke(lock_command, ["--config", str(project), "--check"])
    assert stale.exit_code == 1, stale.output
    lines = [line for line in stale.output.splitlines() if line.startswith("stale: ")]
    assert len(lines) == 1 and "scikit-learn<1.9" in lines[0] and "mlrepro lock" in lines[0]


# No false alarms -----------------------------------------------------------------------


def test_three_verifications_of_this_repository_are_identical(engine, repo_config, prepared):
    lock, image = prepared
    texts = []
    for _ in range(3):
        report = compare_runs(repo_config, lock, image, *run_both(repo_config, engine, image, progress=quiet))
        assert_reproducible(report)
        texts.append(report.to_json())
    # Which probes came from the probe cache is the one thing that may differ (the first run may have measured);
    # the keys they were measured under may not, nor anything else.
    caches = [json.loads(text).get("probe_cache") for text in texts]
    assert caches[1] == caches[2] == {side: {"key": caches[0][side]["key"], "cached": True} for side in ("image", "host")}
    texts = [json.dumps({k: v for k, v in json.loads(text).items() if k != "probe_cache"}, sort_keys=True) for text in texts]
    assert texts[0] == texts[1] == texts[2]
    assert RUN_ID not in texts[0]  # nothing run-specific: no run id, so no container or volume name either
    data = json.loads(texts[0])
    for side in data["environments"].values():
        side["python"].pop("executable", None)  # the one path a report keeps: which interpreter ran
    settings = data.pop("settings")  # the verified settings name paths relative to the project, and the container's workdir
    assert settings["run"]["workdir_in_image"] == repo_config.run.workdir_in_image and str(ROOT) not in json.dumps(settings)
    assert str(ROOT) not in json.dumps(data) and tempfile.gettempdir() + "/" not in json.dumps(data)


# The demo ----------------------------------------------------------------------------------


def test_demo_command_shows_measured_drift(tmp_path, engine, prepared):
    """What `mlrepro demo` measures under examples/drift's pins (scikit-learn 1.3.2), exactly.

    The image's 1.9.1 model loads in the drifted venv with an InconsistentVersionWarning
    (folded by ml_project.persistence into the "was saved with ..." text), then predict fails
    with AttributeError 'multi_class' and exits 2; the same steps run in that venv change the
    probabilities of every holdout row (114 of 114). The same run's `--html` page is then opened
    in headless Chromium (tests/browser.py): verdict, histogram and worst rows present and visible.
    """
    from html import escape

    from tests.browser import open_page

    locked = prepared[0].versions
    drifted = read_lock(DRIFT_LOCK).versions
    assert drifted["scikit-learn"] == "1.3.2", "the measured outcome below is scikit-learn 1.3.2's: re-measure it"
    out, page_path = tmp_path / "demo.json", tmp_path / "demo.html"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--json", str(out), "--html", str(page_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    # Every package the two locks disagree on, and only those, with both versions.
    expected_changes = [{"package": name, "image": locked.get(name, "absent"), "drifted": drifted.get(name, "absent")}
                        for name in sorted(locked.keys() | drifted.keys()) if locked.get(name) != drifted.get(name)]
    assert data["version_changes"] == expected_changes
    assert {"scikit-learn", "numpy", "scipy"} <= {c["package"] for c in expected_changes}

    error = (f"error: model in '{{out}}' cannot predict here (AttributeError: 'LogisticRegression' object has no "
             f"attribute 'multi_class'): '{{out}}/model.skops' was saved with scikit-learn {locked['scikit-learn']} "
             f"but this is {drifted['scikit-learn']}; expected a model trained with this environment's versions: "
             "retrain with `python -m ml_project.train --out DIR`")
    load = data["load_check"]
    assert (load["outcome"], load["exit_code"], load["error"]) == ("failed", 2, error)
    assert load["lines"] == [error] and load["artifacts"] == []

    holdout_rows = len((ROOT / "examples" / "holdout.csv").read_text().splitlines()) - 1
    artifacts = {a["path"]: a for a in data["report"]["artifacts"]}
    assert {path: a["status"] for path, a in artifacts.items()} == {
        "predictions.csv": "differs", "metrics.json": "differs", "manifest.json": "differs"}
    predictions = artifacts["predictions.csv"]["details"]
    assert holdout_rows == 114 and predictions["rows"] == predictions["rows_differing"] == holdout_rows
    assert predictions["evidence"]["labels"] == {}  # the probabilities moved, no label did
    assert artifacts["predictions.csv"]["summary"].startswith(f"predictions.csv: {holdout_rows} of {holdout_rows} rows differ, ")

    # Shown as measured: the exit code, the outcome, the step's own error line, the summary.
    assert "exit code  2" in proc.stdout and "outcome    failed" in proc.stdout
    assert error in proc.stdout
    assert f"image-trained model in the drifted venv: step 'predict' failed (exit 2): {error}" in proc.stdout
    assert f"same steps, predictions.csv: differs (predictions.csv: {holdout_rows} of {holdout_rows} rows differ, " in proc.stdout
    assert "Side by side" in proc.stdout and "Summary" in proc.stdout
    assert "Traceback" not in proc.stderr

    # The HTML page of the same run, as a reviewer's browser shows it.
    assert f"HTML report written to {page_path}" in proc.stderr
    index = [a["path"] for a in data["report"]["artifacts"]].index("predictions.csv") + 1
    article = f"#artifact-{index}"
    page = open_page(page_path, "demo-drift", selectors=(
        "#verdict", "#verdict .status", "#packages table", f"{article} figure.histogram svg", f"{article} figure.scatter svg",
        f"{article} table.worst-rows", f"{article} table.worst-rows tbody tr"))
    assert '<header id="verdict" class="verdict fail">' in page.dom and '<p class="status">✗ DRIFT</p>' in page.dom
    assert f'<p class="summary" id="summary">{escape(data["report"]["verdict"], quote=False)}</p>' in page.dom
    assert f"predictions.csv: {holdout_rows} of {holdout_rows} rows differ, " in page.dom
    assert "(a ≠ b), by decade of |image − host|" in page.dom and "AttributeError" in page.dom  # the cross-load aside
    assert "<summary>step predict: last " in page.dom and " lines from image, drifted venv</summary>" in page.dom  # step logs
    for selector in page.boxes:
        assert page.visible(selector), f"{selector} is not visible: {page.boxes[selector]}"
    worst = predictions["evidence"]["worst_rows"]  # one table row per differing cell of each worst row
    assert len(worst) == 10 and len(page.boxes[f"{article} table.worst-rows tbody tr"]) == sum(len(w["cells"]) for w in worst)
    assert page.min_text_px >= 12, f"text under 12 px: {page.smallest} ({page.min_text_px:.1f} px)"
