"""Bad inputs at every entry point (issue 8): one `error: ` line, exit 2, nothing written.

Each case runs a real command line (`python -m harness.cli ...` or `python -m
ml_project.predict ...`) as a subprocess, on a small valid project that the
case damages in one way. No engine is needed: DOCKER_HOST points at nothing,
so a case that got past the input checks would fail differently (the control
test shows how), and every local input must be refused before the engine is
asked for anything.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from tests.cli_projects import HASH, NO_ENGINE, ROOT, assert_refused, mlrepro, snapshot, tiny_project

run = mlrepro  # this file's name for it


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tiny_project(tmp_path / "project", "bad-inputs")


def edit(path: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        target = root / path
        text = target.read_text()
        assert old in text, (path, old)
        target.write_text(text.replace(old, new, 1))

    return apply


def write(path: str, content: str | bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / path).write_bytes(content if isinstance(content, bytes) else content.encode())

    return apply


def remove(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).unlink()


# (id, damage, needles): `mlrepro verify --config PROJECT --json PROJECT/out/report.json`
CONFIG_CASES = [
    ("broken-toml", write("pyproject.toml", "[tool.mlrepro\nproject = 1\n"), ("pyproject.toml: expected a readable TOML file",)),
    ("unknown-key", edit("pyproject.toml", 'project = "bad-inputs"', 'projetc = "bad-inputs"'), ("projetc: expected a known key",)),
    ("negative-timeout", edit("pyproject.toml", "timeout = 60", "timeout = -3"), ("steps[0].timeout: expected a positive number of seconds, found -3",)),
    ("string-timeout", edit("pyproject.toml", "timeout = 60", 'timeout = "1h"'), ("steps[0].timeout", "'1h'")),
    ("unknown-placeholder", edit("pyproject.toml", '"{out}"]', '"{outdir}"]'), ("steps[0].command: expected placeholders {out}, {inputs} or {python} only",)),
    ("missing-input", edit("pyproject.toml", '["data.csv"]', '["nope.csv"]'), ("inputs[0]: expected an existing file", "nope.csv")),
    ("artifact-escapes", edit("pyproject.toml", 'path = "result.txt"', 'path = "../../etc/passwd"'), ("artifacts[0].path: expected a path relative to the output directory",)),
    ("image-name-with-tag", edit("pyproject.toml", '"mlrepro-test/bad-inputs"', '"Mlrepro/Bad:latest"'), ("build.image_name: expected a lowercase repository name without a tag",)),
    ("mem-limit-number", edit("pyproject.toml", "[tool.mlrepro.build]", '[tool.mlrepro.run]\nmem_limit = 512\n\n[tool.mlrepro.build]'), ("run.mem_limit: expected a size such as '512m' or '2g'",)),
    ("no-steps", edit("pyproject.toml", "[[tool.mlrepro.steps]]", "[[tool.mlrepro.nosteps]]"), ("expected a known key", "nosteps")),
]
# Requirement files: the lock (requirements.txt) the image installs with --require-hashes.
LOCK_CASES = [
    ("lock-missing", remove("requirements.txt"), ("requirements.txt: expected a lock file, found none", "mlrepro lock")),
    ("lock-empty", write("requirements.txt", "# nothing pinned\n"), ("expected pinned requirements, found none",)),
    ("lock-unpinned", write("requirements.txt", f"tiny>=1.0 --hash=sha256:{HASH}\n"), ("requirements.txt:1: expected tiny==<version>", "unpinned")),
    ("lock-no-hashes", write("requirements.txt", "tiny==1.0\n"), ("requirements.txt:1: expected --hash entries for tiny, found none",)),
    ("lock-editable", write("requirements.txt", "-e ./src\n"), ("requirements.txt:1: expected a pinned requirement, found an editable one",)),
    ("lock-url", write("requirements.txt", f"tiny @ https://example.com/tiny-1.0.whl --hash=sha256:{HASH}\n"), ("found a URL/VCS requirement",)),
    ("lock-garbage", write("requirements.txt", "!!! not a requirement\n"), ("requirements.txt:1: expected 'name==version --hash=sha256:...'",)),
    ("lock-not-utf8", write("requirements.txt", b"tiny==1.0 --hash=sha256:\xff\xfe\n"), ("expected a readable UTF-8 lock file",)),
    ("lock-pinned-twice", write("requirements.txt", f"tiny==1.0 --hash=sha256:{HASH}\ntiny==2.0 --hash=sha256:{HASH}\n"), ("tiny is pinned twice",)),
]


@pytest.mark.parametrize(("damage", "needles"), [c[1:] for c in CONFIG_CASES + LOCK_CASES], ids=[c[0] for c in CONFIG_CASES + LOCK_CASES])
@pytest.mark.parametrize("command", ["verify", "build"])
def test_bad_configuration_or_lock_is_refused_before_the_engine(project, tmp_path, damage, needles, command):
    damage(project)
    before = snapshot(tmp_path)
    args = ["harness.cli", command, "--config", str(project)] + (["--json", str(project / "out" / "report.json")] if command == "verify" else [])
    assert_refused(run(args, cwd=tmp_path), *needles)
    assert snapshot(tmp_path) == before
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("mlrepro-bad*"))


def test_malformed_memory_limit_is_a_configuration_error(project, tmp_path):
    edit("pyproject.toml", "[tool.mlrepro.build]", '[tool.mlrepro.run]\nmem_limit = "lots"\n\n[tool.mlrepro.build]')(project)
    assert_refused(run(["harness.cli", "verify", "--config", str(project)], cwd=tmp_path), "run.mem_limit")


def test_missing_configuration_file(tmp_path):
    assert_refused(run(["harness.cli", "verify", "--config", str(tmp_path / "nope" / "pyproject.toml")], cwd=tmp_path),
                   "pyproject.toml: expected an existing file")
    assert list(tmp_path.iterdir()) == []


def test_valid_inputs_get_as_far_as_the_engine(project, tmp_path):
    """The control: with nothing damaged, the first error is the missing engine, so the cases above fail on their input."""
    line = assert_refused(run(["harness.cli", "verify", "--config", str(project)], cwd=tmp_path), "no Docker engine answers at", NO_ENGINE)
    assert "scripts/ensure-docker.sh" in line


@pytest.mark.parametrize(("args", "needles"), [
    (["frobnicate"], ("No such command 'frobnicate'", "--help")),
    (["verify", "--nope"], ("No such option '--nope'", "verify --help")),
    (["verify", "--host-mode", "sideways"], ("Invalid value for '--host-mode'", "'sideways'")),
    (["verify", "--json"], ("Option '--json' requires an argument",)),
    (["clean", "extra"], ("Got unexpected extra argument (extra)",)),
    (["lock", "--check", "--upgrade"], ("--check changes nothing", "drop --upgrade")),
], ids=["unknown-command", "unknown-option", "bad-choice", "missing-value", "extra-argument", "conflicting-options"])
def test_bad_command_line_is_one_line(tmp_path, args, needles):
    assert_refused(run(["harness.cli", *args], cwd=tmp_path), *needles)
    assert list(tmp_path.iterdir()) == []


def test_json_path_that_is_a_directory(project, tmp_path):
    (tmp_path / "report.json").mkdir()
    before = snapshot(tmp_path)
    assert_refused(run(["harness.cli", "verify", "--config", str(project), "--json", str(tmp_path / "report.json")], cwd=tmp_path),
                   "Invalid value for '--json'", "is a directory")
    assert snapshot(tmp_path) == before


def test_json_path_under_a_file(project, tmp_path):
    before = snapshot(tmp_path)
    assert_refused(run(["harness.cli", "verify", "--config", str(project), "--json", str(project / "data.csv" / "report.json")], cwd=tmp_path),
                   "cannot write", "a file is in the way")
    assert snapshot(tmp_path) == before


def test_malformed_run_id_is_refused(project, tmp_path):
    assert_refused(run(["harness.cli", "verify", "--config", str(project)], cwd=tmp_path, MLREPRO_RUN_ID="Not A Run Id"),
                   "MLREPRO_RUN_ID: expected", "'Not A Run Id'")


# --------------------------------------------------------------------- model files given to predict


def _skops_of(obj: object) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(obj))


def _zip_without_schema() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("model.json", json.dumps({"weights": [1, 2, 3]}))
    return buf.getvalue()


MODEL_CASES = [
    ("pickle", lambda: pickle.dumps({"not": "a skops file"}), ("corrupt or truncated",)),
    ("zip-without-schema", _zip_without_schema, ("corrupt or truncated",)),
    ("json", lambda: b'{"model": "RandomForestClassifier"}', ("corrupt or truncated",)),
    ("runs-a-shell-command", lambda: _skops_of(os.system), ("untrusted type(s)", "system", "refusing to load it")),
    ("evaluates-code", lambda: _skops_of(eval), ("untrusted type(s)", "builtins.eval", "refusing to load it")),
]


@pytest.mark.parametrize(("make", "needles"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_bad_model_file_is_refused_by_predict(tmp_path, make, needles):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.skops").write_bytes(make())
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path)
    proc = run(["ml_project.predict", "--model", str(model), "--input", str(ROOT / "examples" / "holdout.csv"), "--out", str(out / "p.csv")],
               cwd=tmp_path)
    assert_refused(proc, *needles)
    assert snapshot(tmp_path) == before


# Signing keys and `mlrepro check` (issue 17): one line, exit 2, before any engine or network -----------------


@pytest.fixture
def open_key(tmp_path) -> Path:
    """A real Ed25519 private key, but readable by everyone (mode 644)."""
    from harness.attest.keys import generate_key

    key = tmp_path / "keys" / "open.pem"
    key.parent.mkdir()
    generate_key(key)
    key.chmod(0o644)
    return key


def test_a_signing_key_readable_by_others_is_refused_without_showing_it(project, tmp_path, open_key):
    secret = open_key.read_text()
    for args in (["verify", "--config", str(project), "--json", str(tmp_path / "r.json"), "--sign-key", str(open_key)],
                 ["release", "--config", str(project), "--registry", "127.0.0.1:9", "--repository", "a/b", "--tag", "1",
                  "--sign-key", str(open_key)]):
        line = assert_refused(run(["harness.cli", *args], cwd=tmp_path), str(open_key), "0644", f"chmod 600 {open_key}")
        assert "PRIVATE KEY" not in line and secret.splitlines()[1] not in line
    assert not (tmp_path / "r.json").exists()


def test_the_signing_key_also_comes_from_the_environment(project, tmp_path, open_key):
    assert_refused(run(["harness.cli", "verify", "--config", str(project), "--json", str(tmp_path / "r.json")], cwd=tmp_path,
                       MLREPRO_SIGN_KEY=str(open_key)), "chmod 600")


@pytest.mark.parametrize(("args", "needles"), [
    (["verify", "--sign-key", "k.pem"], ("--sign-key signs the JSON report: give --json PATH too",)),
    (["check", "myreg.azurecr.io/ml/model:1.4.0", "--key", "k.pub"], ("expected REGISTRY/REPOSITORY@sha256:<64 hex digits>", "a tag can move")),
    (["check", "myreg.azurecr.io/ml/model@sha256:" + "a" * 64, "--key", "missing.pub"], ("missing.pub",)),
    (["check", "127.0.0.1:9/ml/model@sha256:" + "a" * 64], ("Missing option '--key'",)),
], ids=["sign-key-without-json", "check-a-tag", "check-missing-key", "check-no-key"])
def test_bad_signing_and_check_command_lines_are_one_line(tmp_path, args, needles):
    assert_refused(run(["harness.cli", *args], cwd=tmp_path), *needles)
    assert list(tmp_path.iterdir()) == []


def test_check_of_an_unreachable_registry_is_an_error_not_a_failure(tmp_path):
    from harness.attest.keys import generate_key

    generate_key(tmp_path / "k.pem")
    before = snapshot(tmp_path)
    proc = run(["harness.cli", "check", "127.0.0.1:9/ml/model@sha256:" + "a" * 64, "--key", str(tmp_path / "k.pem.pub"),
                "--auth", "anonymous"], cwd=tmp_path)
    lines = proc.stderr.splitlines()  # the progress line saying what is checked, then the error
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert lines[0].startswith("· checking 127.0.0.1:9/ml/model@sha256:") and len(lines) == 2
    assert lines[1].startswith("error: nothing answers at http://127.0.0.1:9") and "FAILED" not in proc.stderr
    assert snapshot(tmp_path) == before
