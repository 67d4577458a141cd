"""The HTML report (issue 20): what the page shows, that it is the same bytes every time, that nothing can break out.

Pure: Reports built from plain data and the real comparison functions, pages
read as text. No engine and no browser (tests/browser.py and the integration
tests open real pages in Chromium). The command-line cases run `python -m
harness.cli` as a subprocess with DOCKER_HOST pointing at nothing, like
tests/unit/test_bad_inputs.py: a bad `--html` path must be refused before
anything else is asked for.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_projects import assert_refused, snapshot, tiny_project
from tests.optional import optional_python
from tests.cli_projects import mlrepro as run_cli

from harness.compare import ArtifactRule, compare_artifact, compare_environments, compare_packages
from harness.compare.evidence import DECADE_MIN, SAMPLE_SIZE, WORST_ROWS, TableEvidence
from harness.report import Aside, ImageInfo, Report, render_html
from harness.report.html import LOG_TAIL_LINES, WORST_ROWS_SHOWN, stable_log
from harness.report.model import SideConsistency
from harness.report.plots import backend

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/mlrepro-html.sock"
ROWS = 114
HOSTILE = "<script>alert(1)</script>"

IMAGE = ImageInfo(
    tag="mlrepro/iris:3f2a9c1d",
    image_id="sha256:" + "9b" * 32,
    content_hash="sha256:" + "c0" * 32,
    base_image="python:3.11.7-slim-bookworm",
    base_image_id="sha256:" + "5a" * 32,
)
LOCK = {"numpy": "2.4.6", "scikit-learn": "1.9.1", "scipy": "1.17.0"}
PROBE = {
    "schema": 1,
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36"},
    "packages": {**LOCK, "pip": "24.0"},
    "env": {"OMP_NUM_THREADS": "1"},
}


def predictions(shift: float, flipped: frozenset[int] = frozenset()) -> bytes:
    """The demo's shape: an id, a probability that moves by `shift` times a row-dependent amount, a label."""
    lines = ["id,proba_1,label"]
    for row in range(ROWS):
        p = 0.05 + 0.9 * row / ROWS + shift * (1 + row % 7)
        label = int(p > 0.5) ^ (row in flipped)
        lines.append(f"{row},{p:.17g},{label}")
    return ("\n".join(lines) + "\n").encode()


def make_report(*, drift: bool, host_packages: dict[str, str] | None = None, artifact_path: str = "predictions.csv") -> Report:
    host = copy.deepcopy(PROBE)
    if drift:
        host["packages"]["scikit-learn"] = "1.3.2"
        host["python"]["version"] = "3.11.9"  # a patch difference: a note under the default policy
    host["packages"].update(host_packages or {})
    differences = compare_packages(LOCK, PROBE["packages"], host["packages"]) + compare_environments(PROBE, host)
    moved = predictions(3e-7, frozenset({3, 60})) if drift else predictions(0.0)
    artifacts = (
        compare_artifact(ArtifactRule(artifact_path, "numeric"), predictions(0.0), moved),
        compare_artifact(ArtifactRule("metrics.json", "json"), b'{"accuracy": 0.93}', b'{"accuracy": 0.91}' if drift else b'{"accuracy": 0.93}'),
        compare_artifact(ArtifactRule("model.skops"), b"model", b"model"),
    )
    return Report("iris", IMAGE, "d" * 64, {"image": PROBE, "host": host}, tuple(differences), artifacts)


@pytest.fixture(scope="module")
def drifted() -> Report:
    return make_report(drift=True)


@pytest.fixture(scope="module")
def reproducible() -> Report:
    return make_report(drift=False)


def section(page: str, ident: str) -> str:
    start = page.index(f'<section id="{ident}">')
    return page[start:page.index("</section>", start)]


# ------------------------------------------------------------------ the evidence the page is drawn from


def test_evidence_is_bounded_and_the_same_for_the_same_tables():
    def collect() -> dict:
        seen = TableEvidence({0: "proba_1", 1: "label"})
        for row in range(5000):
            a = row / 5000
            b = a + (row % 13) * 1e-9
            seen.cell(row, 0, a, b)
            seen.cell(row, 1, 0, 1 if row == 7 else 0)  # a label's 0/1 is a decision, not a measured difference
            differing = {"proba_1": {"image": a, "host": b}} if a != b else {}
            if row == 7:
                differing["label"] = {"image": "0", "host": "1"}
            seen.end_row(row, differing)
        return seen.details()["evidence"]

    evidence = collect()
    assert evidence == collect()  # the sample is seeded
    moved = sum(1 for row in range(5000) if row / 5000 != row / 5000 + (row % 13) * 1e-9)
    assert sum(evidence["abs_diff_decades"]["counts"]) == evidence["sample"]["of"] == moved
    assert len(evidence["sample"]["pairs"]) == SAMPLE_SIZE < moved
    assert len(evidence["worst_rows"]) == WORST_ROWS
    diffs = [w["max_abs_diff"] for w in evidence["worst_rows"]]
    assert diffs == sorted(diffs, reverse=True) and diffs[0] == pytest.approx(12e-9, rel=1e-3)
    assert evidence["direction"] == {"host_higher": moved, "host_lower": 0}
    assert evidence["labels"] == {"label": {"rows_changed": 1, "changes": {"0 -> 1": 1}}}
    counts = evidence["abs_diff_decades"]["counts"]
    used = {DECADE_MIN + i for i, c in enumerate(counts) if c}
    assert max(used) == -8 and min(used) >= -10  # 1e-9 .. 1.2e-8, and a float sum can land just under 1e-9


def test_a_probability_crossing_the_threshold_is_a_flipped_decision():
    seen = TableEvidence({"p": "proba_1"})
    for row, (a, b) in enumerate([(0.49, 0.51), (0.5, 0.5000001), (0.5, 0.4999), (0.2, 0.3), (0.51, 0.49)]):
        seen.cell(row, "p", a, b)
        seen.end_row(row, {"proba_1": {"image": a, "host": b}})
    # Above 0.5 is the positive class (predict's rule): 0.5 -> 0.4999 stays negative.
    assert seen.details()["evidence"]["threshold"]["crossings"] == {"proba_1": 3}


# ------------------------------------------------------------------ the same bytes


def test_the_same_report_renders_to_the_same_bytes(drifted, reproducible):
    for report in (drifted, reproducible):
        page = render_html(report)
        assert render_html(report) == page
        # A function of the stored record: equal JSON reports (two verifications of one tree) give equal pages.
        assert render_html(Report.from_json(report.to_json())) == page


def test_nothing_run_specific_or_external_is_on_the_page(drifted):
    page = render_html(drifted, logs={"image": {"train": "ok\n"}, "host": {"train": "ok\n"}})
    assert not re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d", page), "a date or time on the page"
    assert "/tmp/" not in page and str(ROOT) not in page and os.path.expanduser("~") + "/" not in page
    lowered = page.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "<object", "@import", "url(http", "@font-face", " src="):
        assert needle not in lowered, needle
    # Every link is a fragment of this page.
    assert re.findall(r'href="(?!#)', page) == []
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


FALLBACK = """
import sys
sys.modules["matplotlib"] = None  # `import matplotlib` now raises ImportError, as where it is not installed
from harness.report import Report, render_html
from harness.report.plots import backend
report = Report.from_json(sys.stdin.read())
first, second = render_html(report), render_html(report)
assert first == second
sys.stdout.write(backend() + "\\n" + first)
"""


def test_without_matplotlib_the_inline_plots_are_used_and_stable(drifted):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    runs = [subprocess.run([sys.executable, "-c", FALLBACK], input=drifted.to_json(), capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    used, page = runs[0].stdout.split("\n", 1)
    assert used == "inline"
    assert runs[1].stdout == runs[0].stdout  # another process, the same bytes
    assert page.count('<figure class="histogram"><svg xmlns="http://www.w3.org/2000/svg" class="plot"') == 1
    assert "matplotlib" not in page


WITH_MATPLOTLIB = """
import sys
from harness.report import Report, render_html
from harness.report.plots import backend
report = Report.from_json(sys.stdin.read())
first, second = render_html(report), render_html(report)
sys.stdout.write(backend() + "\\n" + str(first == second) + "\\n" + first)
"""


def test_matplotlib_plots_are_stable_and_their_ids_do_not_clash(drifted):
    # In an interpreter with matplotlib (never a harness dependency, so not necessarily this one).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([optional_python("matplotlib"), "-c", WITH_MATPLOTLIB], input=drifted.to_json(), capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    used, stable, page = done.stdout.split("\n", 2)
    assert (used, stable) == ("matplotlib", "True")
    assert "<dc:date>" not in page and "<?xml" not in page and "<!DOCTYPE svg" not in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two elements share an id"
    # Every reference points at an element of this page.
    for target in re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', page):
        assert (target[0] or target[1]) in ids, target
    assert page.count('<figure class="histogram"><svg class="plot" role="img"') == 1
    assert "1e-7" in page  # plain tick labels: mathtext would set the exponent in small type


# ------------------------------------------------------------------ what the page shows


def test_drifted_page_shows_verdict_summary_packages_plots_and_worst_rows(drifted):
    page = render_html(drifted)
    header = page[page.index('<header id="verdict"'):page.index("</header>")]
    assert 'class="verdict fail"' in header and '<p class="status">✗ DRIFT</p>' in header
    assert f'<p class="summary" id="summary">{drifted.verdict()}</p>' in header
    for fact in (IMAGE.tag, IMAGE.image_id, IMAGE.content_hash, "d" * 64, f"{IMAGE.base_image} ({IMAGE.base_image_id})"):
        assert f"<dd>{fact}</dd>" in header, fact
    assert page.index('id="verdict"') < page.index('id="packages"') < page.index('id="environment"') < page.index('id="artifacts"')

    packages = section(page, "packages")
    assert "1 of 3 packages differ, 1 ignored. Differences first" in packages
    body_rows = re.findall(r"<tr class=\"([^\"]*)\"><td>([^<]+)</td>", packages)
    # The difference first, then the agreeing locked packages, the ignored last.
    assert body_rows == [("drift", "scikit-learn"), ("", "numpy"), ("", "scipy"), ("", "pip")]
    assert "✗ drift: host version differs from lock" in packages and "– ignored (compare.ignore_packages)" in packages

    environment = section(page, "environment")
    assert "! note</span>: python: image 3.11.7, host 3.11.9" in environment
    first_row = re.search(r"<tbody><tr class=\"([^\"]*)\"><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", environment)
    assert first_row.groups() == ("differs", "python.version", "3.11.7", "3.11.9", "≠ differs")

    artifacts = section(page, "artifacts")
    article = artifacts[artifacts.index('<article class="artifact" id="artifact-1">'):artifacts.index("</article>")]
    assert f"predictions.csv: {ROWS} of {ROWS} rows differ" in article and "✗ differs" in article
    # Rows 3 and 60 flipped by hand, row 57 because its probability moved from 0.5 to above it.
    assert "✗ label column &#x27;label&#x27;: 3 rows changed (0 -&gt; 1: 2, 1 -&gt; 0: 1)" in article
    assert "✗ &#x27;proba_1&#x27; crossed 0.5 in 1 row (a thresholded decision flips)" in article
    assert '<figure class="histogram"><svg' in article and '<figure class="scatter"><svg' in article
    evidence = drifted.artifacts[0].details["evidence"]
    assert f"{sum(evidence['abs_diff_decades']['counts'])} values differ" in article
    worst = article[article.index('<table class="worst-rows">'):]
    worst = worst[:worst.index("</table>")]
    assert worst.count("<tr") == 1 + WORST_ROWS_SHOWN  # the header and the rows
    first = evidence["worst_rows"][0]
    assert re.search(rf'<tbody><tr class=""><td><span class="num">{first["row"]}</span></td><td>proba_1</td>', worst)
    assert 'href="#artifact-1"' in artifacts and "metrics.json" in artifacts and "✓ identical" in artifacts

    notes = section(page, "notes")
    assert "! note</span> (python): python: image 3.11.7, host 3.11.9" in notes


def test_reproducible_page_says_so_and_plots_nothing(reproducible):
    page = render_html(reproducible)
    header = page[page.index('<header id="verdict"'):page.index("</header>")]
    assert 'class="verdict ok"' in header and '<p class="status">✓ REPRODUCIBLE</p>' in header
    assert reproducible.verdict() in header
    assert "No package differs (3 compared), 1 ignored." in section(page, "packages")
    assert "<figure" not in page and "<svg" not in page and "worst-rows" not in page
    assert page.count("No value differs between the image and the host: nothing to plot.") == len(reproducible.artifacts)
    assert "No notes." in section(page, "notes")


def test_repeated_runs_and_a_reference_are_shown(reproducible):
    moved = make_report(drift=True).artifacts[0]
    report = Report(reproducible.project, reproducible.image, reproducible.lock_sha256, reproducible.environments,
                    reproducible.differences, reproducible.artifacts, reference_sha256="e" * 64,
                    consistency=(SideConsistency("host", 3, (moved,), ("threads: OMP_NUM_THREADS unset",)),))
    page = render_html(report)
    assert '<p class="status">✗ NON-DETERMINISTIC</p>' in page
    repeated = section(page, "consistency")
    assert "✗</span> 3 runs of the host side disagree" in repeated and "threads: OMP_NUM_THREADS unset" in repeated
    assert "<dd>sha256:" + "e" * 64 + " (the host columns are this recorded run)</dd>" in page


def test_every_status_is_said_in_words_and_symbols_not_colour_alone(drifted):
    page = render_html(drifted)
    for coloured in re.findall(r'<span class="(?:good|bad|warn)">([^<]*)</span>', page):
        assert coloured.strip()[:1] in "✓✗!≈", coloured
    for row in re.findall(r'<tr class="(?:drift|note|differs)">(.*?)</tr>', page):
        assert re.search(r"[✓✗!≠–]|differs|label", row), row


def test_text_is_never_under_12px_and_sections_print_on_their_own_pages(drifted):
    page = render_html(drifted)
    style = page[page.index("<style>"):page.index("</style>")]
    sizes = [int(s) for s in re.findall(r"font-size:\s*(\d+)px", style)]
    assert sizes and min(sizes) >= 12
    assert "pt;" not in style and "em;" not in style.replace("1em", "")  # sizes are in px, so the check above holds
    if backend() == "inline":
        assert {int(s) for s in re.findall(r'font-size="(\d+)"', page)} == {13}
    printed = style[style.index("@media print"):]
    assert "break-before: page" in printed and "break-inside: avoid" in printed


def test_logs_are_tailed_collapsed_and_free_of_run_paths(drifted):
    tmp = "/tmp/mlrepro-1a2b3c4d5e6f-4242-host-k9_x2abc/out"
    lines = [f"line {i}" for i in range(100)] + [f"saved {tmp}/model.skops"]
    page = render_html(drifted, logs={"image": {"train": "\n".join(lines)}, "host": {"train": "done\n", "predict": ""}})
    logs = section(page, "logs")
    assert "<details><summary>step train" in logs and "<details><summary>step predict" in logs
    assert "saved {tmp}/out/model.skops" in logs and "mlrepro-1a2b3c4d5e6f" not in logs
    assert f"line {100 - LOG_TAIL_LINES + 1}" in logs and f"line {100 - LOG_TAIL_LINES}\n" not in logs
    assert "(step not run here)" in logs and "(no output)" in logs
    assert stable_log(f"cd {tmp} && ls") == "cd {tmp}/out && ls"


def test_hostile_strings_are_escaped_everywhere(reproducible):
    report = make_report(drift=True, host_packages={HOSTILE: "1.0"}, artifact_path=f"{HOSTILE}.csv")
    assert any(HOSTILE in d.message for d in report.differences)
    page = render_html(report, logs={"image": {HOSTILE: f"{HOSTILE}\n</body></html>"}}, title=HOSTILE, context=HOSTILE,
                       asides=(Aside(HOSTILE, (HOSTILE, "</pre><b>bold</b>")),))
    assert "<script" not in page.lower() and "<b>" not in page
    assert page.count("</body>") == 1 and page.count("</pre>") == page.count("<pre>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8  # package, note, artifact, plots, log, aside, title


# ------------------------------------------------------------------ the command line


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tiny_project(tmp_path / "project", "html-inputs")


def mlrepro(args: list[str], *, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args if code else ["harness.cli", *args], cwd=cwd, code=code, run_prefix="html")


def unwritable_directory(tmp_path: Path) -> Path:
    """A directory this user cannot write to: a read-only one, or for root (who may write anywhere) /proc/self."""
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o555)
        return locked
    assert not os.access("/proc/self", os.W_OK)
    return Path("/proc/self")


@pytest.mark.parametrize("command", ["verify", "demo"])
@pytest.mark.parametrize("case", ["directory", "under-a-file", "unwritable"])
def test_bad_html_path_is_one_line_before_the_run(project, tmp_path, command, case):
    if case == "directory":
        target, needles = tmp_path / "report.html", ("Invalid value for '--html'", "is a directory")
        target.mkdir()
    elif case == "under-a-file":
        target, needles = project / "data.csv" / "report.html", ("cannot write", "a file is in the way")
    else:
        directory = unwritable_directory(tmp_path)
        target, needles = directory / "report.html", ("cannot write", f"{directory} is not writable")
    before = snapshot(tmp_path)
    line = assert_refused(mlrepro([command, "--config", str(project), "--html", str(target)], cwd=tmp_path), *needles)
    assert "Docker engine" not in line  # refused before the engine was asked for anything
    assert snapshot(tmp_path) == before  # nothing written, not even a temp file


# `mlrepro verify` with the library's verify() replaced by one that returns a drifted report: the CLI's own work only.
STUBBED_VERIFY = """
import sys
from pathlib import Path
import harness.verify
from harness.report import Report
report = Report.from_json(Path(sys.argv[1]).read_text())
harness.verify.verify = lambda config, **kwargs: report
from harness.cli import main
main(sys.argv[2:], prog_name="mlrepro")
"""


def test_html_is_written_when_the_verdict_is_drift(project, tmp_path, drifted):
    stored = tmp_path / "stored.json"
    stored.write_text(drifted.to_json())
    page, data = tmp_path / "pages" / "report.html", tmp_path / "report.json"
    proc = mlrepro([str(stored), "verify", "--config", str(project), "--html", str(page), "--json", str(data)],
                   cwd=tmp_path, code=STUBBED_VERIFY)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("DRIFT")
    assert f"HTML report written to {page}" in proc.stderr
    assert page.read_text(encoding="utf-8") == render_html(Report.from_json(data.read_text()))
    assert sorted(p.name for p in page.parent.iterdir()) == ["report.html"]  # no temp file beside it
