"""The demo's own logic: venv reuse, path scrubbing, the cross-load result, its rendering and JSON.

`check_model_load` runs real (tiny) host subprocesses with this interpreter;
no Docker, no index.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.compare import ArtifactRule, compare_artifact, compare_packages
from harness.config import parse_config
from harness.demo import DemoResult, LoadCheck, check_model_load, render_demo, scrub
from harness.errors import MlreproError
from harness.report import ImageInfo, Report
from harness.sides import RunResult
from harness.sides.venv import stamp_text, venv_is_current

IMAGE = ImageInfo("demo/p:0123456789abcdef", "sha256:" + "a" * 64, "b" * 64, "base:1", "sha256:" + "c" * 64)
LOCK = {"numpy": "2.4.6", "scikit-learn": "1.9.1", "scipy": "1.17.1", "narwhals": "2.29.0"}
DRIFTED = {"numpy": "1.26.4", "scikit-learn": "1.3.2", "scipy": "1.11.4", "pip": "23.2.1"}


def test_a_venv_is_reused_only_with_the_same_lock_and_interpreter():
    stamp = stamp_text("f" * 64, "/usr/bin/python3.11")
    assert venv_is_current(True, stamp, stamp_text("f" * 64, "/usr/bin/python3.11"))
    assert not venv_is_current(True, stamp, stamp_text("e" * 64, "/usr/bin/python3.11"))  # lock edited
    assert not venv_is_current(True, stamp, stamp_text("f" * 64, "/usr/bin/python3.12"))  # other interpreter
    assert not venv_is_current(False, stamp, stamp)  # interpreter gone
    assert not venv_is_current(True, None, stamp)  # interrupted install: no stamp yet


def test_scrub_replaces_the_longest_path_first():
    text = "error: '/tmp/x/out/model.skops' and '/tmp/x' and /tmp/x/in/holdout.csv"
    assert scrub(text, {"/tmp/x": "{tmp}", "/tmp/x/out": "{out}", "/tmp/x/in": "{inputs}", "": "never"}) == (
        "error: '{out}/model.skops' and '{tmp}' and {inputs}/holdout.csv"
    )


def _load(code, lines=(), artifacts=()):
    return LoadCheck("predict", ("python", "-m", "p.predict", "--model", "{out}"), code, tuple(lines), tuple(artifacts))


def test_a_failed_load_names_its_error_line():
    check = _load(2, ["warning: something older", "error: model cannot predict here (AttributeError: 'multi_class')"])
    assert check.outcome == "failed"
    assert check.error == "error: model cannot predict here (AttributeError: 'multi_class')"
    assert check.warnings == ("warning: something older",)
    assert check.summary() == "step 'predict' failed (exit 2): error: model cannot predict here (AttributeError: 'multi_class')"


def test_a_traceback_without_error_line_shows_its_last_line():
    check = _load(1, ["Traceback (most recent call last):", "  File ...", "AttributeError: no attribute 'multi_class'"])
    assert check.error == "AttributeError: no attribute 'multi_class'"
    assert _load(None).outcome == "timed out"
    assert _load(3).error is None and "no output" in _load(3).summary()


def test_a_successful_load_is_judged_by_its_outputs():
    rule = ArtifactRule("predictions.csv", "numeric")
    same = compare_artifact(rule, b"id,p\n1,0.5\n", b"id,p\n1,0.5\n")
    other = compare_artifact(rule, b"id,p\n1,0.5\n", b"id,p\n1,0.25\n")
    assert _load(0, ["UserWarning: InconsistentVersionWarning ..."], [same]).outcome == "outputs identical"
    changed = _load(0, ["UserWarning: InconsistentVersionWarning ..."], [other])
    assert changed.outcome == "outputs differ"
    assert changed.error is None
    assert "with 1 warning line(s)" in changed.summary() and "1 of 1 row differs" in changed.summary()
    assert _load(0).outcome == "ran"


def _result(load: LoadCheck) -> DemoResult:
    image = {"python": {"version": "3.11.2"}, "packages": dict(LOCK)}
    host = {"python": {"version": "3.11.2"}, "packages": dict(DRIFTED)}
    diffs = compare_packages(LOCK, image["packages"], host["packages"])
    rule = ArtifactRule("predictions.csv", "numeric")
    artifacts = (compare_artifact(rule, b"id,p\n1,0.5\n", b"id,p\n1,0.25\n"),)
    report = Report("demo", IMAGE, "d" * 64, {"image": image, "host": host}, tuple(diffs), artifacts)
    return DemoResult("examples/drift/requirements.txt", "e" * 64, report, load)


def test_version_changes_come_from_the_report():
    result = _result(_load(2, ["error: boom"]))
    assert result.version_changes() == [
        ("narwhals", "2.29.0", "absent"), ("numpy", "2.4.6", "1.26.4"),
        ("scikit-learn", "1.9.1", "1.3.2"), ("scipy", "1.17.1", "1.11.4"),
    ]


def test_json_is_stable_and_carries_the_measured_outcome():
    result = _result(_load(2, ["error: boom"]))
    text = result.to_json()
    assert text == _result(_load(2, ["error: boom"])).to_json()
    data = json.loads(text)
    assert data["load_check"]["outcome"] == "failed" and data["load_check"]["error"] == "error: boom"
    assert data["report"]["reproducible"] is False
    assert {"package": "scipy", "image": "1.17.1", "drifted": "1.11.4"} in data["version_changes"]


def test_rendering_shows_versions_outputs_and_the_cross_load():
    console = Console(record=True, width=200)
    render_demo(_result(_load(2, ["error: boom"])), console)
    text = console.export_text()
    assert "scikit-learn 1.9.1 -> 1.3.2" in text
    assert "predictions.csv: differs" in text
    assert "failed (exit 2): error: boom" in text


# check_model_load: real subprocesses with this interpreter ---------------------------

PREDICT = (
    "import sys, pathlib; d = pathlib.Path(sys.argv[1]); m = (d / 'model.txt').read_text().strip(); "
    "sys.stderr.write('warning: model from ' + str(d) + chr(10)); "
    "m == 'broken' and sys.exit('error: cannot load ' + str(d / 'model.txt')); "
    "(d / 'pred.csv').write_text('id,p' + chr(10) + '1,' + m + chr(10))"
)


def _config(tmp_path: Path):
    (tmp_path / "rows.csv").write_text("id\n1\n")
    return parse_config({
        "inputs": ["rows.csv"],
        "steps": [{"name": "train", "command": ["python", "-c", "pass"]},
                  {"name": "predict", "command": ["python", "-c", PREDICT, "{out}"]}],
        "artifacts": [{"path": "pred.csv", "compare": "numeric"}, {"path": "model.txt", "compare": "bitwise"}],
    }, tmp_path)


def _image_run(model: str, prediction: str) -> RunResult:
    return RunResult("image", {}, {"model.txt": model.encode(), "pred.csv": f"id,p\n1,{prediction}\n".encode()})


def test_cross_load_compares_only_what_the_step_rewrote(tmp_path):
    config = _config(tmp_path)
    same = check_model_load(config, _image_run("0.5", "0.5"), sys.executable)
    assert same.exit_code == 0 and same.outcome == "outputs identical"
    assert [a.path for a in same.artifacts] == ["pred.csv"]  # model.txt was an input, not an output
    assert same.lines == ("warning: model from {out}",)  # the temp path never leaks
    other = check_model_load(config, _image_run("0.5", "0.75"), sys.executable)
    assert other.outcome == "outputs differ" and "1 of 1 row differs" in other.artifacts[0].summary


def test_cross_load_failure_keeps_the_error_line(tmp_path):
    check = check_model_load(_config(tmp_path), _image_run("broken", "0.5"), sys.executable)
    assert check.exit_code == 1 and check.outcome == "failed"
    assert check.error == "error: cannot load {out}/model.txt"
    assert check.artifacts == ()


def test_cross_load_names_a_missing_step(tmp_path):
    with pytest.raises(MlreproError, match="no step named 'score'.*found: train, predict"):
        check_model_load(_config(tmp_path), _image_run("0.5", "0.5"), sys.executable, step_name="score")
