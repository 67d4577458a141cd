"""Report: exact JSON round trip, one-line verdicts, and a rendering that shows the facts."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from harness.compare import (
    ArtifactResult,
    ArtifactRule,
    Difference,
    compare_artifact,
    compare_environments,
    compare_packages,
)
from harness.compare import DEFAULT_IGNORED_PACKAGES
from harness.report import ImageInfo, Report, render

IMAGE = ImageInfo(
    tag="mlrepro/iris:3f2a9c1d",
    image_id="sha256:9b1e4c2d7a8f0011223344556677889900aabbccddeeff00112233445566778899",
    content_hash="sha256:c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
    base_image="python:3.11.7-slim-bookworm",
    base_image_id="sha256:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
)
LOCK_SHA = "d" * 64

LOCK = {f"pkg{i:02d}": f"1.{i}.0" for i in range(9)} | {"numpy": "2.4.6", "scikit-learn": "1.9.1"}

PROBE = {
    "schema": 1,
    "python": {"version": "3.11.7", "implementation": "CPython", "compiler": "GCC 12.2.0", "executable": "/usr/local/bin/python"},
    "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36", "release": "6.1.0-18-amd64"},
    "packages": {**LOCK, "pip": "24.0"},
    "threadpools": [
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 1, "version": "0.3.27",
         "architecture": "Haswell", "filename": "libscipy_openblas64_-ff651d7f.so"}
    ],
    "env": {"OMP_NUM_THREADS": "1"},
}


def build_report(host_changes=None, artifact_pairs=None) -> Report:
    host = copy.deepcopy(PROBE)
    host["python"]["executable"] = "/home/runner/work/venv/bin/python"
    for change in host_changes or []:
        change(host)
    differences = compare_environments(PROBE, host) + compare_packages(LOCK, PROBE["packages"], host["packages"])
    pairs = artifact_pairs if artifact_pairs is not None else [
        (ArtifactRule("predictions.csv", "numeric"), b"id,p\n1,0.5\n", b"id,p\n1,0.5\n"),
        (ArtifactRule("model.skops"), b"model", b"model"),
        (ArtifactRule("metrics.json", "json"), b'{"acc": 0.9}', b'{"acc": 0.9}'),
    ]
    artifacts = [compare_artifact(rule, a, b) for rule, a, b in pairs]
    return Report("iris", IMAGE, LOCK_SHA, {"image": PROBE, "host": host}, tuple(differences), tuple(artifacts))


def patch_python(host):
    host["python"]["version"] = "3.11.9"


def downgrade_sklearn(host):
    host["packages"]["scikit-learn"] = "1.3.2"


def export(report: Report) -> str:
    console = Console(record=True, width=120)
    render(report, console)
    return console.export_text()


# ------------------------------------------------------------------ verdicts


def test_reproducible_verdict():
    report = build_report([patch_python])
    assert report.reproducible
    assert report.drift == ()
    assert [d.subject for d in report.notes] == ["python"]
    assert report.verdict() == "REPRODUCIBLE: image mlrepro/iris:3f2a9c1d == host == lock (11 packages, 3 artifacts identical; 1 note)"


def test_reproducible_verdict_mentions_equivalent_artifacts():
    report = build_report(artifact_pairs=[
        (ArtifactRule("predictions.csv", "numeric", atol=1e-6), b"p\n0.5\n", b"p\n0.5000001\n"),
        (ArtifactRule("model.skops"), b"model", b"model"),
    ])
    assert report.verdict() == (
        "REPRODUCIBLE: image mlrepro/iris:3f2a9c1d == host == lock "
        "(11 packages, 2 artifacts: 1 identical, 1 equivalent within tolerance)"
    )


def test_drift_verdict_lists_every_difference_on_one_line():
    rows_image = "id,p\n" + "".join(f"{i},0.3\n" for i in range(114))
    rows_host = rows_image.replace("0,0.3\n", "0,0.321\n", 1)
    report = build_report(
        [downgrade_sklearn],
        [(ArtifactRule("predictions.csv", "numeric"), rows_image.encode(), rows_host.encode())],
    )
    assert not report.reproducible
    assert [d.category for d in report.drift] == ["package", "artifact"]
    assert report.verdict() == (
        "DRIFT: 2 differences: scikit-learn: lock 1.9.1, image 1.9.1, host 1.3.2; "
        "predictions.csv: 1 of 114 rows differs, max abs diff 0.021, max rel diff 0.0654"
    )


def test_drift_verdict_is_capped_but_counts_everything():
    diffs = tuple(Difference("env", f"V{i}", f"V{i}: image 1, host 2", "drift", {}) for i in range(12))
    report = Report("p", IMAGE, LOCK_SHA, {"image": PROBE, "host": PROBE}, diffs, ())
    verdict = report.verdict()
    assert verdict.startswith("DRIFT: 12 differences: V0: image 1, host 2; ")
    assert verdict.endswith("V9: image 1, host 2; (+2 more)")


def test_missing_artifact_is_drift():
    report = build_report(artifact_pairs=[(ArtifactRule("predictions.csv"), b"x", None)])
    assert report.verdict() == "DRIFT: 1 difference: predictions.csv: missing from host"


# ------------------------------------------------------------------ JSON


def test_to_json_is_deterministic_and_carries_the_verdict():
    report = build_report([downgrade_sklearn])
    text = report.to_json()
    assert text.endswith("}\n")
    assert text == build_report([downgrade_sklearn]).to_json()
    data = json.loads(text)
    assert data["reproducible"] is False
    assert data["verdict"] == report.verdict()
    assert data["schema"] == 1
    assert list(data) == sorted(data)
    assert Report.from_json(text) == report


def test_from_json_rejects_other_schemas():
    data = json.loads(build_report().to_json())
    data["schema"] = 2
    with pytest.raises(ValueError, match="expected schema 1, found 2"):
        Report.from_json(json.dumps(data))
    del data["schema"]
    with pytest.raises(ValueError, match="expected schema 1"):
        Report.from_json(json.dumps(data))


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20), st.floats(), st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
details = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
words = st.text(max_size=20)

differences = st.builds(
    Difference,
    category=st.sampled_from(["package", "python", "platform", "threads", "env", "artifact"]),
    subject=words,
    message=words,
    severity=st.sampled_from(["drift", "note"]),
    details=details,
)
artifact_results = st.builds(
    ArtifactResult,
    path=words,
    mode=st.sampled_from(["bitwise", "numeric", "json", "hash"]),
    status=st.sampled_from(["identical", "equivalent", "differs", "missing"]),
    summary=words,
    details=details,
)
reports = st.builds(
    Report,
    project=words,
    image=st.builds(ImageInfo, tag=words, image_id=words, content_hash=words, base_image=words, base_image_id=words),
    lock_sha256=words,
    environments=st.dictionaries(st.sampled_from(["image", "host"]), st.dictionaries(st.text(max_size=5), json_values, max_size=4)),
    differences=st.lists(differences, max_size=4).map(tuple),
    artifacts=st.lists(artifact_results, max_size=3).map(tuple),
    ignored_packages=st.lists(words, max_size=3).map(tuple),
)


@settings(max_examples=100)
@given(reports)
def test_json_round_trip_is_exact(report):
    text = report.to_json()
    again = Report.from_json(text)
    assert again == report
    assert again.to_json() == text
    assert again.verdict() == report.verdict()
    assert len(report.verdict().splitlines()) <= 1
    assert report.reproducible == (not report.drift)


# ------------------------------------------------------------------ render


def test_render_shows_the_key_facts():
    rows = "id,p\n1,0.5\n2,0.7\n"
    report = build_report(
        [downgrade_sklearn, patch_python, lambda h: h["env"].update(OMP_NUM_THREADS="4"), lambda h: h["packages"].update(pytest="8.2.0")],
        [(ArtifactRule("predictions.csv", "numeric"), rows.encode(), rows.replace("0.7", "0.75").encode()),
         (ArtifactRule("model.skops"), b"m", b"m")],
    )
    text = export(report)
    lines = text.splitlines()
    for fact in (
        "iris", "mlrepro/iris:3f2a9c1d", "9b1e4c2d7a8f", IMAGE.content_hash, LOCK_SHA, "python:3.11.7-slim-bookworm",
        "scikit-learn", "1.3.2", "host version differs from lock", "pytest", "8.2.0", "host only, not locked",
        "pip", "ignored", "pkg00==1.0.0", "numpy==2.4.6",
        "CPython 3.11.7", "CPython 3.11.9", "glibc 2.36", "openblas 0.3.27 x1 (Haswell)", "OMP_NUM_THREADS",
        "predictions.csv", "numeric", "differs", "1 of 2 rows differs", "model.skops", "identical",
        "note: python: image 3.11.7, host 3.11.9 (patch level differs; policy 'minor' allows it)",
        "note: host extras: 1 package(s) on the host are not in the lock (allowed by host_extras='note'): pytest 8.2.0",
    ):
        assert fact in text, fact
    assert report.verdict() in lines  # printed whole, on one line, last
    assert lines[-1] == report.verdict()
    assert report.verdict().startswith("DRIFT: 3 differences: OMP_NUM_THREADS: image 1, host 4; scikit-learn")
    # Executable paths are machine details, not reproducibility facts.
    assert "/usr/local/bin/python" not in text
    assert "/home/runner" not in text


def test_render_reproducible_report_without_host():
    report = Report("iris", IMAGE, LOCK_SHA, {"image": PROBE}, (), ())
    text = export(report)
    assert "not run" in text
    assert "Artifacts: none compared" in text
    assert text.splitlines()[-1] == (
        "REPRODUCIBLE: image mlrepro/iris:3f2a9c1d == lock (host not run) (11 packages, no artifacts compared)"
    )


def test_render_highlights_differing_environment_cells():
    report = build_report([lambda h: h["env"].update(OMP_NUM_THREADS="4")])
    console = Console(record=True, width=120, force_terminal=True, color_system="standard")
    render(report, console)
    styled = console.export_text(styles=True).splitlines()
    omp = [line for line in styled if "OMP_NUM_THREADS" in line and "│" in line]
    machine = [line for line in styled if "machine" in line and "│" in line]
    # Drift cells are bold red; agreeing rows carry no colour.
    assert len(omp) == 1 and "\x1b[1;31m4" in omp[0]
    assert len(machine) == 1 and "\x1b[1;31m" not in machine[0]


# ------------------------------------------------------------ ignored packages


def ignore_report(ignore) -> Report:
    """A project that pins pip itself and ignores two of its own packages instead."""
    lock = {**LOCK, "pip": "24.0"}
    host = copy.deepcopy(PROBE)
    host["packages"]["pkg00"] = "9.9"  # ignored, so this is no difference: it must not show as agreeing either
    differences = compare_packages(lock, PROBE["packages"], host["packages"], ignore=ignore)
    assert differences == []
    return Report("iris", IMAGE, LOCK_SHA, {"image": PROBE, "host": host}, tuple(differences), (), ignored_packages=ignore)


def package_line(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(f"│ {name} ")]
    return line


def test_packages_are_shown_with_the_ignore_set_they_were_compared_with():
    report = ignore_report(("PKG01", "pkg00"))
    text = export(report)
    assert "ignored" in package_line(text, "pkg00") and "9.9" in package_line(text, "pkg00")
    assert "ignored" in package_line(text, "pkg01")
    # pip was compared (and agreed): it is one of the agreeing packages, not "ignored".
    assert not [line for line in text.splitlines() if line.startswith("│ pip ")]
    assert "pip==24.0" in text
    assert "pkg00==" not in text and "pkg01==" not in text
    # 12 packages in the image, 2 of them ignored.
    assert report.package_count() == 10
    assert report.verdict() == "REPRODUCIBLE: image mlrepro/iris:3f2a9c1d == host == lock (10 packages, no artifacts compared)"


def test_ignore_set_is_stored_sorted_and_normalised():
    report = ignore_report(("PKG01", "pkg00"))
    assert report.ignored_packages == ("pkg00", "pkg01")
    assert report.ignores("Pkg01") and not report.ignores("pkg-01")  # PEP 503 spellings, as compare_packages reads them
    text = report.to_json()
    assert json.loads(text)["ignored_packages"] == ["pkg00", "pkg01"]
    again = Report.from_json(text)
    assert again == report
    assert export(again) == export(report)
    assert Report.from_json(ignore_report(frozenset({"pkg01", "Pkg00"})).to_json()) == report


def test_ignore_set_must_be_names():
    with pytest.raises(TypeError, match="not one string"):
        Report("p", IMAGE, LOCK_SHA, {}, (), (), ignored_packages="pip")
    data = json.loads(build_report().to_json())
    data["ignored_packages"] = "pip"
    with pytest.raises(ValueError, match="expected ignored_packages to be a list of package names, found 'pip'"):
        Report.from_json(json.dumps(data))


def test_reports_written_before_the_ignore_set_load_with_the_default():
    report = build_report([downgrade_sklearn])
    assert report.ignored_packages == tuple(sorted(DEFAULT_IGNORED_PACKAGES))
    data = json.loads(report.to_json())
    del data["ignored_packages"]  # as written by earlier versions (same schema)
    old = Report.from_json(json.dumps(data))
    assert old == report
    assert "ignored" in package_line(export(old), "pip")


def test_only_the_renderer_knows_rich():
    package = Path(Report.__module__.replace(".", "/")).parent
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / package).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        tops = {name.split(".")[0] for name in names}
        assert "docker" not in tops, path.name
        assert ("rich" in tops) == (path.name == "render.py"), path.name
