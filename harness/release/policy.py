"""The release policy: what a release is, and whether this image may be released under this tag. Pure.

`release_refusals` lists every reason not to release (unverified or changed
image, drift, a dirty tree, an image built from another revision);
`decide_tag` says whether the remote tag is free, already this image (a no-op)
or another image (TagCollision: released tags never move);
`verification_manifest` is the OCI artifact that carries the report beside
the image. No Docker, no network: plain data in, frozen data out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from harness.compare import DEFAULT_IGNORED_PACKAGES, normalize_name
from harness.errors import MlreproError
from harness.git import GitState
from harness.release.errors import TagCollision
from harness.release.manifest import MEDIA_OCI_EMPTY, MEDIA_OCI_MANIFEST, MEDIA_VERIFICATION_REPORT, Manifest
from harness.report import Report

RECORD_SCHEMA = 1
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_LOCK = "io.mlrepro.lock-sha256"
#: Labels copied into the release record as the image's provenance.
PROVENANCE_PREFIXES = ("org.opencontainers.image.", "io.mlrepro.")

_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


# Plain data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseTarget:
    """Where to release: REGISTRY/REPOSITORY:TAG (e.g. myreg.azurecr.io, ml/model, 1.4.0)."""

    registry: str
    repository: str
    tag: str

    def __post_init__(self) -> None:
        if not _REGISTRY.match(self.registry) or self.registry.startswith(("http:", "https:")):
            raise MlreproError(f"registry={self.registry!r}: expected a host name with an optional port, without scheme (myreg.azurecr.io, 127.0.0.1:5000)")
        if not _REPOSITORY.match(self.repository):
            raise MlreproError(f"repository={self.repository!r}: expected lower-case path components (team/model), see the OCI distribution spec")
        if not _TAG.match(self.tag):
            raise MlreproError(f"tag={self.tag!r}: expected up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")

    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    def by_digest(self, digest: str) -> str:
        return f"{self.registry}/{self.repository}@{digest}"


@dataclass(frozen=True)
class ReleaseRecord:
    """What was released, as JSON beside the build: everything needed to deploy and audit it, no secret."""

    registry: str
    repository: str
    tag: str
    digest: str
    reference: str  # REGISTRY/REPOSITORY@sha256:...: what to deploy
    image_id: str
    report_sha256: str
    lock_sha256: str
    git_revision: str | None
    git_dirty: bool
    allow_dirty: bool
    image_revision: str | None
    provenance: Mapping[str, str]
    verification_artifact: Mapping[str, str] | None  # {"tag", "digest"} of the pushed report, or None
    already_released: bool  # True: the tag already named this image; nothing was pushed
    credentials_source: str
    released_at: str
    schema: int = RECORD_SCHEMA
    #: How the report was trusted: "verified-here" (release --verify) or "signed:<keyid>" (a signed report).
    report_trust: str | None = None
    #: {"tag", "digest", "keyid"} of the signed attestation pushed beside the image (release --sign-key), else None.
    attestation: Mapping[str, str] | None = None
    #: {"tag", "digest", "sha256"} of the CycloneDX SBOM pushed beside the image (release --sign-key), else None.
    sbom: Mapping[str, str] | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["provenance"] = dict(self.provenance)
        for name in ("verification_artifact", "attestation", "sbom"):
            value = getattr(self, name)
            data[name] = dict(value) if value else None
        return json.dumps(data, sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ReleaseRecord":
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"release record: expected schema {RECORD_SCHEMA}, found {data.get('schema') if isinstance(data, dict) else data!r}")
        return cls(**data)


# Decisions ----------------------------------------------------------------------------------


def release_refusals(*, image_id: str, labels: Mapping[str, str], report: Report | None, report_problem: str | None,
                     report_path: str, git: GitState, allow_dirty: bool, settings: Mapping[str, Any] | None = None,
                     lock_sha256: str | None = None, lock_versions: Mapping[str, str] | None = None,
                     lock_name: str = "the lock") -> tuple[str, ...]:
    """Every reason not to release this image (empty: go ahead). Pure.

    With today's project facts (a library caller releasing a bare image may
    have none): `settings` (`harness.settings.verified_settings` now) must be
    what the report verified, `lock_sha256` the lock it verified, and every
    distribution the report saw in the image must be pinned by `lock_versions`
    at that version (the SBOM's rule: only installer tooling and the project's
    own distribution are exempt, whatever `compare.ignore_packages` hid).
    """
    reasons: list[str] = []
    if report is None:
        problem = report_problem or f"no verification report at {report_path}"
        hint = "" if "--verify" in problem else f"; run 'mlrepro verify --json {report_path} --sign-key KEY.pem' (or release with --verify)"
        reasons.append(problem + hint)
    else:
        if report.image.image_id != image_id:
            reasons.append(
                f"the verification report {report_path} is for image {report.image.image_id} ({report.image.tag}), "
                f"but the image to release is {image_id}: it changed or was never verified; verify it (--verify)"
            )
        if not report.reproducible:
            reasons.append(f"the verification report {report_path} found drift ({report.verdict()[:300]}); fix it and verify again")
        lock_label = labels.get(LABEL_LOCK)
        if lock_label and lock_label != "unknown" and lock_label != report.lock_sha256:
            reasons.append(f"the image's label {LABEL_LOCK}={lock_label} differs from the report's lock_sha256={report.lock_sha256}; verify this image again")
        reasons += _project_refusals(report, report_path, settings, lock_sha256, lock_versions, lock_name)
    if not allow_dirty:
        if git.revision is None:
            reasons.append("the source is not a git repository (or git is missing), so the release cannot name a revision; commit it to git or pass --allow-dirty (recorded)")
        elif git.dirty:
            shown = ", ".join(git.dirty[:5]) + (f" (+{len(git.dirty) - 5} more)" if len(git.dirty) > 5 else "")
            reasons.append(f"the git tree has uncommitted changes ({shown}); commit or stash them, or pass --allow-dirty (recorded)")
        revision_label = labels.get(LABEL_REVISION)
        if git.revision and revision_label and revision_label != "unknown" and revision_label != git.revision:
            reasons.append(
                f"the image was built from revision {revision_label[:12]} but the tree is at {git.revision[:12]}; "
                "check out that revision or verify the current one, or pass --allow-dirty (recorded)"
            )
    return tuple(reasons)


def _project_refusals(report: Report, report_path: str, settings: Mapping[str, Any] | None, lock_sha256: str | None,
                      lock_versions: Mapping[str, str] | None, lock_name: str) -> list[str]:
    from harness.attest.sbom import lock_mismatches  # pure; here so that the policy's import stays light
    from harness.settings import settings_changes, settings_sha256

    reasons = []
    if settings is not None:
        if report.settings is None:
            reasons.append(f"the verification report {report_path} does not record the settings it verified (an older mlrepro wrote it); verify again (--verify)")
        elif settings_sha256(report.settings) != settings_sha256(settings):
            changed = ", ".join(settings_changes(report.settings, settings)) or "schema"
            reasons.append(f"the configuration changed since {report_path} was verified ({changed} differ from what was verified); verify again (--verify)")
    if lock_sha256 is not None and lock_sha256 != report.lock_sha256:
        reasons.append(f"{lock_name} changed since verification (sha256 {lock_sha256[:12]}, the report verified {report.lock_sha256[:12]}); verify again (--verify)")
    if lock_versions is not None:
        packages = report.environments.get("image", {}).get("packages", {})
        exempt = set(DEFAULT_IGNORED_PACKAGES) | {normalize_name(report.project)}
        mismatches = lock_mismatches(packages, lock_versions, exempt=exempt)
        if mismatches:
            shown = "; ".join(mismatches[:5]) + (f" (+{len(mismatches) - 5} more)" if len(mismatches) > 5 else "")
            reasons.append(f"the image's SBOM does not match {lock_name}: {shown}; pin it in the lock or remove it from the image, then verify again")
    return reasons


def decide_tag(target: ReleaseTarget, image_id: str, remote: Manifest | None) -> str:
    """'push' (tag free) or 'already-released' (tag names this image); TagCollision otherwise. Pure.

    An image's ID is the digest of its config, so the remote manifest's config
    digest says whether the tag already names this exact image, without pushing.
    """
    if remote is None:
        return "push"
    if remote.is_index or remote.config_digest != image_id:
        raise TagCollision(target.ref, remote.digest, image_id, None if remote.is_index else remote.config_digest)
    return "already-released"


#: The referrers a release attaches to the image, by tag suffix (cosign's fallback scheme for registries
#: without the OCI 1.1 referrers API): the report, the signed attestation, the SBOM.
REFERRER_SUFFIXES = ("verification", "att", "sbom")


def referrer_tag(image_digest: str, suffix: str) -> str:
    """The tag of an artifact about `image_digest`: sha256-<hex>.<suffix>, named by the digest so a tag move cannot orphan it."""
    if suffix not in REFERRER_SUFFIXES:
        raise ValueError(f"referrer suffix {suffix!r}: expected one of {REFERRER_SUFFIXES}")
    return image_digest.replace(":", "-") + "." + suffix


def verification_tag(image_digest: str) -> str:
    """The tag of the report artifact (`referrer_tag(..., "verification")`)."""
    return referrer_tag(image_digest, "verification")


def artifact_manifest(blob: bytes, subject: Mapping[str, Any], *, media_type: str, artifact_type: str, title: str,
                      annotations: Mapping[str, str] | None = None,
                      earlier: Sequence[Mapping[str, Any]] = ()) -> tuple[bytes, bytes]:
    """Pure: (manifest bytes, config bytes) of an OCI artifact holding a blob about `subject`.

    The OCI 1.1 artifact form (empty config, `artifactType`, `subject`), so a
    registry with the referrers API lists it under the image; the same inputs
    give the same digest. `earlier` layers (what the artifact held before:
    a later release of the same image adds its blob, never removes one) come
    first, as cosign appends signatures.
    """
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": MEDIA_OCI_EMPTY, "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [*(dict(layer) for layer in earlier), {
            "mediaType": media_type,
            "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
            "annotations": {"org.opencontainers.image.title": title},
        }],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
        **({"annotations": dict(annotations)} if annotations else {}),
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode(), config


def verification_manifest(report_bytes: bytes, subject: Mapping[str, Any], *, earlier: Sequence[Mapping[str, Any]] = ()) -> tuple[bytes, bytes]:
    """Pure: the OCI artifact holding the report (`artifact_manifest` with the report's media type)."""
    return artifact_manifest(report_bytes, subject, media_type=MEDIA_VERIFICATION_REPORT, artifact_type=MEDIA_VERIFICATION_REPORT,
                             title="report.json", annotations={"io.mlrepro.report-sha256": hashlib.sha256(report_bytes).hexdigest()},
                             earlier=earlier)


def provenance(labels: Mapping[str, str]) -> dict[str, str]:
    """The image's labels that say where it came from (OCI and mlrepro ones), for the record. Pure."""
    return {k: v for k, v in sorted(labels.items()) if k.startswith(PROVENANCE_PREFIXES)}


__all__ = ["LABEL_LOCK", "LABEL_REVISION", "PROVENANCE_PREFIXES", "RECORD_SCHEMA", "REFERRER_SUFFIXES", "GitState", "ReleaseRecord",
           "ReleaseTarget", "artifact_manifest", "decide_tag", "provenance", "referrer_tag", "release_refusals",
           "verification_manifest", "verification_tag"]
