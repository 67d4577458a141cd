"""Recorded references on the real engine (issue 16): `mlrepro record`, then `mlrepro verify --against`.

This repository's real steps, real image, real interpreters. A reference
recorded on the host (this interpreter, which holds the lock) or in the image
gives REPRODUCIBLE against the image; one recorded in the demo's drifted venv
(`examples/drift`: older scikit-learn, numpy, scipy) gives DRIFT naming the
artifacts those versions changed and the packages behind them. Every command
is the real command line, run as a subprocess from the repository root.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.demo import DEFAULT_DRIFT_LOCK, DEFAULT_DRIFT_VENV
from harness.lock import read_lock
from harness.reference import load_reference
from harness.sides.venv import ensure_venv

ROOT = Path(__file__).resolve().parents[2]


def mlrepro(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("MLREPRO_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)


def recorded(path: Path, *args: str):
    proc = mlrepro("record", *args, "--out", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}\n"
    return load_reference(path)


def verified_against(path: Path, report_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = mlrepro("verify", "--against", str(path), "--json", str(report_path))
    assert "Traceback" not in proc.stderr
    return proc, json.loads(report_path.read_text())


@pytest.fixture(scope="module")
def host_reference(tmp_path_factory, prepared):
    path = tmp_path_factory.mktemp("reference") / "host.json"
    return path, recorded(path)


def test_a_reference_recorded_on_the_host_is_reproducible_against_the_image(host_reference, prepared, tmp_path):
    path, reference = host_reference
    lock, image = prepared
    assert reference.where == "host" and reference.image_id is None
    assert reference.lock_sha256 == lock.sha256
    assert set(reference.files) == {"predictions.csv", "metrics.json", "manifest.json"}
    assert reference.probe["packages"]["scikit-learn"] == lock.versions["scikit-learn"]

    proc, report = verified_against(path, tmp_path / "report.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["reference_sha256"] == reference.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["image"]["image_id"] == image.image_id
    assert {a["path"]: a["status"] for a in report["artifacts"]} == {
        "predictions.csv": "identical", "metrics.json": "identical", "manifest.json": "identical"}
    verdict = f"REPRODUCIBLE: image {image.tag} == reference sha256:{reference.sha256[:12]} == lock"
    assert verdict in " ".join(proc.stdout.split())
    assert f"sha256:{reference.sha256}" in proc.stdout  # the report says which reference, in full


def test_a_reference_recorded_in_the_image_is_reproducible_against_it(prepared, tmp_path):
    lock, image = prepared
    path = tmp_path / "image.json"
    reference = recorded(path, "--side", "image")
    assert reference.where == "image" and reference.image_id == image.image_id
    assert reference.lock_sha256 == lock.sha256
    proc, report = verified_against(path, tmp_path / "report.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["reference_sha256"] == reference.sha256


def test_a_reference_recorded_under_other_library_versions_is_drift_naming_the_artifacts(prepared, tmp_path):
    lock, image = prepared
    drift_lock = read_lock(ROOT / DEFAULT_DRIFT_LOCK)
    assert drift_lock.versions["scikit-learn"] != lock.versions["scikit-learn"]
    python = ensure_venv(ROOT / DEFAULT_DRIFT_LOCK, ROOT / DEFAULT_DRIFT_VENV, progress=lambda m: None)
    path = tmp_path / "drifted.json"
    reference = recorded(path, "--side", "host", "--python", python)
    # Recorded for this repository's lock (that is what it is compared under), by other versions.
    assert reference.lock_sha256 == lock.sha256
    assert reference.probe["packages"]["scikit-learn"] == drift_lock.versions["scikit-learn"]

    proc, report = verified_against(path, tmp_path / "report.json")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["reference_sha256"] == reference.sha256
    status = {a["path"]: a["status"] for a in report["artifacts"]}
    assert status["predictions.csv"] == "differs" and status["manifest.json"] == "differs"
    packages = {d["subject"]: d for d in report["differences"] if d["category"] == "package"}
    assert packages["scikit-learn"]["message"] == (f"scikit-learn: lock {lock.versions['scikit-learn']}, image "
                                                   f"{lock.versions['scikit-learn']}, host {drift_lock.versions['scikit-learn']}")
    verdict = next(line for line in proc.stdout.splitlines() if line.startswith("DRIFT: "))
    assert "predictions.csv" in verdict and "scikit-learn" in verdict
