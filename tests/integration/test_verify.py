"""Verification end to end (issue 3): CLI, JSON report, configuration-only projects, drift.

Real engine, real images, real runs on both sides; no mocks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.config import load_config
from harness.plugin import assert_reproducible, missing_prerequisite
from harness.report import Report
from harness.verify import compare_runs, prepare, run_both

ROOT = Path(__file__).resolve().parents[2]
MLREPRO = [sys.executable, "-m", "harness.cli"]


def mlrepro(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*MLREPRO, *args], cwd=cwd, capture_output=True, text=True, timeout=1800)


def test_repository_image_matches_host_and_lock(mlrepro_report):
    """This repository's own parity test, written with the plugin's fixtures."""
    assert_reproducible(mlrepro_report)
    assert {a.path: a.status for a in mlrepro_report.artifacts} == {
        "predictions.csv": "identical", "metrics.json": "identical", "manifest.json": "identical",
    }


def test_cli_verify_writes_an_auditable_json_report(tmp_path, engine, repo_config):
    """The JSON report, and the HTML page of the same run opened in headless Chromium (tests/browser.py)."""
    from tests.browser import open_page
    from harness.report import render_html

    page_path = tmp_path / "report.html"
    result = mlrepro("verify", "--json", str(tmp_path / "report.json"), "--html", str(page_path))
    assert result.returncode == 0, result.stderr
    assert "REPRODUCIBLE" in result.stdout.splitlines()[-1]
    report = Report.from_json((tmp_path / "report.json").read_text())
    assert report.reproducible
    assert engine.image_id(report.image.tag) == report.image.image_id
    assert report.environments["image"]["packages"]["scikit-learn"] == report.environments["host"]["packages"]["scikit-learn"]
    assert len(report.lock_sha256) == 64
    assert "Traceback" not in result.stderr

    # The page is a function of the JSON record plus the steps' logs (both sides, collapsed, temp dirs as {tmp}).
    html = page_path.read_text(encoding="utf-8")
    head, logs_section = html.split('<section id="logs">', 1)
    assert head == render_html(report).split('<section id="logs">', 1)[0]
    for step in (step.name for step in repo_config.steps):
        assert f"<summary>step {step}: last " in logs_section and " lines from image, host</summary>" in logs_section
    assert "No step logs are part of this report" not in logs_section
    page = open_page(page_path, "verify-reproducible", selectors=("#verdict", "#verdict .status", "#packages table", "#artifacts table"))
    assert '<header id="verdict" class="verdict ok">' in page.dom and '<p class="status">✓ REPRODUCIBLE</p>' in page.dom
    assert report.verdict() in page.dom and f"No package differs ({report.package_count()} compared)" in page.dom
    # Nothing moved, and the page says so instead of plotting it.
    assert "<figure" not in page.dom and "worst-rows" not in page.dom
    assert page.dom.count("No value differs between the image and the host: nothing to plot.") == len(report.artifacts)
    for selector in page.boxes:
        assert page.visible(selector), f"{selector} is not visible: {page.boxes[selector]}"
    assert page.min_text_px >= 12, f"text under 12 px: {page.smallest} ({page.min_text_px:.1f} px)"


def test_second_project_is_verified_through_configuration_alone(other_project, tmp_path):
    """...and its report signed (`--sign-key`): the envelope beside it verifies with the public key, and
    the report records the settings it verified (what `mlrepro release` compares with today's)."""
    from harness.attest.dsse import Envelope, verify_envelope
    from harness.attest.keys import generate_key, load_verifier
    from harness.config import load_config
    from harness.settings import verified_settings

    generate_key(tmp_path / "k.pem")
    result = mlrepro("verify", "--config", str(other_project), "--json", str(other_project / "r.json"), "--sign-key", str(tmp_path / "k.pem"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    signed = verify_envelope(Envelope.from_json((other_project / "r.json.dsse").read_bytes()), load_verifier(tmp_path / "k.pem.pub"))
    assert signed == (other_project / "r.json").read_bytes() and "report signed by sha256:" in result.stderr
    data = json.loads((other_project / "r.json").read_text())
    assert data["settings"] == verified_settings(load_config(other_project / "pyproject.toml"))
    assert data["project"] == "line-fit"
    assert sorted(a["path"] for a in data["artifacts"]) == ["model.json", "scores.csv"]
    assert data["image"]["tag"].startswith("mlrepro-test/line-fit:")


def test_real_drift_exits_1_and_is_named(other_project):
    """score.py records the interpreter version: image 3.11.2 vs host 3.11.x shows up as drift."""
    with (other_project / "pyproject.toml").open("a") as fh:
        fh.write('\n[[tool.mlrepro.artifacts]]\npath = "runtime.txt"\ncompare = "bitwise"\n')
    result = mlrepro("verify", "--config", str(other_project), "--json", str(other_project / "r.json"))
    report = Report.from_json((other_project / "r.json").read_text())
    image_py = report.environments["image"]["python"]["version"]
    host_py = report.environments["host"]["python"]["version"]
    if image_py == host_py:
        missing_prerequisite(f"the image's Python is the host's ({host_py}): runtime.txt cannot drift here")
    assert result.returncode == 1, result.stderr
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("DRIFT") and "runtime.txt" in verdict
    assert [d.subject for d in report.drift] == ["runtime.txt"]


def test_stale_image_is_caught_as_output_drift(other_project, engine):
    """An image built from an older source tree than the host runs (a stale COPY)."""
    config = load_config(other_project)
    lock, image = prepare(config, engine, progress=lambda m: None)
    fit = other_project / "fit.py"
    fit.write_text(fit.read_text().replace("float(b)", "float(b) + 1e-9"))
    report = compare_runs(config, lock, image, *run_both(config, engine, image, progress=lambda m: None))
    assert not report.reproducible
    drifted = {d.subject: d.message for d in report.drift}
    assert set(drifted) == {"model.json", "scores.csv"}
    assert "50 of 50 rows differ" in drifted["scores.csv"]
    assert prepare(config, engine, progress=lambda m: None)[1].tag != image.tag  # the content hash saw the edit


def test_repeated_verifications_are_identical(other_project):
    """No false alarms and nothing run-specific: three runs, identical JSON reports but for which probes were cached."""
    reports = []
    for i in range(3):
        result = mlrepro("verify", "--config", str(other_project), "--json", str(other_project / f"r{i}.json"))
        assert result.returncode == 0, result.stderr
        reports.append((other_project / f"r{i}.json").read_text())
    # The first run measures both environments; the later ones take them from the probe cache, under the same keys.
    caches = [json.loads(text).pop("probe_cache") for text in reports]
    assert [[c[side]["cached"] for side in ("image", "host")] for c in caches] == [[False, False], [True, True], [True, True]]
    assert caches[0]["image"]["key"] == caches[2]["image"]["key"] and caches[0]["host"]["key"] == caches[2]["host"]["key"]
    stripped = [{k: v for k, v in json.loads(text).items() if k != "probe_cache"} for text in reports]
    assert stripped[0] == stripped[1] == stripped[2]  # everything else, byte for byte as JSON
    assert str(other_project) not in reports[0]
