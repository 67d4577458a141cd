"""Release: push exactly the verified image, refer to it by digest, never move a released tag.

`release()` refuses (ReleaseRefused, nothing contacted) unless

- a passing verification report exists for exactly this image ID (the report
  `mlrepro verify --json` wrote; `release_project(verify_first=True)` runs the
  verification first and writes it),
- the git tree is clean and the image was built from its HEAD
  (`allow_dirty=True` overrides both, and the record says so);

then it refuses (TagCollision) when the remote tag already names a different
image, does nothing when it already names this one (re-release is a no-op), and
otherwise tags and pushes through the engine (every stream line scanned), and
confirms through the registry's own API that the digest exists, that its config
is this image ID, and that the tag points to it. Only then is the
`ReleaseRecord` written: a push that fails at any point leaves no record.

Provenance: the image keeps the OCI labels set at build time (source, revision,
created, lock sha256). The verification report cannot be a label: labels are
part of the image config, so adding one after verification would change the
image ID and push bytes that were never verified. The report is instead pushed
beside the image as a small OCI artifact (tag `sha256-<hex>.verification`,
`subject` = the image manifest, so registries with the OCI 1.1 referrers API
list it under the image), and its sha256 is in the release record.

The decisions are pure (`harness.release.policy`); this module only sequences
them with the engine (`harness.docker.Engine`, or `tests.fakes.FakeEngine`)
and the registry (`RegistryAPI`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any, Callable

from harness.files import write_atomic
from harness.git import state as git_state
from harness.release.auth import AuthProvider, auth_for
from harness.release.client import RegistryAPI, RegistryClient
from harness.release.errors import RegistryError, ReleaseRefused, from_stream_error
from harness.release.manifest import MEDIA_OCI_EMPTY, MEDIA_OCI_MANIFEST, MEDIA_VERIFICATION_REPORT, Manifest
from harness.release.policy import (
    LABEL_REVISION,
    ReleaseRecord,
    ReleaseTarget,
    decide_tag,
    provenance,
    release_refusals,
    verification_manifest,
    verification_tag,
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
) -> ReleaseRecord:
    """Release the local image `image` (tag or ID) as `target`; see the module docstring for the rules.

    `registry_client(registry, credentials)` makes the client the registry is
    checked through (default: the real HTTP `RegistryClient`; unit tests pass
    an in-memory one).
    """
    report_path = Path(report_path)
    image_id = engine.image_id(image)
    if image_id is None:
        raise ReleaseRefused([f"no local image {image} on the engine; build and verify it first ('mlrepro verify --json {report_path}')"])
    labels = dict((engine.image_attrs(image_id).get("Config") or {}).get("Labels") or {})
    report_bytes, report, problem = read_report(report_path)
    git = git_state(root)
    reasons = release_refusals(image_id=image_id, labels=labels, report=report, report_problem=problem,
                               report_path=str(report_path), git=git, allow_dirty=allow_dirty)
    if reasons:
        raise ReleaseRefused(reasons)
    assert report is not None and report_bytes is not None

    provider = auth or auth_for(target.registry, docker_config=engine.registry_credentials)
    credentials: Credentials | None = provider.credentials(target.registry)  # fresh for every release
    secrets = credentials.secrets() if credentials else ()
    auth_config = credentials.auth_config() if credentials else None
    client = registry_client(target.registry, credentials)

    progress(f"checking {target.ref} on the registry ({credentials.source if credentials else 'anonymous'} credentials)")
    remote = client.manifest(target.repository, target.tag)
    decision = decide_tag(target, image_id, remote)
    if decision == "push":
        digest = _push(engine, target, image_id, auth_config, secrets, progress, on_layer)
    else:
        digest = remote.digest
        progress(f"{target.ref} already points to this image ({digest}); nothing pushed (re-release is a no-op)")
    pushed = _confirm(client, target, image_id, digest)
    progress(f"confirmed on the registry: {target.ref} -> {digest}, config {image_id}")

    artifact = None
    if push_verification_report:
        artifact = _push_report(client, target, pushed, report_bytes, progress)

    record = ReleaseRecord(
        registry=target.registry, repository=target.repository, tag=target.tag, digest=digest,
        reference=target.by_digest(digest), image_id=image_id,
        report_sha256=hashlib.sha256(report_bytes).hexdigest(), lock_sha256=report.lock_sha256,
        git_revision=git.revision, git_dirty=bool(git.dirty) or git.revision is None, allow_dirty=allow_dirty,
        image_revision=labels.get(LABEL_REVISION), provenance=provenance(labels), verification_artifact=artifact,
        already_released=decision == "already-released",
        credentials_source=credentials.source if credentials else "anonymous", released_at=clock(),
    )
    if record_path is not None:
        write_record(Path(record_path), record)
        progress(f"release record written to {record_path}")
    return record


def _push(engine, target: ReleaseTarget, image_id: str, auth_config, secrets, progress, on_layer) -> str:
    from harness.docker.registry_stream import RegistryStreamError  # here: `import harness.release` needs no docker

    existed = engine.image_id(target.ref)
    engine.tag(image_id, target.ref)
    progress(f"pushing {target.ref} ({image_id[7:19]})")
    try:
        return engine.push(target.ref, auth_config=auth_config, on_layer=on_layer, redact=Redactor(secrets))
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
    tag = verification_tag(image.digest)
    body, config = verification_manifest(report_bytes, image.descriptor())
    expected = "sha256:" + hashlib.sha256(body).hexdigest()
    existing = client.manifest_digest(target.repository, tag)
    if existing == expected:
        progress(f"verification report already beside the image ({target.repository}:{tag})")
        return {"tag": tag, "digest": expected}
    if existing is not None:
        raise ReleaseRefused([
            f"{target.registry}/{target.repository}:{tag} already holds a different verification report ({existing}) for this image; "
            "it is never replaced: release with the report that was released first"
        ])
    client.upload_blob(target.repository, config, MEDIA_OCI_EMPTY)
    client.upload_blob(target.repository, report_bytes, MEDIA_VERIFICATION_REPORT)
    digest = client.put_manifest(target.repository, tag, body, MEDIA_OCI_MANIFEST)
    progress(f"verification report pushed beside the image as {target.repository}:{tag} ({digest[:19]})")
    return {"tag": tag, "digest": digest}


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
    from harness.verify import prepare, verify

    engine = engine or Engine.connect()
    report_path = Path(report_path)
    if verify_first:
        report = verify(config, engine=engine, progress=progress)
        write_atomic(report_path, report.to_json())
        progress(f"verification report written to {report_path} ({'reproducible' if report.reproducible else 'DRIFT'})")
        image = image or report.image.tag
    elif image is None:
        _, info = prepare(config, engine, progress=progress)
        image = info.tag
    return release(target, image=image, report_path=report_path, root=config.root, engine=engine, progress=progress, **options)


__all__ = ["read_report", "release", "release_project", "write_record"]
