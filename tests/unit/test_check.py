"""`mlrepro check` on the fake engine's in-memory registry (which has the OCI 1.1 referrers API; the real
docker-registry 2.8 of the integration test has not, so there the fallback tags are what is checked).

A release with a signing key attaches the SBOM and the DSSE-signed attestation; `check_image` passes with
the releaser's public key and fails, naming why, for another key, another digest, an attestation copied
to another image, a blob altered in storage, a swapped SBOM, a drifting verdict, and each policy.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from harness.attest.check import MEDIA_ATTESTATION, CheckResult, Policy, check_image, parse_reference
from harness.attest.dsse import Envelope, sign_envelope
from harness.attest.errors import AttestError, CheckFailed, SignatureInvalid
from harness.attest.keys import generate_key
from harness.attest.sbom import sbom_packages, validate_sbom
from harness.release import ReleaseTarget, StaticAuth, release
from harness.release.policy import referrer_tag
from harness.report import ImageInfo, Report
from harness.settings import verified_settings
from tests.cli_projects import tiny_project

from fakes import FakeEngine

HOST = "registry.test:5000"
REPO = "ml/model"
PACKAGES = {"numpy": "2.2.5", "scikit-learn": "1.6.1", "tiny": "1.0"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    return generate_key(base / "release.pem"), generate_key(base / "other.pem", "ecdsa-p256")


@pytest.fixture
def released(tmp_path, keys):
    """A release of the fake image with the signing key: (engine, record, report)."""
    from harness.config import load_config

    root = tiny_project(tmp_path / "proj", "tinyproj")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('path = "result.txt"', 'path = "result.txt"\ncompare = "numeric"\natol = 1e-9'))
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "src"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    config = load_config(root / "pyproject.toml")
    engine = FakeEngine()
    engine.local_id = engine.add_image("mlrepro/p:0123", {})
    report = Report(project=config.project, image=ImageInfo("mlrepro/p:0123", engine.local_id, "e" * 64, "python:3.11", "sha256:" + "b" * 64),
                    lock_sha256="d" * 64, environments={"image": {"packages": PACKAGES}}, differences=(), artifacts=(),
                    settings=verified_settings(config))
    record = release(ReleaseTarget(HOST, REPO, "1.0"), image="mlrepro/p:0123", report_path=tmp_path / "report.json", root=root,
                     engine=engine, auth=StaticAuth(None), registry_client=engine.registry.client,
                     verified_report=report.to_json().encode(), signer=keys[0])
    return engine, record, report


def test_a_signed_release_passes_with_the_releasers_key(released, keys):
    engine, record, report = released
    result = check_image(engine.registry, REPO, record.digest, keys[0].verifier())
    assert isinstance(result, CheckResult) and result.verdict == "REPRODUCIBLE"
    assert result.keyid == keys[0].keyid == record.attestation["keyid"] and result.found_via == "the referrers API"
    assert result.lock_sha256 == report.lock_sha256 and result.sbom_components == len(PACKAGES)
    assert result.summary().startswith(f"PASSED: {HOST}/{REPO}@{record.digest} carries a valid attestation")
    assert json.loads(result.to_json())["predicate"]["image"]["id"] == engine.local_id


def test_the_sbom_beside_the_image_is_valid_cyclonedx_and_is_what_the_attestation_covers(released):
    engine, record, _ = released
    sbom = engine.registry.manifest(REPO, referrer_tag(record.digest, "sbom"))
    layer = json.loads(sbom.body)["layers"][0]
    blob = engine.registry.blobs[(REPO, layer["digest"])]
    validate_sbom(blob)
    assert sbom_packages(blob) == PACKAGES
    assert hashlib.sha256(blob).hexdigest() == record.sbom["sha256"]
    assert json.loads(sbom.body)["subject"]["digest"] == record.digest


def test_another_key_fails_naming_the_signature(released, keys):
    engine, record, _ = released
    with pytest.raises(SignatureInvalid, match=r"signature does not verify with key sha256:") as caught:
        check_image(engine.registry, REPO, record.digest, keys[1].verifier())
    assert caught.value.exit_code == 1 and keys[0].keyid in str(caught.value)


def test_another_digest_in_the_repository_has_no_attestation(released, keys):
    engine, _, _ = released
    other = engine.registry.store_image(REPO, "other", "sha256:" + "7" * 64)
    with pytest.raises(CheckFailed, match="carries no mlrepro attestation"):
        check_image(engine.registry, REPO, other, keys[0].verifier())


def test_an_attestation_copied_to_another_image_fails_on_its_subject(released, keys):
    """The signed envelope is genuine, but about the first image: attached to a second one it proves nothing."""
    engine, record, _ = released
    registry = engine.registry
    other = registry.store_image(REPO, "other", "sha256:" + "7" * 64)
    original = json.loads(registry.manifest(REPO, referrer_tag(record.digest, "att")).body)
    copied = dict(original, subject={**original["subject"], "digest": other})
    registry.put_manifest(REPO, referrer_tag(other, "att"), json.dumps(copied).encode(), "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(CheckFailed, match=f"not {other}: it was copied from another image"):
        check_image(registry, REPO, other, keys[0].verifier())


def _attestation_layer(engine, record) -> tuple[dict, str]:
    manifest = json.loads(engine.registry.manifest(REPO, referrer_tag(record.digest, "att")).body)
    return manifest, manifest["layers"][0]["digest"]


def test_a_replaced_attestation_blob_fails_naming_the_signature(released, keys):
    """Someone who may push and delete rewrites the predicate (keeping the old signature) and re-attaches it."""
    engine, record, _ = released
    registry = engine.registry
    manifest, digest = _attestation_layer(engine, record)
    del registry.manifests[(REPO, record.attestation["digest"])]  # the genuine one is gone: only the forgery is listed
    envelope = Envelope.from_json(registry.blobs[(REPO, digest)])
    statement = json.loads(envelope.payload)
    statement["predicate"]["tolerances"] = {"predictions.csv": {"atol": 1.0, "rtol": 0.0}}
    forged = Envelope(envelope.payload_type, json.dumps(statement).encode(), envelope.signatures).to_json()
    layer = registry.upload_blob(REPO, forged, manifest["layers"][0]["mediaType"])
    registry.put_manifest(REPO, referrer_tag(record.digest, "att"), json.dumps({**manifest, "layers": [layer]}).encode(),
                          "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(SignatureInvalid, match="signature does not verify"):
        check_image(registry, REPO, record.digest, keys[0].verifier())


def test_a_statement_signed_by_the_key_but_drifting_fails_on_the_verdict(released, keys):
    engine, record, _ = released
    registry = engine.registry
    manifest, digest = _attestation_layer(engine, record)
    statement = json.loads(Envelope.from_json(registry.blobs[(REPO, digest)]).payload)
    statement["predicate"].update(verdict="DRIFT", reproducible=False, verdict_line="DRIFT: 1 difference: numpy")
    envelope = sign_envelope("application/vnd.in-toto+json", json.dumps(statement).encode(), keys[0]).to_json()
    registry.blobs[(REPO, digest)] = envelope  # the same digest now holds other bytes
    with pytest.raises(CheckFailed, match="not as reproducible: DRIFT: 1 difference: numpy"):
        check_image(registry, REPO, record.digest, keys[0].verifier())


def test_a_swapped_sbom_fails(released, keys):
    engine, record, _ = released
    registry = engine.registry
    sbom = json.loads(registry.manifest(REPO, referrer_tag(record.digest, "sbom")).body)
    registry.manifests = {k: v for k, v in registry.manifests.items() if json.loads(v[0]).get("artifactType") != "application/vnd.cyclonedx+json"}
    layer = registry.upload_blob(REPO, b'{"bomFormat": "CycloneDX", "components": []}', "application/vnd.cyclonedx+json")
    registry.put_manifest(REPO, referrer_tag(record.digest, "sbom"), json.dumps({**sbom, "layers": [layer]}).encode(),
                          "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(CheckFailed, match="has no SBOM with the sha256 its attestation covers"):
        check_image(registry, REPO, record.digest, keys[0].verifier())


@pytest.mark.parametrize("policy, needle", [
    (Policy(lock_sha256="0" * 64), "was verified against lock sha256 dddddddddddd, the policy requires 000000000000"),
    (Policy(platforms=("linux/arm64",)), "the policy requires linux/arm64"),
])
def test_policies_are_enforced(released, keys, policy, needle):
    engine, record, _ = released
    with pytest.raises(CheckFailed, match=needle):
        check_image(engine.registry, REPO, record.digest, keys[0].verifier(), policy)
    assert check_image(engine.registry, REPO, record.digest, keys[0].verifier(), Policy(lock_sha256="d" * 64, platforms=("linux/unknown",)))


def test_a_tolerance_above_the_policys_maximum_fails(released, keys):
    """The attested tolerances come from the verified settings (result.txt atol=1e-9); a policy can cap them."""
    engine, record, _ = released
    verifier = keys[0].verifier()
    with pytest.raises(CheckFailed, match=r"was verified with result.txt atol=1e-09; the policy allows at most 0"):
        check_image(engine.registry, REPO, record.digest, verifier, Policy(max_atol=0.0))
    assert check_image(engine.registry, REPO, record.digest, verifier, Policy(max_atol=1e-6, max_rtol=0.0)).predicate["tolerances"] == {
        "result.txt": {"atol": 1e-9, "rtol": 0.0}}


def test_policy_files_are_read_key_by_key(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('lock_sha256 = "' + "a" * 64 + '"\nplatforms = ["linux/amd64"]\nmax_atol = 0\n')
    assert Policy.from_toml(path) == Policy(lock_sha256="a" * 64, platforms=("linux/amd64",), max_atol=0.0)
    for text, needle in (("lock = 1\n", "unknown key(s) lock"), ('lock_sha256 = "abc"\n', "expected 64 lower-case hex digits"),
                         ("max_rtol = -1\n", "expected a finite number >= 0"), ("platforms = 'linux'\n", "platforms: expected a list"),
                         ("x = [\n", "expected TOML")):
        path.write_text(text)
        with pytest.raises(AttestError, match=re.escape(needle)):
            Policy.from_toml(path)
    with pytest.raises(AttestError, match="no file at"):
        Policy.from_toml(tmp_path / "missing.toml")


def test_references_must_name_a_digest():
    digest = "sha256:" + "c" * 64
    assert parse_reference(f"myreg.azurecr.io/ml/model@{digest}") == ("myreg.azurecr.io", "ml/model", digest)
    assert parse_reference(f"127.0.0.1:5000/a@{digest}") == ("127.0.0.1:5000", "a", digest)
    with pytest.raises(AttestError, match="a tag can move"):
        parse_reference("myreg.azurecr.io/ml/model:1.4.0")
    with pytest.raises(AttestError, match="expected REGISTRY/REPOSITORY@sha256"):
        parse_reference("model@sha256:abc")


def test_the_attestation_artifact_has_our_type_and_points_at_the_image(released):
    engine, record, _ = released
    manifest = json.loads(engine.registry.manifest(REPO, record.attestation["tag"]).body)
    assert manifest["artifactType"] == MEDIA_ATTESTATION and manifest["subject"]["digest"] == record.digest
    assert manifest["layers"][0]["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert record.attestation["tag"] == referrer_tag(record.digest, "att") and Path(record.sbom["tag"]).suffix == ".sbom"


def test_a_re_verified_image_released_under_a_new_tag_keeps_both_proofs(released, keys, tmp_path):
    """Issue 13: a second release of the same image with another report used to be refused after its tag was
    pushed. Nothing after the push may refuse: each artifact keeps the earlier layer and adds the new one."""
    import dataclasses

    engine, record, report = released
    again = dataclasses.replace(report, reference_sha256="f" * 64)  # a later verification: other report bytes
    second = release(ReleaseTarget(HOST, REPO, "1.1"), image="mlrepro/p:0123", report_path=tmp_path / "r2.json",
                     root=tmp_path / "proj",  # the released fixture's project
                     engine=engine, auth=StaticAuth(None), registry_client=engine.registry.client,
                     verified_report=again.to_json().encode(), signer=keys[0], allow_dirty=True)
    assert second.digest == record.digest and engine.registry.tags[(REPO, "1.1")] == record.digest
    for suffix, count in (("verification", 2), ("att", 2), ("sbom", 1)):  # the SBOM of one image is one document
        layers = json.loads(engine.registry.manifest(REPO, referrer_tag(record.digest, suffix)).body)["layers"]
        assert len(layers) == count, suffix
    first_report = json.loads(engine.registry.manifest(REPO, referrer_tag(record.digest, "verification")).body)["layers"][0]
    assert engine.registry.blobs[(REPO, first_report["digest"])] == report.to_json().encode()  # the first one is kept
    result = check_image(engine.registry, REPO, record.digest, keys[0].verifier())
    assert result.predicate["report_sha256"] == hashlib.sha256(again.to_json().encode()).hexdigest()  # the newest is checked
