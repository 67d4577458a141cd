"""Release (issue 7) against a real registry: Debian's docker-registry (CNCF distribution 2.8).

The registry runs on 127.0.0.1 with htpasswd (bcrypt) auth, started by a module
fixture and stopped in `finally`; the engine pushes to it over plain HTTP
(127.0.0.0/8 is an insecure-allowed registry). Most cases release small
two-layer images built FROM scratch here (and removed afterwards), with a
passing report written for their exact image ID; the last test releases this
repository's real, verified image, pulls it back by digest and verifies it again.

A push that fails midway goes through a forwarding proxy that answers DENIED
to the manifest PUT after every layer was uploaded.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from harness.compare import Difference
from harness.docker.engine import Engine
from harness.docker.registry_stream import RegistryStreamError
from harness.plugin import assert_reproducible, in_ci
from harness.release import (
    Credentials,
    PushError,
    RegistryAuthError,
    RegistryClient,
    RegistryUnreachable,
    ReleaseRecord,
    ReleaseRefused,
    ReleaseTarget,
    StaticAuth,
    TagCollision,
    release,
    release_project,
    verification_tag,
)
from harness.release.secrets import Redactor
from harness.report import ImageInfo, Report

ROOT = Path(__file__).resolve().parents[2]
USER = "releaser"
PASSWORD = "Pa55-" + uuid.uuid4().hex  # fresh per run; must never show up in output, errors or records


# The registry -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tools() -> tuple[str, str]:
    """docker-registry and htpasswd, installed by scripts/ensure-commands.sh when missing (root on Debian)."""
    if not (shutil.which("docker-registry") and shutil.which("htpasswd")):
        result = subprocess.run([str(ROOT / "scripts" / "ensure-commands.sh"), "the release tests' local registry", "docker-registry=docker-registry", "htpasswd=apache2-utils"], capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not (shutil.which("docker-registry") and shutil.which("htpasswd")):
            reason = f"the release tests need docker-registry and htpasswd: {result.stderr.strip()[-300:]}"
            if in_ci():
                pytest.fail(f"CI=true and {reason}", pytrace=False)
            pytest.skip(reason)
    return shutil.which("docker-registry"), shutil.which("htpasswd")


@dataclass
class LocalRegistry:
    host: str
    process: subprocess.Popen
    log: Path

    def credentials(self, password: str = PASSWORD) -> Credentials:
        return Credentials(USER, password, source="test")

    def api(self) -> RegistryClient:
        return RegistryClient(self.host, self.credentials())


def _start_registry(workdir: Path) -> LocalRegistry:
    registry, htpasswd = _tools()
    workdir.mkdir(parents=True, exist_ok=True)
    line = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True).stdout.strip()
    (workdir / "htpasswd").write_text(line + "\n")
    last = ""
    for _ in range(3):  # the free port may be taken between the probe and the bind: try another
        port = _free_port()
        (workdir / "config.yml").write_text(json.dumps({  # JSON is YAML
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
            "auth": {"htpasswd": {"realm": "mlrepro-test", "path": str(workdir / "htpasswd")}},
        }))
        log = workdir / f"registry-{port}.log"
        process = subprocess.Popen([registry, "serve", str(workdir / "config.yml")], stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 401:
                    return LocalRegistry(f"127.0.0.1:{port}", process, log)
            except requests.exceptions.RequestException:
                time.sleep(0.1)
        _stop(process)
        last = log.read_text(errors="replace")[-500:]
    message = f"the local registry (docker-registry serve) did not start: {last}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory, engine):
    reg = _start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        _stop(reg.process)


@pytest.fixture
def repository() -> str:
    return f"mlrepro-test/r{uuid.uuid4().hex[:10]}"


# Images and reports ------------------------------------------------------------------------------


@pytest.fixture
def make_image(engine: Engine, tmp_path):
    """Build small two-layer images FROM scratch (unique content each); remove them all afterwards."""
    made: list[str] = []

    def build(label: str = "") -> tuple[str, str]:
        context = tmp_path / f"ctx-{len(made)}"
        context.mkdir()
        (context / "a.bin").write_bytes(os.urandom(4096))
        (context / "b.bin").write_bytes(os.urandom(8192))
        (context / "Dockerfile").write_text(
            "FROM scratch\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\n"
            f'LABEL org.opencontainers.image.title="release test" io.mlrepro.test="{label or "release"}"\n'
        )
        tag = f"mlrepro-release-test:{uuid.uuid4().hex[:12]}"
        image_id = engine.build(context=context, dockerfile=context / "Dockerfile", tag=tag, buildargs={}, labels={}, timeout=120)
        made.append(image_id)
        return tag, image_id

    yield build
    for image_id in made:
        try:
            engine.client.images.remove(image_id, force=True)
        except Exception:  # already gone (a test removed it on purpose)
            pass


@pytest.fixture(scope="module")
def signing_key_path(tmp_path_factory) -> Path:
    """The releaser's key as a user holds it (a private PEM file, mode 600): a report file is trusted only when signed by it."""
    from harness.attest.keys import generate_key

    path = tmp_path_factory.mktemp("release-key") / "release.pem"
    generate_key(path)
    return path


@pytest.fixture(scope="module")
def signing_key(signing_key_path):
    from harness.attest.keys import load_signer

    return load_signer(signing_key_path)


_KEY: list = []  # the module's signing key, for write_report (set by the autouse fixture)


@pytest.fixture(autouse=True)
def _key(signing_key):
    _KEY[:] = [signing_key]


def write_report(path: Path, tag: str, image_id: str, *, drift: bool = False, config=None) -> Path:
    """A signed verification report for exactly `image_id` (the small test images have no steps to run).

    With `config`, the report is what `mlrepro verify` of that project would say
    for an image holding exactly its lock: its settings, its lock, its packages.
    """
    from harness.attest.reports import write_signature

    differences = (Difference("artifact", "predictions.csv", "predictions.csv differs", "drift"),) if drift else ()
    lock_sha256, environments, settings, project = "1" * 64, {}, None, "release-test"
    if config is not None:
        from harness.lock import read_lock
        from harness.settings import verified_settings

        lock = read_lock(config.lock)
        lock_sha256, environments, settings, project = lock.sha256, {"image": {"packages": lock.versions}}, verified_settings(config), config.project
    report = Report(project=project, image=ImageInfo(tag, image_id, "0" * 64, "scratch", ""),
                    lock_sha256=lock_sha256, environments=environments, differences=differences, artifacts=(), settings=settings)
    text = report.to_json()
    path.write_text(text)
    write_signature(path, text.encode(), _KEY[0])
    return path


@pytest.fixture
def clean_tree(tmp_path) -> Path:
    """A committed git tree (the repository itself is being edited while the tests run)."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "README").write_text("source\n")
    for args in (["init", "-q"], ["add", "README"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "src"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return root


def do_release(reg: LocalRegistry, repository: str, tag: str, image: str, report: Path, root: Path, record: Path,
               *, password: str = PASSWORD, events: list | None = None, host: str | None = None, **options) -> ReleaseRecord:
    options.setdefault("report_key", _KEY[0].verifier())
    return release(ReleaseTarget(host or reg.host, repository, tag), image=image, report_path=report, root=root,
                   engine=Engine.connect(), auth=StaticAuth(reg.credentials(password)), record_path=record,
                   on_layer=(events.append if events is not None else (lambda e: None)), **options)


# The cases of issue 7, part 3 ----------------------------------------------------------------------


def test_push_is_confirmed_by_digest_and_the_bytes_come_back(local_registry, repository, make_image, clean_tree, tmp_path, engine):
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id)
    events: list = []
    record = do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, tmp_path / "release.json", events=events)

    api = local_registry.api()
    assert api.manifest_digest(repository, "1.0.0") == record.digest
    assert api.manifest(repository, record.digest).config_digest == image_id == record.image_id
    assert record.reference == f"{local_registry.host}/{repository}@{record.digest}"
    assert record.report_sha256 == hashlib.sha256(report.read_bytes()).hexdigest()
    assert (record.git_dirty, record.allow_dirty, record.already_released) == (False, False, False)
    assert record.git_revision == subprocess.run(["git", "-C", str(clean_tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record.provenance["org.opencontainers.image.title"] == "release test"
    assert ReleaseRecord.from_json((tmp_path / "release.json").read_text()) == record
    assert PASSWORD not in (tmp_path / "release.json").read_text()
    assert {e.layer for e in events if e.status == "Pushed"} and any(e.total for e in events if e.status == "Pushing")
    assert engine.image_id(f"{local_registry.host}/{repository}:1.0.0") is None  # the push's own name is gone again

    # The verification report sits beside the image, named by its digest, pointing at it.
    artifact = api.manifest(repository, verification_tag(record.digest))
    assert artifact.digest == record.verification_artifact["digest"]
    body = json.loads(artifact.body)
    assert body["subject"]["digest"] == record.digest
    blob = api.request("GET", f"/v2/{repository}/blobs/{body['layers'][0]['digest']}", scope=f"repository:{repository}:pull")
    assert blob.content == report.read_bytes()

    # Pulled back by digest into an engine without the image, it is the same image.
    engine.client.images.remove(image_id, force=True)
    assert engine.image_id(image_id) is None
    pulled = engine.pull(record.reference, auth_config=local_registry.credentials().auth_config())
    assert pulled == image_id


def test_wrong_password_is_refused_and_never_shown(local_registry, repository, make_image, clean_tree, tmp_path, engine, capsys):
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id)
    wrong = "wrong-" + uuid.uuid4().hex
    with pytest.raises(RegistryAuthError) as caught:
        do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, tmp_path / "release.json", password=wrong)
    assert f"refused user {USER!r}" in str(caught.value)
    assert not (tmp_path / "release.json").exists()
    assert local_registry.api().manifest_digest(repository, "1.0.0") is None

    # The engine's own push, with the same wrong password: the 401 arrives inside a 200 stream,
    # and the adapter says so in its own neutral words (the release translates them).
    ref = f"{local_registry.host}/{repository}:direct"
    engine.tag(image_id, ref)
    try:
        with pytest.raises(RegistryStreamError) as pushed:
            engine.push(ref, auth_config={"username": USER, "password": wrong}, redact=Redactor((wrong,)))
    finally:
        engine.untag(ref)
    assert pushed.value.kind == "auth" and "unauthorized" in str(pushed.value)
    output = capsys.readouterr()
    for text in (str(caught.value), caught.value.evidence, str(pushed.value), pushed.value.evidence, output.out, output.err):
        assert wrong not in text and PASSWORD not in text


def test_registry_down_claims_nothing(local_registry, repository, make_image, clean_tree, tmp_path, engine):
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id)
    down = f"127.0.0.1:{_free_port()}"
    with pytest.raises(RegistryUnreachable, match=f"nothing answers at http://{down}"):
        do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, tmp_path / "release.json", host=down)
    assert not (tmp_path / "release.json").exists()

    ref = f"{down}/{repository}:direct"
    engine.tag(image_id, ref)
    try:
        with pytest.raises(RegistryStreamError, match="connection refused") as pushed:
            engine.push(ref, auth_config=local_registry.credentials().auth_config())
    finally:
        engine.untag(ref)
    assert pushed.value.kind == "unreachable"


def test_a_tag_that_names_another_image_is_never_moved(local_registry, repository, make_image, clean_tree, tmp_path):
    first_tag, first_id = make_image("first")
    second_tag, second_id = make_image("second")
    first = do_release(local_registry, repository, "1.0.0", first_tag, write_report(tmp_path / "r1.json", first_tag, first_id),
                       clean_tree, tmp_path / "first.json")
    with pytest.raises(TagCollision) as caught:
        do_release(local_registry, repository, "1.0.0", second_tag, write_report(tmp_path / "r2.json", second_tag, second_id),
                   clean_tree, tmp_path / "second.json")
    assert first.digest in str(caught.value) and second_id in str(caught.value)
    assert local_registry.api().manifest_digest(repository, "1.0.0") == first.digest
    assert not (tmp_path / "second.json").exists()


def test_unverified_changed_drifting_or_dirty_is_refused_before_any_push(local_registry, repository, make_image, clean_tree, tmp_path):
    tag, image_id = make_image("verified")
    changed_tag, _ = make_image("changed")
    record = tmp_path / "release.json"
    cases = {
        "no verification report at": (tag, tmp_path / "missing.json"),
        "changed or was never verified": (changed_tag, write_report(tmp_path / "r.json", tag, image_id)),
        "found drift": (tag, write_report(tmp_path / "drift.json", tag, image_id, drift=True)),
    }
    for needle, (image, report) in cases.items():
        with pytest.raises(ReleaseRefused, match=needle):
            do_release(local_registry, repository, "1.0.0", image, report, clean_tree, record)

    (clean_tree / "uncommitted.txt").write_text("x")
    report = write_report(tmp_path / "ok.json", tag, image_id)
    with pytest.raises(ReleaseRefused, match=r"uncommitted changes \(uncommitted.txt\)"):
        do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, record)
    assert not record.exists() and local_registry.api().manifest_digest(repository, "1.0.0") is None

    allowed = do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, record, allow_dirty=True)
    assert (allowed.git_dirty, allowed.allow_dirty) == (True, True)
    assert json.loads(record.read_text())["allow_dirty"] is True


def test_releasing_the_same_digest_again_is_a_no_op(local_registry, repository, make_image, clean_tree, tmp_path):
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id)
    first = do_release(local_registry, repository, "2.0.0", tag, report, clean_tree, tmp_path / "first.json")
    events: list = []
    messages: list[str] = []
    again = do_release(local_registry, repository, "2.0.0", tag, report, clean_tree, tmp_path / "again.json",
                       events=events, progress=messages.append)
    assert again.already_released and not first.already_released
    assert (again.digest, again.verification_artifact) == (first.digest, first.verification_artifact)
    assert events == []  # nothing was pushed
    assert any("re-release is a no-op" in m for m in messages)


def test_a_push_that_fails_midway_leaves_no_release_record(local_registry, repository, make_image, clean_tree, tmp_path):
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id)
    with DenyingProxy(local_registry.host, lambda method, path: method == "PUT" and "/manifests/" in path) as proxy:
        with pytest.raises(PushError, match="injected failure") as caught:
            do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, tmp_path / "release.json", host=proxy.host)
    assert "Pushed" in caught.value.evidence  # the layers went up: it failed midway
    assert not (tmp_path / "release.json").exists()
    api = local_registry.api()
    assert api.manifest_digest(repository, "1.0.0") is None
    config_blob = api.request("HEAD", f"/v2/{repository}/blobs/{image_id}", scope=f"repository:{repository}:pull")
    assert config_blob.status_code == 200  # uploaded before the manifest was refused

    # Retried without the fault, the release completes (the uploaded layers are reused).
    record = do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, tmp_path / "release.json")
    assert api.manifest_digest(repository, "1.0.0") == record.digest


def test_a_push_that_stalls_fails_after_the_push_timeout_and_claims_nothing(local_registry, repository, make_image, clean_tree, tmp_path):
    """Issue 13: a registry that hangs on the manifest PUT; with --push-timeout 3 the release fails in seconds,
    naming the stall and the option, instead of waiting out the engine's own timeouts; no record, no tag."""
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id)
    started = time.monotonic()
    with DenyingProxy(local_registry.host, lambda method, path: method == "PUT" and "/manifests/" in path, stall=20) as proxy:
        with pytest.raises(PushError, match=r"stalled: the engine reported nothing for 3 s .*--push-timeout SECONDS") as caught:
            do_release(local_registry, repository, "1.0.0", tag, report, clean_tree, tmp_path / "release.json", host=proxy.host,
                       push_timeout=3)
        elapsed = time.monotonic() - started
    assert elapsed < 15, f"the stall was noticed after {elapsed:.1f} s"
    assert "\n" not in str(caught.value) and not (tmp_path / "release.json").exists()
    assert local_registry.api().manifest_digest(repository, "1.0.0") is None


def test_cli_prints_only_the_reference_and_never_the_password(local_registry, repository, make_image, tmp_path, mlrepro_config,
                                                               signing_key_path):
    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id, config=mlrepro_config)
    env = {**os.environ, "MLREPRO_REGISTRY_USERNAME": USER, "MLREPRO_REGISTRY_PASSWORD": PASSWORD}
    key = signing_key_path
    command = [sys.executable, "-m", "harness.cli", "release", "--registry", local_registry.host, "--repository", repository,
               "--image", tag, "--report", str(report), "--record", str(tmp_path / "release.json"), "--sign-key", str(key)]
    refused = subprocess.run([*command, "--tag", "1.0.0"], cwd=ROOT, env={**env, "GIT_DIR": str(tmp_path / "no-git")},
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "error: release refused" in refused.stderr and "--allow-dirty" in refused.stderr
    done = subprocess.run([*command, "--tag", "1.0.0", "--allow-dirty"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = ReleaseRecord.from_json((tmp_path / "release.json").read_text())
    assert done.stdout.strip() == record.reference and record.credentials_source == "environment"
    again = subprocess.run([*command, "--tag", "1.0.0", "--allow-dirty"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already released" in again.stderr and again.stdout.strip() == record.reference
    for result in (refused, done, again):
        assert PASSWORD not in result.stdout + result.stderr


def _check(reference: str, key: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLREPRO_REGISTRY_USERNAME": USER, "MLREPRO_REGISTRY_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-m", "harness.cli", "check", reference, "--key", str(key), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_mlrepro_check_before_deploy(local_registry, repository, make_image, tmp_path, mlrepro_config, signing_key_path, engine):
    """Issue 17's "Done when" on the real registry (no referrers API: the fallback tags are what is found):
    released with --sign-key, `mlrepro check` passes with the public key, and fails (exit 1, naming why) with
    another key, for another digest of the repository, for the attestation copied there, after the attestation
    is replaced (forged predicate, old signature), and after its blob is altered in the registry's storage."""
    from harness.attest.dsse import Envelope
    from harness.attest.keys import generate_key
    from harness.attest.sbom import sbom_packages, validate_sbom
    from harness.lock import read_lock
    from harness.release.policy import referrer_tag

    tag, image_id = make_image()
    report = write_report(tmp_path / "report.json", tag, image_id, config=mlrepro_config)
    env = {**os.environ, "MLREPRO_REGISTRY_USERNAME": USER, "MLREPRO_REGISTRY_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "release", "--registry", local_registry.host, "--repository", repository,
                           "--tag", "1.0.0", "--image", tag, "--report", str(report), "--record", str(tmp_path / "release.json"),
                           "--sign-key", str(signing_key_path), "--allow-dirty"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = ReleaseRecord.from_json((tmp_path / "release.json").read_text())
    assert record.attestation["tag"] == referrer_tag(record.digest, "att") and record.sbom["tag"] == referrer_tag(record.digest, "sbom")
    assert f"mlrepro check {record.reference} --key" in done.stderr
    api = local_registry.api()
    public = Path(f"{signing_key_path}.pub")

    # The SBOM in the registry: valid CycloneDX, every distribution the image holds (here: exactly the lock).
    sbom_manifest = json.loads(api.manifest(repository, record.sbom["tag"]).body)
    sbom = api.blob(repository, sbom_manifest["layers"][0]["digest"])
    validate_sbom(sbom)
    assert sbom_packages(sbom) == read_lock(mlrepro_config.lock).versions and hashlib.sha256(sbom).hexdigest() == record.sbom["sha256"]

    passed = _check(record.reference, public, "--lock", str(mlrepro_config.lock))
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith(f"PASSED: {record.reference} carries a valid attestation") and "found by the tag sha256-" in passed.stdout

    other_key = generate_key(tmp_path / "other.pem", "ecdsa-p256")
    wrong = _check(record.reference, tmp_path / "other.pem.pub")
    assert wrong.returncode == 1 and wrong.stderr.splitlines()[-1].startswith("FAILED: ") and f"does not verify with key {other_key.keyid}" in wrong.stderr

    other_tag, other_id = make_image("other")
    ref = f"{local_registry.host}/{repository}:other"
    engine.tag(other_id, ref)
    try:
        other_digest = engine.push(ref, auth_config=local_registry.credentials().auth_config())
    finally:
        engine.untag(ref)
    other = f"{local_registry.host}/{repository}@{other_digest}"
    unattested = _check(other, public)
    assert unattested.returncode == 1 and "carries no mlrepro attestation" in unattested.stderr

    attestation = json.loads(api.manifest(repository, record.attestation["tag"]).body)
    other_manifest = api.manifest(repository, other_digest)
    copied = {**attestation, "subject": other_manifest.descriptor()}
    api.put_manifest(repository, referrer_tag(other_digest, "att"), json.dumps(copied).encode(), attestation["mediaType"])
    copied_check = _check(other, public)
    assert copied_check.returncode == 1 and "it was copied from another image" in copied_check.stderr

    layer = attestation["layers"][0]
    genuine = api.blob(repository, layer["digest"])
    envelope = Envelope.from_json(genuine)
    statement = json.loads(envelope.payload)
    statement["predicate"]["tolerances"] = {"predictions.csv": {"atol": 0.5, "rtol": 0.0}}
    forged = Envelope(envelope.payload_type, json.dumps(statement).encode(), envelope.signatures).to_json()
    forged_layer = {**layer, **api.upload_blob(repository, forged, layer["mediaType"])}
    api.put_manifest(repository, record.attestation["tag"], json.dumps({**attestation, "layers": [forged_layer]}).encode(),
                     attestation["mediaType"])
    replaced = _check(record.reference, public)
    assert replaced.returncode == 1 and "the attestation's signature does not verify" in replaced.stderr

    # Put back, then altered where the registry stores it (same length, one byte of the payload changed).
    api.put_manifest(repository, record.attestation["tag"], json.dumps(attestation, sort_keys=True, separators=(",", ":")).encode(),
                     attestation["mediaType"])
    assert _check(record.reference, public).returncode == 0
    hexdigest = layer["digest"].split(":")[1]
    stored = local_registry.log.parent / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
    original = stored.read_bytes()
    at = original.index(b'"payload":"') + 20
    stored.write_bytes(original[:at] + (b"A" if original[at:at + 1] != b"A" else b"B") + original[at + 1:])
    try:
        altered = _check(record.reference, public)
    finally:
        stored.write_bytes(original)
    assert altered.returncode == 1 and "the attestation was altered in the registry" in altered.stderr and "signature" in altered.stderr
    for result in (done, passed, wrong, unattested, copied_check, replaced, altered):
        assert PASSWORD not in result.stdout + result.stderr and "PRIVATE KEY" not in result.stdout + result.stderr


def test_verified_released_pulled_back_by_digest_and_verified_again(local_registry, mlrepro_config, engine, tmp_path):
    """The real image of this repository, as a CI release script would: verify first, release, then pull it
    back by digest and verify the pulled image again."""
    from harness.lock import read_lock
    from harness.verify import compare_runs, run_both

    report_path = tmp_path / "report.json"
    # The repository is being edited (and committed) while the tests run: the tree may be dirty.
    record = release_project(mlrepro_config, ReleaseTarget(local_registry.host, "mlrepro/ml-project", "verified"),
                             verify_first=True, report_path=report_path, engine=engine,
                             auth=StaticAuth(local_registry.credentials()), allow_dirty=True, record_path=tmp_path / "release.json")
    report = Report.from_json(report_path.read_text())
    assert_reproducible(report)
    assert (record.image_id, record.lock_sha256) == (report.image.image_id, report.lock_sha256)
    assert record.report_sha256 == hashlib.sha256(report_path.read_bytes()).hexdigest()
    assert record.provenance["io.mlrepro.lock-sha256"] == report.lock_sha256
    try:
        pulled = engine.pull(record.reference, auth_config=local_registry.credentials().auth_config())
        assert pulled == report.image.image_id
        info = replace(report.image, tag=record.reference, image_id=pulled)
        again = compare_runs(mlrepro_config, read_lock(mlrepro_config.lock), info,
                             *run_both(mlrepro_config, engine, info, progress=lambda m: None))
        assert_reproducible(again)
        assert again.image.tag == record.reference
    finally:
        engine.untag(record.reference)


# A registry that fails on purpose ------------------------------------------------------------------


class DenyingProxy:
    """Forwards every request to the registry, except those `deny(method, path)` picks: 403 DENIED
    (after `stall` seconds of silence, to play a hanging registry).

    The engine does not retry DENIED, so the push fails at once, at exactly the
    chosen request (after everything before it went through).
    """

    def __init__(self, upstream: str, deny, *, stall: float = 0.0) -> None:
        self.upstream, self.deny, self.stall = upstream, deny, stall
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self) -> None:
                body = self._body()
                if proxy.deny(self.command, self.path):
                    time.sleep(proxy.stall)  # a hanging registry: nothing for `stall` seconds, then DENIED
                    data = b'{"errors":[{"code":"DENIED","message":"injected failure","detail":null}]}'
                    self.send_response(403)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                host, port = proxy.upstream.rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                if body or self.command in ("POST", "PUT", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "DenyingProxy":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
