"""Recorded references (issue 16, part 1): the bundle, `mlrepro record`, `verify --against`.

No engine: the bundle is pure; `mlrepro record --side host` runs a tiny
project's real step on this machine; `verify(against=)` runs its image side
through `tests.fakes.FakeEngine`; every refusal is checked on the real command
line (DOCKER_HOST pointing at nothing, so nothing got past the input checks).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.verify
from harness.config import parse_config
from harness.lock import read_lock
from harness.reference import (Reference, ReferenceBundleError, _canonical, decode_reference, encode_reference, from_run,
                               load_reference)
from harness.report import ImageInfo, Report, render
from harness.sides import RunResult, run_on_host
from harness.terminal import SafeConsole
from tests.cli_projects import assert_refused, mlrepro, snapshot
from tests.fakes import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
LOCK_A, LOCK_B = "a" * 64, "b" * 64
IMAGE = ImageInfo(tag="fake/tiny:0123456789abcdef", image_id="sha256:" + "1" * 64, content_hash="2" * 64,
                  base_image="fake/base:1", base_image_id="sha256:" + "3" * 64)

JOB = """
import os, sys
with open(os.path.join(sys.argv[1], "result.txt"), "w") as fh:
    fh.write(os.environ.get("TINY_VALUE", "1") + "\\n")
with open(os.path.join(sys.argv[1], "scratch.log"), "w") as fh:
    fh.write("not an artifact\\n")
"""
CLICK_VERSION = importlib.metadata.version("click")
CLICK_HASH = hashlib.sha256(b"click").hexdigest()


def reference(**changes) -> Reference:
    fields = dict(where="host", lock_sha256=LOCK_A, image_id=None,
                  probe={"python": {"version": "3.11.7"}, "packages": {"numpy": "2.4.6"}, "threads": {"OMP_NUM_THREADS": None}},
                  files={"predictions.csv": b"id,p\n0,0.25\n", "model/manifest.json": b'{"canonical_hash": "x"}', "empty.bin": b""})
    fields.update(changes)
    return Reference(**fields)


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- the bundle (pure)


def test_a_bundle_round_trips_and_is_named_by_its_own_sha256() -> None:
    original = reference(where="image", image_id="sha256:" + "9" * 64)
    data = encode_reference(original)
    decoded = decode_reference(data)
    assert decoded == original
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
    assert encode_reference(decoded) == data  # the same reference, the same bytes
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    document = json.loads(data)
    assert document["format"] == "mlrepro-reference" and document["schema"] == 1
    entry = document["payload"]["artifacts"]["predictions.csv"]
    assert entry == {"sha256": hashlib.sha256(b"id,p\n0,0.25\n").hexdigest(), "size": 12,
                     "base64": base64.b64encode(b"id,p\n0,0.25\n").decode()}


def test_a_reference_is_a_run_for_compare_runs() -> None:
    run = decode_reference(encode_reference(reference())).run_result()
    assert isinstance(run, RunResult)
    assert run.where == "reference (host)" and run.files["predictions.csv"] == b"id,p\n0,0.25\n"
    assert run.probe["packages"] == {"numpy": "2.4.6"} and run.logs == {}


JSON_SCALARS = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=12) \
    | st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
                    max_leaves=12)
REFERENCES = st.builds(
    Reference,
    where=st.sampled_from(["host", "image"]),
    lock_sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    image_id=st.none() | st.text(max_size=80),
    probe=st.dictionaries(st.text(max_size=10), JSON, max_size=5),
    files=st.dictionaries(st.text(min_size=1, max_size=20), st.binary(max_size=200), max_size=4),
)


@given(REFERENCES)
def test_every_reference_round_trips(original: Reference) -> None:
    data = encode_reference(original)
    decoded = decode_reference(data)
    assert decoded == original
    assert encode_reference(decoded) == data


@given(REFERENCES, st.data())
def test_any_changed_byte_is_refused(original: Reference, data: st.DataObject) -> None:
    encoded = bytearray(encode_reference(original))
    position = data.draw(st.integers(0, len(encoded) - 1), label="position")
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[position]), label="byte")
    encoded[position] = replacement
    with pytest.raises(ReferenceBundleError) as exc:
        decode_reference(bytes(encoded), source="ref.json")
    assert one_line(exc).startswith("reference ref.json: expected ")


@given(REFERENCES, st.data())
def test_a_truncated_bundle_is_refused(original: Reference, data: st.DataObject) -> None:
    encoded = encode_reference(original)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(ReferenceBundleError) as exc:
        decode_reference(encoded[:cut], source="ref.json")
    assert "record it again with 'mlrepro record --out FILE'" in one_line(exc)


def _document(ref: Reference) -> dict:
    return json.loads(encode_reference(ref))


def _with_payload(document: dict, payload: dict) -> bytes:
    """A bundle whose checksum was recomputed after `payload` was edited: only the inner checks can catch it."""
    document = {**document, "payload": payload, "payload_sha256": hashlib.sha256(_canonical(payload)).hexdigest()}
    return _canonical(document) + b"\n"


def test_an_edited_payload_is_refused_by_its_checksum() -> None:
    document = _document(reference())
    document["payload"]["where"] = "image"
    with pytest.raises(ReferenceBundleError) as exc:
        decode_reference(_canonical(document) + b"\n", source="ref.json")
    assert f"expected payload checksum sha256 {document['payload_sha256'][:16]}" in one_line(exc)
    assert "(altered)" in one_line(exc)


def test_an_artifact_whose_bytes_do_not_match_its_sha256_is_refused_even_with_a_new_checksum() -> None:
    document = _document(reference())
    payload = document["payload"]
    payload["artifacts"]["predictions.csv"]["base64"] = base64.b64encode(b"id,p\n0,0.75\n").decode()
    with pytest.raises(ReferenceBundleError) as exc:
        decode_reference(_with_payload(document, payload), source="ref.json")
    assert "artifact 'predictions.csv' with sha256" in one_line(exc) and "found other bytes" in one_line(exc)


@pytest.mark.parametrize("data, found", [
    (b"", "unreadable JSON"),
    (b"\xff\xfe", "unreadable JSON"),
    (b"[1, 2]\n", "list"),
    (b'{"format": "something-else"}\n', "something-else"),
    (b'{"format": "mlrepro-reference", "schema": 2}\n', "found 2"),
])
def test_what_is_not_a_bundle_is_named(data: bytes, found: str) -> None:
    with pytest.raises(ReferenceBundleError) as exc:
        decode_reference(data, source="ref.json")
    assert found in one_line(exc)


def test_a_reformatted_bundle_is_refused_because_its_sha256_would_not_name_it() -> None:
    pretty = json.dumps(_document(reference()), indent=2).encode()
    with pytest.raises(ReferenceBundleError) as exc:
        decode_reference(pretty, source="ref.json")
    assert "re-formatted or edited" in one_line(exc)


def test_a_reference_of_another_lock_is_refused_naming_both_locks() -> None:
    ref = decode_reference(encode_reference(reference()))
    ref.require_lock(LOCK_A, source="ref.json")  # its own lock: accepted
    with pytest.raises(ReferenceBundleError) as exc:
        ref.require_lock(LOCK_B, source="ref.json", lock_name="requirements.txt")
    message = one_line(exc)
    assert f"recorded under lock sha256 {LOCK_A[:12]}" in message and f"requirements.txt is sha256 {LOCK_B[:12]}" in message


def test_a_missing_reference_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReferenceBundleError) as exc:
        load_reference(tmp_path / "nowhere.json")
    assert "found none" in one_line(exc) and "nowhere.json" in one_line(exc)


def test_a_reference_keeps_every_configured_artifact_and_only_them() -> None:
    run = RunResult(where="host", probe={"p": 1}, files={"a.txt": b"a", "b.txt": b"b", "scratch": b"s"})
    ref = from_run(run, where="host", lock_sha256=LOCK_A, image_id=None, artifact_paths=("a.txt", "b.txt"))
    assert ref.files == {"a.txt": b"a", "b.txt": b"b"}
    with pytest.raises(Exception) as exc:
        from_run(run, where="host", lock_sha256=LOCK_A, image_id=None, artifact_paths=("a.txt", "c.txt"))
    assert "wrote no c.txt" in one_line(exc)


# ---------------------------------------------------------------- verify(against=) through the fake engine


def fake_project(tmp_path: Path):
    """A tiny project whose only locked package is this environment's click, every other package ignored."""
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "requirements.txt").write_text(f"click=={CLICK_VERSION} \\\n    --hash=sha256:{CLICK_HASH}\n")
    others = sorted({d.metadata["Name"] for d in importlib.metadata.distributions()} - {"click"})
    data = {"project": "tiny", "inputs": ["job.py"],
            "steps": [{"name": "job", "command": ["python", "{inputs}/job.py", "{out}"], "timeout": 60}],
            "artifacts": [{"path": "result.txt"}],
            "run": {"pass_env": []},
            "compare": {"ignore_packages": others}}
    return parse_config(data, tmp_path)


@pytest.fixture
def against_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = fake_project(tmp_path)
    lock = read_lock(config.lock)
    for name in [n for n in os.environ if n.startswith(("OMP_", "OPENBLAS_", "MKL_", "BLIS_", "NUMEXPR_"))]:
        monkeypatch.delenv(name)  # the recorded run and the fake image side must compute under the same (empty) settings
    monkeypatch.setattr(harness.verify, "prepare", lambda config, engine, **kw: (lock, IMAGE))
    run = run_on_host(config, sys.executable, progress=lambda m: None)
    recorded = from_run(run, where="host", lock_sha256=lock.sha256, image_id=None, artifact_paths=("result.txt",))
    return config, decode_reference(encode_reference(recorded))


def test_verify_against_a_reference_of_the_same_run_is_reproducible(against_fake) -> None:
    config, ref = against_fake
    engine = FakeEngine()
    report = harness.verify.verify(config, engine=engine, progress=lambda m: None, against=ref)
    assert report.reproducible, report.verdict()
    assert report.reference_sha256 == ref.sha256
    assert report.verdict().startswith(f"REPRODUCIBLE: image {IMAGE.tag} == reference sha256:{ref.sha256[:12]} == lock")
    assert report.environments["host"] == ref.probe  # the "host" column is the recorded run
    assert len(engine.containers) == 1  # only the image side ran
    assert json.loads(report.to_json())["reference_sha256"] == ref.sha256
    assert Report.from_json(report.to_json()) == report


def test_verify_against_a_reference_with_other_bytes_is_drift_naming_the_artifact(against_fake, tmp_path: Path) -> None:
    config, ref = against_fake
    other = decode_reference(encode_reference(dataclasses.replace(ref, files={"result.txt": b"2\n"})))
    report = harness.verify.verify(config, engine=FakeEngine(), progress=lambda m: None, against=other)
    assert not report.reproducible
    assert [d.subject for d in report.drift] == ["result.txt"]
    assert report.verdict().startswith("DRIFT: 1 difference: result.txt")
    console = SafeConsole(file=open(tmp_path / "render.txt", "w"), width=200, highlight=False)
    render(report, console)
    console.file.close()
    assert f"sha256:{other.sha256}" in (tmp_path / "render.txt").read_text()


def test_verify_against_a_reference_of_another_lock_runs_nothing(against_fake) -> None:
    config, ref = against_fake
    other = decode_reference(encode_reference(dataclasses.replace(ref, lock_sha256=LOCK_B)))
    engine = FakeEngine()
    with pytest.raises(ReferenceBundleError) as exc:
        harness.verify.verify(config, engine=engine, progress=lambda m: None, against=other)
    assert f"recorded under lock sha256 {LOCK_B[:12]}" in one_line(exc)
    assert engine.containers == []


# ---------------------------------------------------------------- the command line (real subprocesses)


PYPROJECT = """\
[tool.mlrepro]
project = "tiny-reference"
inputs = ["data.csv"]

[tool.mlrepro.build]
image_name = "mlrepro-test/tiny-reference"

[[tool.mlrepro.steps]]
name = "job"
command = ["python", "job.py", "{out}"]
timeout = 60

[[tool.mlrepro.artifacts]]
path = "result.txt"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "requirements.txt").write_text(f"click=={CLICK_VERSION} \\\n    --hash=sha256:{CLICK_HASH}\n")
    (root / "data.csv").write_text("x\n1\n")
    (root / "job.py").write_text(JOB)
    return root








def cli(args: list[str], *, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with no engine (tests.cli_projects.mlrepro), this module's run-id prefix."""
    return mlrepro(["harness.cli", *args], cwd=cwd, run_prefix="ref", **env)


def test_record_on_the_host_writes_a_bundle_and_prints_its_sha256(project: Path) -> None:
    proc = cli(["record", "--out", "ref/host.json"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    data = (project / "ref" / "host.json").read_bytes()
    assert proc.stdout == f"sha256:{hashlib.sha256(data).hexdigest()}\n"
    ref = decode_reference(data)
    assert ref.where == "host" and ref.image_id is None
    assert ref.lock_sha256 == read_lock(project / "requirements.txt").sha256
    assert ref.files == {"result.txt": b"1\n"}  # the configured artifact, not the scratch file
    assert ref.probe["packages"]["click"] == CLICK_VERSION
    assert "reference recorded on the host: ref/host.json (1 artifacts" in proc.stderr


def test_verify_against_a_corrupt_bundle_is_one_line_and_writes_nothing(project: Path) -> None:
    assert cli(["record", "--out", "ref.json"], cwd=project).returncode == 0
    data = bytearray((project / "ref.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (project / "ref.json").write_bytes(bytes(data))
    before = snapshot(project)
    proc = cli(["verify", "--against", "ref.json", "--json", "report.json"], cwd=project)
    assert_refused(proc, "reference ref.json: expected ", "record it again with 'mlrepro record --out FILE'")
    assert snapshot(project) == before


def test_verify_against_a_bundle_of_another_lock_is_one_line_and_writes_nothing(project: Path) -> None:
    assert cli(["record", "--out", "ref.json"], cwd=project).returncode == 0
    recorded = read_lock(project / "requirements.txt").sha256
    (project / "requirements.txt").write_text(f"click=={CLICK_VERSION} \\\n    --hash=sha256:{'c' * 64}\n")
    before = snapshot(project)
    proc = cli(["verify", "--against", "ref.json", "--json", "report.json", "--summary-md", "summary.md"], cwd=project)
    assert_refused(proc, "reference ref.json", f"recorded under lock sha256 {recorded[:12]}", "requirements.txt is sha256 ")
    assert snapshot(project) == before


def test_verify_against_a_missing_bundle_is_one_line(project: Path) -> None:
    before = snapshot(project)
    assert_refused(cli(["verify", "--against", "absent.json", "--json", "report.json"], cwd=project), "absent.json", "found none")
    assert snapshot(project) == before


@pytest.mark.parametrize("args, needle", [
    (["--side", "image", "--python", sys.executable], "expected it only with --side host"),
    (["--python", "/nonexistent/python"], "expected an executable interpreter"),
    (["--side", "elsewhere"], "'elsewhere' is not one of 'host', 'image'"),
])
def test_record_refuses_bad_options_and_writes_nothing(project: Path, args: list[str], needle: str) -> None:
    before = snapshot(project)
    assert_refused(cli(["record", *args, "--out", "ref.json"], cwd=project), needle)
    assert snapshot(project) == before


def test_record_refuses_an_out_path_that_is_a_directory_or_under_a_file(project: Path) -> None:
    (project / "adir").mkdir()
    (project / "afile").write_text("x")
    before = snapshot(project)
    assert_refused(cli(["record", "--out", "adir"], cwd=project), "expected a file path, found a directory")
    assert_refused(cli(["record", "--out", "afile/ref.json"], cwd=project), "a file is in the way")
    assert snapshot(project) == before


def test_record_writes_nothing_when_a_step_fails(project: Path) -> None:
    (project / "job.py").write_text("import sys\nprint('broken job')\nsys.exit(3)\n")
    proc = cli(["record", "--out", "ref.json"], cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [
        "error: step 'job' failed on the host (exit 3): broken job"]
    assert not (project / "ref.json").exists()
    assert [p.name for p in project.iterdir() if p.name.startswith(".ref.json")] == []


def test_record_refuses_a_project_without_artifacts(project: Path) -> None:
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.split("[[tool.mlrepro.artifacts]]")[0])
    before = snapshot(project)
    assert_refused(cli(["record", "--out", "ref.json"], cwd=project), "artifacts")
    assert snapshot(project) == before
