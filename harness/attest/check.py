"""`mlrepro check`: does this image digest carry a valid, signed proof of verification? The step before deploy.

Given REGISTRY/REPOSITORY@sha256:... and the releaser's public key, in order:

1. the image manifest exists and is what the attestation will be matched against;
2. the attestation is found (OCI 1.1 referrers API, else the fallback tag
   `sha256-<hex>.att`), its blob read (a blob altered in storage fails here);
3. the DSSE signature verifies with the key (`SignatureInvalid`);
4. the payload is an in-toto Statement v1 of our predicate type whose subject
   is exactly the digest asked about, and whose image ID is that manifest's config;
5. the verdict is REPRODUCIBLE;
6. the SBOM beside the image is the one the attestation covers (sha256);
7. the policy holds: required lock sha256, required platforms, maximum tolerance used.

Any failure raises `CheckFailed` (exit 1) naming what failed; registry or
key problems are `MlreproError` (exit 2). Pure apart from the `RegistryAPI`
it is given (the real `RegistryClient`, or the tests' in-memory registry).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.attest.dsse import MEDIA_DSSE, PAYLOAD_IN_TOTO, Envelope, verify_envelope
from harness.attest.errors import AttestError, CheckFailed, SignatureInvalid
from harness.attest.sbom import MEDIA_CYCLONEDX
from harness.attest.statement import parse_statement, subject_digests
from harness.release.errors import BlobAltered
from harness.release.policy import referrer_tag

#: The artifact type of the signed attestation beside an image (our own; its one layer is a DSSE envelope).
MEDIA_ATTESTATION = "application/vnd.mlrepro.verification-attestation.v1+json"

_REFERENCE = re.compile(r"^(?P<registry>[A-Za-z0-9.-]+(?::[0-9]+)?)/(?P<repository>[a-z0-9._/-]+)@(?P<digest>sha256:[0-9a-f]{64})$")
_POLICY_KEYS = {"lock_sha256", "platforms", "max_atol", "max_rtol"}


def parse_reference(reference: str) -> tuple[str, str, str]:
    """(registry, repository, digest) of REGISTRY/REPOSITORY@sha256:<64 hex>; a tag is refused (it can move)."""
    match = _REFERENCE.match(reference.strip())
    if not match:
        hint = " (a tag can move: check the digest the release record names)" if ":" in reference.rpartition("/")[2] and "@" not in reference else ""
        raise AttestError(f"reference: expected REGISTRY/REPOSITORY@sha256:<64 hex digits>, found {reference!r}{hint}")
    return match["registry"], match["repository"], match["digest"]


@dataclass(frozen=True)
class Policy:
    """What a deployment requires beyond a valid signature and a REPRODUCIBLE verdict."""

    lock_sha256: str | None = None
    platforms: tuple[str, ...] = ()
    max_atol: float | None = None
    max_rtol: float | None = None

    @classmethod
    def from_toml(cls, path: Path) -> "Policy":
        """A policy file: lock_sha256 = "...", platforms = ["linux/amd64"], max_atol = 0.0, max_rtol = 0.0 (all optional)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AttestError(f"policy: no file at {path}; expected a TOML file with lock_sha256, platforms, max_atol, max_rtol") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise AttestError(f"policy {path}: expected TOML, found a problem ({str(exc)[:200]})") from None
        unknown = sorted(set(data) - _POLICY_KEYS)
        if unknown:
            raise AttestError(f"policy {path}: unknown key(s) {', '.join(unknown)}; expected only {', '.join(sorted(_POLICY_KEYS))}")
        lock = data.get("lock_sha256")
        if lock is not None and not (isinstance(lock, str) and re.fullmatch(r"[0-9a-f]{64}", lock)):
            raise AttestError(f"policy {path}: lock_sha256: expected 64 lower-case hex digits, found {lock!r}")
        platforms = data.get("platforms", [])
        if not isinstance(platforms, list) or not all(isinstance(p, str) and p.count("/") >= 1 for p in platforms):
            raise AttestError(f"policy {path}: platforms: expected a list like [\"linux/amd64\"], found {platforms!r}")
        limits = {}
        for key in ("max_atol", "max_rtol"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
                raise AttestError(f"policy {path}: {key}: expected a finite number >= 0, found {value!r}")
            limits[key] = None if value is None else float(value)
        return cls(lock_sha256=lock, platforms=tuple(platforms), **limits)


@dataclass(frozen=True)
class CheckResult:
    """A passed check: what was proven, for the one-line summary and `--json`."""

    reference: str
    keyid: str
    found_via: str
    verdict: str
    lock_sha256: str
    platforms: tuple[str, ...]
    sbom_components: int
    predicate: Mapping[str, Any] = field(repr=False)

    def summary(self) -> str:
        return (f"PASSED: {self.reference} carries a valid attestation signed by {self.keyid[:19]}... "
                f"({self.verdict}; lock sha256 {self.lock_sha256[:12]}; {', '.join(self.platforms) or 'platform not recorded'}; "
                f"SBOM of {self.sbom_components} components; found by {self.found_via})")

    def to_json(self) -> str:
        return json.dumps({"passed": True, "reference": self.reference, "keyid": self.keyid, "found_via": self.found_via,
                           "verdict": self.verdict, "lock_sha256": self.lock_sha256, "platforms": list(self.platforms),
                           "sbom_components": self.sbom_components, "predicate": self.predicate}, sort_keys=True, indent=2) + "\n"


def _artifacts(client, repository: str, digest: str, artifact_type: str, suffix: str) -> tuple[list[Any], str]:
    """The manifests of the artifacts of `artifact_type` about `digest`, and how they were found."""
    listed = client.referrers(repository, digest, artifact_type)
    if listed:
        manifests = [client.manifest(repository, d["digest"]) for d in listed if isinstance(d.get("digest"), str)]
        return [m for m in manifests if m is not None], "the referrers API"
    tag = referrer_tag(digest, suffix)
    found = client.manifest(repository, tag)
    return ([found] if found is not None else []), f"the tag {tag}"


def _layers(manifest, media_type: str) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """(the manifest's data, its layers of `media_type`: one per release of the image); CheckFailed when none."""
    try:
        data = json.loads(manifest.body)
    except ValueError:
        raise CheckFailed(f"the artifact {manifest.digest} is not a JSON manifest; it was not written by mlrepro release") from None
    layers = [layer for layer in data.get("layers") or [] if isinstance(layer, dict) and layer.get("mediaType") == media_type
              and isinstance(layer.get("digest"), str)]
    if not layers:
        raise CheckFailed(f"the artifact {manifest.digest} holds no {media_type} layer; it was not written by mlrepro release")
    return data, layers


def _read_blob(client, repository: str, digest: str, what: str) -> bytes:
    try:
        blob = client.blob(repository, digest)
    except BlobAltered as exc:
        raise SignatureInvalid(f"the {what} was altered in the registry ({exc}); its signature cannot hold: do not deploy") from None
    if blob is None:
        raise CheckFailed(f"the {what} blob {digest} is missing from {repository}; release again")
    return blob


def check_image(client, repository: str, digest: str, verifier, policy: Policy = Policy()) -> CheckResult:
    """Everything in the module docstring, in order; the first failure raises (see there)."""
    reference = f"{client.registry}/{repository}@{digest}"
    image = client.manifest(repository, digest)
    if image is None:
        raise CheckFailed(f"{reference}: no such image in the registry; check the digest the release record names")
    attestations, found_via = _artifacts(client, repository, digest, MEDIA_ATTESTATION, "att")
    if not attestations:
        raise CheckFailed(f"{reference} carries no mlrepro attestation (looked with {found_via}); "
                          "it was not released with 'mlrepro release --sign-key', or this is another image: do not deploy it")
    failures: list[CheckFailed] = []
    candidates = []
    for attestation in attestations:  # each of its layers is the attestation of one release of this image
        try:
            candidates.append(_layers(attestation, MEDIA_DSSE))
        except CheckFailed as exc:
            failures.append(exc)
    # A later release appends its layer to a new manifest: the one with most layers holds them all (the referrers
    # API also lists the superseded ones, in no particular order).
    for data, layers in sorted(candidates, key=lambda found: -len(found[1])):
        for layer in reversed(layers):  # the newest first
            try:
                predicate = _check_attestation(client, repository, digest, image, data, layer, verifier, reference)
                return _check_predicate(client, repository, digest, predicate, policy, reference, verifier.keyid, found_via)
            except CheckFailed as exc:
                failures.append(exc)
    raise failures[0]  # why the newest attestation fails


def _check_attestation(client, repository: str, digest: str, image, data: Mapping[str, Any], layer: Mapping[str, Any], verifier,
                       reference: str) -> Mapping[str, Any]:
    subject = (data.get("subject") or {}).get("digest")
    if subject is not None and subject != digest:
        raise CheckFailed(f"the attestation found for {reference} is attached to {subject}, another image; do not deploy it")
    blob = _read_blob(client, repository, layer["digest"], "attestation")
    try:
        envelope = Envelope.from_json(blob)
    except ValueError as exc:
        raise SignatureInvalid(f"the attestation of {reference} is not a DSSE envelope ({str(exc)[:200]}); do not deploy it") from None
    payload = verify_envelope(envelope, verifier)  # SignatureInvalid names the keys
    if envelope.payload_type != PAYLOAD_IN_TOTO:
        raise CheckFailed(f"the attestation of {reference} signs a {envelope.payload_type!r}, not an in-toto statement")
    statement = parse_statement(payload)
    subjects = subject_digests(statement)
    if digest not in subjects:
        raise CheckFailed(f"the signed attestation is about {', '.join(sorted(subjects))}, not {digest}: "
                          "it was copied from another image; do not deploy this one")
    predicate = statement["predicate"]
    image_id = (predicate.get("image") or {}).get("id")
    if image.config_digest is not None and image_id != image.config_digest:
        raise CheckFailed(f"the attestation verified image {image_id}, but {reference} is image {image.config_digest}; do not deploy it")
    return predicate


def _check_predicate(client, repository: str, digest: str, predicate: Mapping[str, Any], policy: Policy, reference: str,
                     keyid: str, found_via: str) -> CheckResult:
    if predicate.get("verdict") != "REPRODUCIBLE" or predicate.get("reproducible") is not True:
        raise CheckFailed(f"{reference} was attested but not as reproducible: {str(predicate.get('verdict_line'))[:300]}")
    components = _check_sbom(client, repository, digest, predicate, reference)
    lock = str(predicate.get("lock_sha256") or "")
    if policy.lock_sha256 and lock != policy.lock_sha256:
        raise CheckFailed(f"{reference} was verified against lock sha256 {lock[:12]}, the policy requires {policy.lock_sha256[:12]}")
    platforms = tuple(predicate.get("platforms") or ())
    missing = [p for p in policy.platforms if p not in platforms]
    if missing:
        raise CheckFailed(f"{reference} was verified for {', '.join(platforms) or 'no recorded platform'}; the policy requires {', '.join(missing)}")
    for path, tolerance in sorted((predicate.get("tolerances") or {}).items()):
        for name, limit in (("atol", policy.max_atol), ("rtol", policy.max_rtol)):
            used = float((tolerance or {}).get(name) or 0.0)
            if limit is not None and used > limit:
                raise CheckFailed(f"{reference} was verified with {path} {name}={used:g}; the policy allows at most {limit:g}")
    return CheckResult(reference=reference, keyid=keyid, found_via=found_via, verdict=str(predicate.get("verdict")),
                       lock_sha256=lock, platforms=platforms, sbom_components=components, predicate=dict(predicate))


def _check_sbom(client, repository: str, digest: str, predicate: Mapping[str, Any], reference: str) -> int:
    """The SBOM beside the image must be the one the attestation covers; its component count."""
    from harness.attest.sbom import sbom_packages

    covered = (predicate.get("sbom") or {}).get("sha256")
    if not covered:
        raise CheckFailed(f"the attestation of {reference} covers no SBOM; release again with 'mlrepro release --sign-key'")
    sboms, found_via = _artifacts(client, repository, digest, MEDIA_CYCLONEDX, "sbom")
    for sbom in sboms:
        _, layers = _layers(sbom, MEDIA_CYCLONEDX)
        for layer in (found for found in layers if found["digest"] == "sha256:" + covered):
            blob = _read_blob(client, repository, layer["digest"], "SBOM")
            if hashlib.sha256(blob).hexdigest() != covered:  # the client checked it too; said here for a reader of this file
                raise CheckFailed(f"the SBOM of {reference} is not the one the attestation covers")
            try:
                return len(sbom_packages(blob))
            except ValueError as exc:
                raise CheckFailed(f"the SBOM of {reference} is not CycloneDX JSON ({str(exc)[:200]})") from None
    raise CheckFailed(f"{reference} has no SBOM with the sha256 its attestation covers ({covered[:12]}; looked with {found_via}); "
                      "it was replaced or removed: do not deploy")


__all__ = ["MEDIA_ATTESTATION", "CheckResult", "Policy", "check_image", "parse_reference"]
