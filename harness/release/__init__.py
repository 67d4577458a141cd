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

The decisions (`release_refusals`, `decide_tag`, `verification_manifest`) are
pure and unit-tested; `release()` only sequences them with the engine and the
registry.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import MlreproError
from harness.files import write_atomic
from harness.release.registry import (
    MEDIA_DOCKER_LIST,
    MEDIA_OCI_EMPTY,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    MEDIA_VERIFICATION_REPORT,
    AuthProvider,
    Credentials,
    Manifest,
    RegistryClient,
    RegistryError,
    auth_for,
)
from harness.report import Report

RECORD_SCHEMA = 1
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_LOCK = "io.mlrepro.lock-sha256"
#: Labels copied into the release record as the image's provenance.
PROVENANCE_PREFIXES = ("org.opencontainers.image.", "io.mlrepro.")

_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ReleaseRefused(MlreproError):
    """The release was refused before anything was pushed: each reason says what to do (verify, commit, or choose a tag)."""

    def __init__(self, reasons: tuple[str, ...] | list[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("release refused: " + "; ".join(self.reasons))


class TagCollision(ReleaseRefused):
    """The remote tag already names a different image: released tags never move; release under a new tag."""

    def __init__(self, ref: str, remote: str, local_image_id: str, remote_config: str | None) -> None:
        self.ref, self.remote, self.local_image_id, self.remote_config = ref, remote, local_image_id, remote_config
        found = f"image {remote_config}" if remote_config else "an index/list, not a single image"
        super().__init__([
            f"{ref} already points to {remote} ({found}), not to the image being released ({local_image_id}); "
            "released tags never move: release under a new tag"
        ])


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
class GitState:
    revision: str | None  # None: not a git repository (or git missing)
    dirty: tuple[str, ...] = ()  # `git status --porcelain` paths: modified, staged or untracked


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

    def to_json(self) -> str:
        data = asdict(self)
        data["provenance"] = dict(self.provenance)
        data["verification_artifact"] = dict(self.verification_artifact) if self.verification_artifact else None
        return json.dumps(data, sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ReleaseRecord":
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"release record: expected schema {RECORD_SCHEMA}, found {data.get('schema') if isinstance(data, dict) else data!r}")
        return cls(**data)


# Pure policy --------------------------------------------------------------------------------


def release_refusals(*, image_id: str, labels: Mapping[str, str], report: Report | None, report_problem: str | None,
                     report_path: str, git: GitState, allow_dirty: bool) -> tuple[str, ...]:
    """Every reason not to release this image (empty: go ahead). Pure."""
    reasons: list[str] = []
    if report is None:
        reasons.append(f"{report_problem or f'no verification report at {report_path}'}; "
                       f"run 'mlrepro verify --json {report_path}' (or release with --verify)")
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


def decide_tag(target: ReleaseTarget, image_id: str, remote: Manifest | None) -> str:
    """'push' (tag free) or 'already-released' (tag names this image); TagCollision otherwise. Pure.

    An image's ID is the digest of its config, so the remote manifest's config
    digest says whether the tag already names this exact image, without pushing.
    """
    if remote is None:
        return "push"
    if remote.media_type in (MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX) or remote.config_digest != image_id:
        raise TagCollision(target.ref, remote.digest, image_id, None if remote.media_type in (MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX) else remote.config_digest)
    return "already-released"


def verification_tag(image_digest: str) -> str:
    """The tag of the report artifact: named by the image's digest (cosign's convention), so a tag move cannot orphan it."""
    return image_digest.replace(":", "-") + ".verification"


def verification_manifest(report_bytes: bytes, subject: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """Pure: (manifest bytes, config bytes) of the OCI artifact holding the report; the same inputs give the same digest."""
    config = b"{}"
    report_sha = hashlib.sha256(report_bytes).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "artifactType": MEDIA_VERIFICATION_REPORT,
        "config": {"mediaType": MEDIA_OCI_EMPTY, "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{
            "mediaType": MEDIA_VERIFICATION_REPORT,
            "digest": "sha256:" + report_sha,
            "size": len(report_bytes),
            "annotations": {"org.opencontainers.image.title": "report.json"},
        }],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
        "annotations": {"io.mlrepro.report-sha256": report_sha},
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode(), config


def provenance(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(labels.items()) if k.startswith(PROVENANCE_PREFIXES)}


# Reading the facts ----------------------------------------------------------------------------


def read_git_state(root: Path) -> GitState:
    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = git("rev-parse", "--verify", "HEAD")
    if head is None or head.returncode != 0:
        return GitState(None)
    status = git("status", "--porcelain", "--untracked-files=normal")
    dirty = tuple(line[3:] for line in (status.stdout.splitlines() if status and status.returncode == 0 else ["?? (git status failed)"]) if line.strip())
    return GitState(head.stdout.strip(), dirty)


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
    engine,  # harness.docker.engine.Engine (not imported here: the policy above stays importable without docker)
    auth: AuthProvider | None = None,
    allow_dirty: bool = False,
    record_path: Path | None = None,
    push_verification_report: bool = True,
    progress: Callable[[str], None] = lambda message: None,
    on_layer: Callable[[Any], None] = lambda event: None,
    clock: Callable[[], str] = _now,
) -> ReleaseRecord:
    """Release the local image `image` (tag or ID) as `target`; see the module docstring for the rules."""
    report_path = Path(report_path)
    image_id = engine.image_id(image)
    if image_id is None:
        raise ReleaseRefused([f"no local image {image} on the engine; build and verify it first ('mlrepro verify --json {report_path}')"])
    labels = dict((engine.image_attrs(image_id).get("Config") or {}).get("Labels") or {})
    report_bytes, report, problem = read_report(report_path)
    git = read_git_state(root)
    reasons = release_refusals(image_id=image_id, labels=labels, report=report, report_problem=problem,
                               report_path=str(report_path), git=git, allow_dirty=allow_dirty)
    if reasons:
        raise ReleaseRefused(reasons)
    assert report is not None and report_bytes is not None

    provider = auth or auth_for(target.registry, docker_config=engine.registry_credentials)
    credentials: Credentials | None = provider.credentials(target.registry)  # fresh for every release
    secrets = credentials.secrets() if credentials else ()
    auth_config = credentials.auth_config() if credentials else None
    client = RegistryClient(target.registry, credentials)

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
    existed = engine.image_id(target.ref)
    engine.tag(image_id, target.ref)
    progress(f"pushing {target.ref} ({image_id[7:19]})")
    try:
        return engine.push(target.ref, auth_config=auth_config, on_layer=on_layer, secrets=secrets)
    finally:
        if existed != image_id:  # a name this release made; the image keeps its own tags
            engine.untag(target.ref)


def _confirm(client: RegistryClient, target: ReleaseTarget, image_id: str, digest: str) -> Manifest:
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


def _push_report(client: RegistryClient, target: ReleaseTarget, image: Manifest, report_bytes: bytes, progress) -> dict[str, str]:
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
        _write_text(report_path, report.to_json())
        progress(f"verification report written to {report_path} ({'reproducible' if report.reproducible else 'DRIFT'})")
        image = image or report.image.tag
    elif image is None:
        _, info = prepare(config, engine, progress=progress)
        image = info.tag
    return release(target, image=image, report_path=report_path, root=config.root, engine=engine, progress=progress, **options)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = [
    "GitState", "ReleaseRecord", "ReleaseRefused", "ReleaseTarget", "TagCollision", "decide_tag", "provenance",
    "read_git_state", "read_report", "release", "release_project", "release_refusals", "verification_manifest",
    "verification_tag", "write_record",
]
