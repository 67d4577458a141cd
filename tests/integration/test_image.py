"""The image of issue 2, checked on a real engine: base, user, contents, hermetic build, network.

Everything here runs against the real image of this repository (built once per
content hash) or real builds of a copy of its context.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from harness.image.base import resolve_base
from harness.docker.engine import Engine
from harness.errors import BuildError
from harness.sides import run_in_image

ROOT = Path(__file__).resolve().parents[2]


def sh(box, script: str):
    return box.exec(["sh", "-c", script], timeout=60)


def test_image_records_base_lock_and_provenance(engine, prepared, repo_config):
    lock, image = prepared
    labels = engine.image_attrs(image.tag)["Config"]["Labels"]
    base, base_id = resolve_base(engine, repo_config.build)
    assert (image.base_image, image.base_image_id) == (base, base_id)
    assert labels["io.mlrepro.base-image-id"] == base_id
    assert labels["io.mlrepro.lock-sha256"] == hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    assert labels["io.mlrepro.content-hash"] == image.content_hash
    # The tests run in a git clone (CI clones main): a commit of this history is recorded (the one
    # that first built this content; an image is reused by content hash) with that commit's time,
    # not the wall clock, so that a rebuild of the same commit labels the same.
    revision = labels["org.opencontainers.image.revision"]
    git = lambda *args: subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()
    assert git("merge-base", "--is-ancestor", revision, "HEAD") == ""  # check=True: fails unless an ancestor
    assert labels["org.opencontainers.image.created"] == git("log", "-1", "--format=%cI", revision)


def test_image_runs_as_non_root_without_network(engine: Engine, prepared):
    _, image = prepared
    assert engine.image_attrs(image.tag)["Config"]["User"] == "10001:10001"
    with engine.container(image.tag, role="test") as box:
        assert sh(box, "id -u").output.strip() == "10001"
        assert box.raw.attrs["HostConfig"]["NetworkMode"] == "none"
        probe = box.exec(["python", "-c", "import socket; socket.create_connection(('192.0.2.1', 443), timeout=3)"], timeout=30)
        assert probe.exit_code != 0
        assert "Network is unreachable" in probe.output or "OSError" in probe.output


def test_final_image_holds_no_wheelhouse_pip_cache_or_compiler(engine, prepared):
    _, image = prepared
    locked_wheels = {p.name for p in (ROOT / "wheelhouse").glob("*.whl")}
    assert locked_wheels
    with engine.container(image.tag, role="test") as box:
        wheels = sh(box, "find / -xdev -name '*.whl' 2>/dev/null | xargs -n1 basename 2>/dev/null; true").output.split()
        assert not locked_wheels & set(wheels)  # the base's own ensurepip wheels may remain; ours may not
        leftovers = sh(box, "find / -xdev \\( -path '*/.cache/pip' -o -path '/build' \\) 2>/dev/null; "
                            "ls /opt/venv/bin/pip* 2>/dev/null; command -v gcc cc c++ 2>/dev/null; true")
        assert leftovers.output.strip() == ""
        # The venv is complete without pip: the project imports.
        assert box.exec(["python", "-c", "import sklearn, skops, ml_project"], timeout=60).exit_code == 0


def test_train_and_predict_run_inside_the_container(engine, prepared, repo_config):
    _, image = prepared
    run = run_in_image(engine, repo_config, image.tag, progress=lambda m: None)
    assert {"model.skops", "metrics.json", "manifest.json", "predictions.csv"} <= set(run.files)
    rows = run.files["predictions.csv"].decode().splitlines()
    assert rows[0].startswith("label,proba_") and len(rows) == 1 + 114
    assert run.probe["packages"]["scikit-learn"] == "1.9.1"
    # (nothing left behind is asserted once for the whole session, in tests/conftest.py)


BAD_INPUTS = {
    "missing-column.csv": lambda header, row: (",".join(header[1:]), ",".join(row[1:])),
    "renamed-column.csv": lambda header, row: (",".join(["renamed"] + header[1:]), ",".join(row)),
    "non-numeric.csv": lambda header, row: (",".join(header), ",".join(["abc"] + row[1:])),
    "nan.csv": lambda header, row: (",".join(header), ",".join(["nan"] + row[1:])),
    "empty.csv": None,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_predict_rejects_malformed_input_inside_the_container(engine, prepared, name):
    _, image = prepared
    header, row = (ROOT / "examples" / "holdout.csv").read_text().splitlines()[:2]
    make = BAD_INPUTS[name]
    content = b"" if make is None else ("\n".join(make(header.split(","), row.split(","))) + "\n").encode()
    with engine.container(image.tag, role="test") as box:
        train = box.exec(["python", "-m", "ml_project.train", "--out", "/tmp/w/model"], timeout=300)
        assert train.exit_code == 0, train.output
        box.put_files("/tmp/w", {f"in/{name}": content}, dirs=("out",))
        result = box.exec(["python", "-m", "ml_project.predict", "--model", "/tmp/w/model", "--input", f"/tmp/w/in/{name}", "--out", "/tmp/w/out/p.csv"], timeout=120)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "Traceback" not in result.output
        assert box.get_dir("/tmp/w/out") == {}


@pytest.fixture
def context_copy(tmp_path, prepared):
    """A copy of the build context (what .dockerignore lets through) that a test may damage."""
    for rel in ("Dockerfile", ".dockerignore", "requirements.txt"):
        shutil.copy2(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / "ml_project", tmp_path / "ml_project", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "wheelhouse", tmp_path / "wheelhouse")
    return tmp_path


@pytest.mark.parametrize("damage", ["tampered", "missing"])
def test_wheel_not_matching_the_lock_fails_the_build_clearly(engine, prepared, context_copy, damage):
    _, image = prepared
    wheel = next((context_copy / "wheelhouse").glob("threadpoolctl-*.whl"))
    if damage == "tampered":
        wheel.write_bytes(wheel.read_bytes() + b"\0")
    else:
        wheel.unlink()
    before = {c.id for c in engine.client.containers.list(all=True)}
    with pytest.raises(BuildError) as info:
        engine.build(context=context_copy, dockerfile=context_copy / "Dockerfile", tag="mlrepro-test/tampered:latest",
                     buildargs={"BASE_IMAGE": image.base_image}, labels={}, timeout=600)
    message = str(info.value)
    assert "does not match the hashes" in message and "mlrepro wheelhouse" in message
    assert "\n" not in message
    evidence = info.value.evidence
    assert ("DO NOT MATCH THE HASHES" in evidence) if damage == "tampered" else ("No matching distribution" in evidence or "Could not find" in evidence)
    assert {c.id for c in engine.client.containers.list(all=True)} == before  # forcerm: no intermediate containers left
    assert engine.image_id("mlrepro-test/tampered:latest") is None


def test_a_tag_that_names_an_image_of_other_content_is_not_reused(engine, prepared, repo_config):
    """Issue 13: the tag holds 16 hex digits of the content hash, the label all of it; an image tagged by hand
    (here the base image, under the tag this tree's image would have) is rebuilt, never verified in its place."""
    import dataclasses

    from harness.image.build import ensure_image
    from harness.ownership import LABEL_CONTENT_HASH

    lock, image = prepared
    config = dataclasses.replace(repo_config, build=dataclasses.replace(repo_config.build, image_name="mlrepro-test/hijacked"))
    tag = f"mlrepro-test/hijacked:{image.content_hash[:16]}"
    engine.tag(image.base_image_id, tag)
    messages: list[str] = []
    try:
        rebuilt = ensure_image(engine, config, lock, progress=messages.append)
        assert rebuilt.tag == tag and rebuilt.image_id != image.base_image_id and engine.image_id(tag) == rebuilt.image_id
        labels = engine.image_attrs(rebuilt.image_id)["Config"]["Labels"]
        assert labels[LABEL_CONTENT_HASH] == image.content_hash
        assert any(m.startswith(f"image {tag} exists but it has no {LABEL_CONTENT_HASH} label") for m in messages), messages
        again: list[str] = []
        assert ensure_image(engine, config, lock, progress=again.append).image_id == rebuilt.image_id
        assert any("is up to date" in m for m in again)  # the genuine one is reused
    finally:
        engine.untag(tag)


def _tiny_project(root: Path, base: str) -> Path:
    root.mkdir()
    (root / "Dockerfile").write_text(f"FROM {base}\nCOPY data.txt /data.txt\nRUN sleep 2 && cat /data.txt > /copy.txt\n")
    (root / "data.txt").write_text(f"first {uuid.uuid4().hex}\n")  # content of its own: nothing to reuse from another run
    (root / "requirements.txt").write_text("")
    (root / "pyproject.toml").write_text('[tool.mlrepro]\nproject = "tiny-build"\n[tool.mlrepro.build]\nimage_name = "mlrepro-test/tiny-build"\n'
                                         f'base_image = "{base}"\nfallback_base_image = "{base}"\n')
    return root


def test_a_file_changed_during_the_build_keeps_no_image_and_no_cache_keeps_the_tag(engine, prepared, tmp_path):
    """Issue 13: the hash is taken before the build, the files are read during it; a file written in between
    must not leave an image tagged with the old hash. And `--no-cache` never moves a tag a report may name."""
    from harness.config import load_config
    from harness.image.build import ensure_image
    from harness.lock import Lock

    _, image = prepared
    config = load_config(_tiny_project(tmp_path / "p", image.base_image) / "pyproject.toml")
    lock = Lock(str(config.lock), "0" * 64, {})
    made: list[str] = []
    try:
        def write_during_the_build(message: str) -> None:
            if message.strip().startswith("Step 3/"):  # the context is sent; the RUN step is under way (labels add steps)
                (config.root / "data.txt").write_text("second\n")

        with pytest.raises(BuildError, match=r"the build context changed while mlrepro-test/tiny-build:\w{16} was built"):
            ensure_image(engine, config, lock, progress=write_during_the_build)
        assert not [t for i in engine.client.images.list("mlrepro-test/tiny-build") for t in i.tags]

        first = ensure_image(engine, config, lock, progress=lambda m: None)
        made.append(first.tag)
        rebuilt = ensure_image(engine, config, lock, progress=lambda m: None, no_cache=True)
        made.append(rebuilt.tag)
        assert engine.image_id(first.tag) == first.image_id  # the tag a report of the first build names did not move
        assert rebuilt.image_id != first.image_id and rebuilt.tag == f"{first.tag}-{rebuilt.image_id[7:19]}"
        assert engine.image_id(f"{first.tag}-rebuild") is None
    finally:
        for ref in made + [t for i in engine.client.images.list("mlrepro-test/tiny-build") for t in i.tags]:
            engine.discard(ref)
