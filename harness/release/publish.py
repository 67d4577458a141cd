"""Release: push exactly the verified image, refer to it by digest, never move a released tag.

`release()` refuses (ReleaseRefused, nothing contacted) unless

- a passing verification report exists for exactly this image ID, and it is
  trusted: either this process produced it (`release_project(verify_first=True)`
  passes its bytes as `verified_report`), or it carries a valid signature by
  the configured key (`report_key`, or the public half of `signer`: the
  `R.dsse` envelope `mlrepro verify --json R --sign-key KEY` writes). A loose
  report file is refused: anyone who can write it could mark any image verified;
- given the project's facts (`settings`, `lock`; `release_project` always
  passes them), the report verified today's settings and lock, and every
  distribution it saw in the image is pinned by the lock (the SBOM's rule);
- the git tree is clean and the image was built from its HEAD
  (`allow_dirty=True` overrides both, and the record says so);

then it refuses (TagCollision) when the remote tag already names a different
image, does nothing when it already names this one (re-release is a no-op), and
otherwise tags and pushes through the engine (every stream line scanned), and
confirms through the registry's own API that the digest exists, that its config
is this image ID, and that the tag points to it. Only then are the report, and
with a `signer` the CycloneDX SBOM and the DSSE-signed in-toto attestation
(covering the report and the SBOM by sha256), attached beside the image, and
the `ReleaseRecord` written: a push that fails at any point leaves no record.

Provenance: the image keeps the OCI labels set at build time (source, revision,
created, lock sha256). The verification report cannot be a label: labels are
part of the image config, so adding one after verification would change the
image ID and push bytes that were never verified. The report is instead pushed
beside the image as a small OCI artifact (tag `sha256-<hex>.verification`,
`subject` = the image manifest, so registries with the OCI 1.1 referrers API
list it under the image), and its sha256 is in the release record. The SBOM
(`.sbom`) and the attestation (`.att`) are attached the same way; `mlrepro
check` (`harness.attest.check`) is what a deployment runs against them.

The decisions are pure (`harness.release.policy`); this module only sequences
them with the engine (`harness.docker.Engine`, or `tests.fakes.FakeEngine`)
and the registry (`RegistryAPI`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import MlreproError
from harness.files import write_atomic
from harness.git import state as git_state
from harness.release.auth import AuthProvider, auth_for
from harness.release.client import RegistryAPI, RegistryClient
from harness.release.errors import RegistryError, ReleaseRefused, from_stream_error
from harness.release.manifest import MEDIA_OCI_EMPTY, MEDIA_OCI_MANIFEST, Manifest
import harness.release.journal as journal
from harness.release.policy import (
    LABEL_REVISION,
    ReleaseRecord,
    ReleaseTarget,
    artifact_manifest,
    decide_tag,
    provenance,
    referrer_tag,
    release_refusals,
    verification_manifest,
)
from harness.release.secrets import Credentials, Redactor
from harness.report import Report

# Reading and writing the facts ---------------------------------------------------------------


def read_report(path: Path) -> tuple[bytes | None, Report | None, str | None]:
    """(bytes, Report, problem): the report file as hashed, parsed; a one-line problem when unusable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None, f"no verification report at {path}"
    except OSError as exc:
        return None, None, f"cannot read the verification report {path} ({exc.strerror or exc})"
    try:
        return data, Report.from_json(data.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError) as exc:
        return data, None, f"{path} is not a verification report ({str(exc)[:200]})"


def write_record(path: Path, record: ReleaseRecord) -> None:
    """All of the record or nothing."""
    write_atomic(path, record.to_json())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# Sequencing ---------------------------------------------------------------------------------


def release(
    target: ReleaseTarget,
    *,
    image: str,
    report_path: Path,
    root: Path,
    engine,  # harness.docker.Engine, or tests.fakes.FakeEngine (not imported: `import harness.release` needs no docker)
    auth: AuthProvider | None = None,
    allow_dirty: bool = False,
    record_path: Path | None = None,
    push_verification_report: bool = True,
    progress: Callable[[str], None] = lambda message: None,
    on_layer: Callable[[Any], None] = lambda event: None,
    clock: Callable[[], str] = _now,
    registry_client: Callable[[str, Credentials | None], RegistryAPI] = RegistryClient,
    verified_report: bytes | None = None,
    signer=None,  # harness.attest.keys.Signer: signs the attestation; its public half also verifies the report
    report_key=None,  # harness.attest.keys.Verifier: verifies the report's signature (default: signer's public half)
    settings: Mapping[str, Any] | None = None,
    lock=None,  # harness.lock.Lock: today's lock
    push_timeout: float | None = None,
) -> ReleaseRecord:
    """Release the local image `image` (tag or ID) as `target`; see the module docstring for the rules.

    `registry_client(registry, credentials)` makes the client the registry is
    checked through (default: the real HTTP `RegistryClient`; unit tests pass
    an in-memory one). `push_timeout` is how long the engine's push may stay
    silent before it counts as stalled (default: the engine's call timeout, 120 s).
    """
    report_path = Path(report_path)
    image_id = engine.image_id(image)
    if image_id is None:
        raise ReleaseRefused([f"no local image {image} on the engine; build and verify it first ('mlrepro verify --json {report_path}')"])
    attrs = engine.image_attrs(image_id)
    labels = dict((attrs.get("Config") or {}).get("Labels") or {})
    report_key = report_key or (signer.verifier() if signer is not None else None)
    report_bytes, report, problem, trust = _trusted(report_path, verified_report, report_key)
    git = git_state(root)
    reasons = release_refusals(image_id=image_id, labels=labels, report=report, report_problem=problem,
                               report_path=str(report_path), git=git, allow_dirty=allow_dirty, settings=settings,
                               lock_sha256=lock.sha256 if lock is not None else None,
                               lock_versions=lock.versions if lock is not None else None,
                               lock_name=Path(lock.path).name if lock is not None else "the lock")
    if reasons:
        raise ReleaseRefused(reasons)
    assert report is not None and report_bytes is not None

    provider = auth or auth_for(target.registry, docker_config=engine.registry_credentials)
    credentials: Credentials | None = provider.credentials(target.registry)  # fresh for every release
    secrets = credentials.secrets() if credentials else ()
    auth_config = credentials.auth_config() if credentials else None
    client = registry_client(target.registry, credentials)

    if record_path is not None:
        journal.resolve(Path(record_path), client, target.registry, clock=clock, progress=progress, untag=engine.untag)
    progress(f"checking {target.ref} on the registry ({credentials.source if credentials else 'anonymous'} credentials)")
    remote = client.manifest(target.repository, target.tag)
    decision = decide_tag(target, image_id, remote)
    known = dict(  # the record's fields known before the registry answers
        registry=target.registry, repository=target.repository, tag=target.tag, image_id=image_id,
        report_sha256=hashlib.sha256(report_bytes).hexdigest(), lock_sha256=report.lock_sha256,
        git_revision=git.revision, git_dirty=bool(git.dirty) or git.revision is None, allow_dirty=allow_dirty,
        image_revision=labels.get(LABEL_REVISION), provenance=provenance(labels),
        credentials_source=credentials.source if credentials else "anonymous", report_trust=trust,
    )
    if decision == "push":
        if record_path is not None:
            made = engine.image_id(target.ref) != image_id  # the push will name the image REGISTRY/REPO:TAG
            journal.begin(Path(record_path), journal.Journal(target.registry, target.repository, target.tag, image_id, known, clock(),
                                                             local_tag=target.ref if made else None))
        digest = _push(engine, target, image_id, auth_config, secrets, progress, on_layer, push_timeout)
    else:
        digest = remote.digest
        progress(f"{target.ref} already points to this image ({digest}); nothing pushed (re-release is a no-op)")
    pushed = _confirm(client, target, image_id, digest)
    progress(f"confirmed on the registry: {target.ref} -> {digest}, config {image_id}")

    artifact = None
    if push_verification_report:
        artifact = _push_report(client, target, pushed, report_bytes, progress)
    sbom = attestation = None
    if signer is not None:
        sbom, attestation = _attest(client, target, pushed, image_id, attrs, report, report_bytes, signer, progress)

    record = ReleaseRecord(
        **known, digest=digest, reference=target.by_digest(digest), verification_artifact=artifact,
        already_released=decision == "already-released", released_at=clock(), attestation=attestation, sbom=sbom,
    )
    if record_path is not None:
        write_record(Path(record_path), record)
        journal.append_history(Path(record_path), {"event": "released", **json.loads(record.to_json())})
        journal.end(Path(record_path), target.registry)
        progress(f"release record written to {record_path} (history: {journal.history_path(Path(record_path))})")
    return record


def _trusted(report_path: Path, verified_report: bytes | None, key) -> tuple[bytes | None, Report | None, str | None, str | None]:
    """(bytes, Report, problem, trust): the report a release may rely on (see the module docstring), or why none."""
    if verified_report is not None:
        data, trust = verified_report, "verified-here"
    else:
        from harness.attest.reports import trusted_report

        data, problem = trusted_report(report_path, key)
        if data is None:
            return None, None, problem, None
        trust = f"signed:{key.keyid}"
    try:
        return data, Report.from_json(data.decode("utf-8")), None, trust
    except (ValueError, UnicodeDecodeError) as exc:
        return data, None, f"{report_path} is not a verification report ({str(exc)[:200]})", None


def _push(engine, target: ReleaseTarget, image_id: str, auth_config, secrets, progress, on_layer, push_timeout: float | None) -> str:
    from harness.docker.registry_stream import RegistryStreamError  # here: `import harness.release` needs no docker

    existed = engine.image_id(target.ref)
    engine.tag(image_id, target.ref)
    progress(f"pushing {target.ref} ({image_id[7:19]})")
    try:
        return engine.push(target.ref, auth_config=auth_config, on_layer=on_layer, redact=Redactor(secrets), idle_timeout=push_timeout)
    except RegistryStreamError as exc:  # the adapter's neutral failure, in the release's words
        raise from_stream_error(exc) from None
    finally:
        if existed != image_id:  # a name this release made; the image keeps its own tags
            engine.untag(target.ref)


def _confirm(client: RegistryAPI, target: ReleaseTarget, image_id: str, digest: str) -> Manifest:
    """The registry's own API must agree with what the push stream said."""
    pushed = client.manifest(target.repository, digest) if digest else None
    if pushed is None:
        raise RegistryError(f"the push reported {digest or 'no digest'} but {target.registry} has no such manifest in {target.repository}; nothing was released, retry")
    if pushed.config_digest != image_id:
        raise RegistryError(f"{target.by_digest(digest)} holds image {pushed.config_digest}, not the verified {image_id}; do not deploy it, investigate the registry")
    now = client.manifest_digest(target.repository, target.tag)
    if now != digest:
        raise RegistryError(f"{target.ref} points to {now}, not to the pushed {digest}: someone else pushed the tag meanwhile; investigate before deploying")
    return pushed


def _push_report(client: RegistryAPI, target: ReleaseTarget, image: Manifest, report_bytes: bytes, progress) -> dict[str, str]:
    return _push_artifact(client, target, image, "verification", report_bytes, progress, what="verification report",
                          build=lambda earlier: verification_manifest(report_bytes, image.descriptor(), earlier=earlier))


def _push_artifact(client: RegistryAPI, target: ReleaseTarget, image: Manifest, suffix: str, blob: bytes, progress, *, what: str,
                   build: Callable[[list], tuple[bytes, bytes]], same: Callable[[bytes], bool] | None = None) -> dict[str, str]:
    """Attach `blob` beside the image under its fallback tag, keeping whatever that artifact held before.

    Runs only after the push is confirmed, so it must never refuse: a later
    release of the same image with another report (a re-verification) adds
    its blob as one more layer (`build(earlier_layers)` makes the manifest).
    `same(existing_blob)` says an earlier layer already says the same thing
    (an ECDSA signature differs on every signing): then nothing is written.
    """
    tag = referrer_tag(image.digest, suffix)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    existing = client.manifest(target.repository, tag)
    earlier = _layers(existing)
    if any(layer.get("digest") == digest for layer in earlier) or (
            same is not None and any(same(client.blob(target.repository, layer["digest"]) or b"") for layer in earlier)):
        progress(f"{what} already beside the image ({target.repository}:{tag})")
        return {"tag": tag, "digest": existing.digest}
    body, config = build(earlier)
    client.upload_blob(target.repository, config, MEDIA_OCI_EMPTY)
    client.upload_blob(target.repository, blob, json.loads(body)["layers"][-1]["mediaType"])
    stored = client.put_manifest(target.repository, tag, body, MEDIA_OCI_MANIFEST)
    kept = f", after the {len(earlier)} earlier one(s) it keeps" if earlier else ""
    progress(f"{what} pushed beside the image as {target.repository}:{tag} ({stored[:19]}{kept})")
    return {"tag": tag, "digest": stored}


def _layers(manifest: Manifest | None) -> list[dict[str, Any]]:
    """The layers an artifact manifest holds (none for no manifest or one that is not ours)."""
    if manifest is None:
        return []
    try:
        layers = json.loads(manifest.body).get("layers") or []
    except (ValueError, AttributeError):
        return []
    return [layer for layer in layers if isinstance(layer, dict) and isinstance(layer.get("digest"), str)]


def _attest(client: RegistryAPI, target: ReleaseTarget, image: Manifest, image_id: str, attrs: Mapping[str, Any], report: Report,
            report_bytes: bytes, signer, progress) -> tuple[dict[str, str], dict[str, str]]:
    """The SBOM, then the signed attestation covering it and the report, beside the confirmed image."""
    from harness import __version__
    from harness.attest.check import MEDIA_ATTESTATION
    from harness.attest.dsse import MEDIA_DSSE, PAYLOAD_IN_TOTO, Envelope, sign_envelope, verify_envelope
    from harness.attest.sbom import MEDIA_CYCLONEDX, image_sbom, validate_sbom
    from harness.attest.statement import statement_bytes, verification_statement

    name = f"{target.registry}/{target.repository}"
    packages = report.environments.get("image", {}).get("packages", {})
    sbom_bytes = image_sbom(packages, image_name=name, image_id=image_id, image_digest=image.digest, tool_version=__version__)
    validate_sbom(sbom_bytes)
    sbom = {**_push_artifact(client, target, image, "sbom", sbom_bytes, progress, what="SBOM",
                             build=lambda earlier: artifact_manifest(sbom_bytes, image.descriptor(), media_type=MEDIA_CYCLONEDX,
                                                                     artifact_type=MEDIA_CYCLONEDX, title="sbom.cdx.json", earlier=earlier)),
            "sha256": hashlib.sha256(sbom_bytes).hexdigest()}

    platform = f"{attrs.get('Os') or 'linux'}/{attrs.get('Architecture') or 'unknown'}" + (f"/{attrs['Variant']}" if attrs.get("Variant") else "")
    statement = statement_bytes(verification_statement(
        subjects=[(name, image.digest)], report=report, report_sha256=hashlib.sha256(report_bytes).hexdigest(),
        sbom_sha256=sbom["sha256"], tool_version=__version__, platforms=[platform]))
    envelope = sign_envelope(PAYLOAD_IN_TOTO, statement, signer).to_json()
    verifier = signer.verifier()

    def same(existing: bytes) -> bool:  # the same statement, validly signed by this key
        try:
            found = Envelope.from_json(existing)
            return verify_envelope(found, verifier) == statement
        except (ValueError, MlreproError):
            return False

    attestation = {**_push_artifact(
        client, target, image, "att", envelope, progress, what="signed attestation", same=same,
        build=lambda earlier: artifact_manifest(envelope, image.descriptor(), media_type=MEDIA_DSSE, artifact_type=MEDIA_ATTESTATION,
                                                title="attestation.dsse.json", annotations={"io.mlrepro.keyid": signer.keyid},
                                                earlier=earlier)), "keyid": signer.keyid}
    return sbom, attestation


def release_project(config, target: ReleaseTarget, *, image: str | None = None, report_path: Path = Path("out/report.json"),
                    verify_first: bool = False, engine=None, progress: Callable[[str], None] = lambda message: None,
                    **options: Any) -> ReleaseRecord:
    """Release a configured project's image (the library call behind `mlrepro release`).

    The image is `image` when given, else the current tree's image (as `mlrepro
    verify` builds or reuses it). `verify_first` runs the verification and
    writes its report to `report_path` before releasing; the release is refused
    when it finds drift. `options` go to `release()`.
    """
    from harness.docker.engine import Engine
    from harness.lock import read_lock
    from harness.settings import verified_settings
    from harness.verify import prepare, verify

    engine = engine or Engine.connect()
    report_path = Path(report_path)
    if verify_first:
        report = verify(config, engine=engine, progress=progress)
        text = report.to_json()
        write_atomic(report_path, text)
        if options.get("signer") is not None:
            from harness.attest.reports import write_signature

            write_signature(report_path, text.encode(), options["signer"])
        progress(f"verification report written to {report_path} ({'reproducible' if report.reproducible else 'DRIFT'})")
        options["verified_report"] = text.encode()  # trusted: made here, not read back from a file someone could edit
        image = image or report.image.tag
    elif image is None:
        _, info = prepare(config, engine, progress=progress)
        image = info.tag
    if "settings" not in options:
        options["settings"] = verified_settings(config)
    if "lock" not in options:
        options["lock"] = read_lock(config.lock)
    return release(target, image=image, report_path=report_path, root=config.root, engine=engine, progress=progress, **options)


__all__ = ["read_report", "release", "release_project", "write_record"]
