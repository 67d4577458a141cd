"""A recorded reference: one side's run, kept in a file, to compare other runs against later.

Verification normally runs the host side next to the image; a reference lets
the host side be run once (on the machine that verified, or under other
library versions) and reused: `mlrepro record --out REF` writes one, and
`mlrepro verify --against REF` or `mlrepro kubernetes collect --against REF`
load it back as a `RunResult`, so `compare_runs` and the report never change.

The bundle is one canonical JSON file (sorted keys, no whitespace): the probe,
every configured artifact (bytes as base64, with its sha256), the lock's
sha256 and the image ID when it was recorded in the image. A checksum of the
payload sits beside it, so any changed byte is refused instead of compared;
the file's own sha256 names the reference in reports. Encoding and decoding
are pure (`encode_reference`, `decode_reference`); `record` is the sequencing.
The encoder itself is `harness.kubernetes.runner.encode_bundle`: that
stdlib-only file also runs in the verification Job's pod, which so prints
exactly this format (`harness.kubernetes.bundle` reads it back from the log).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import MlreproError
# The one encoding of a bundle lives in the stdlib-only runner, because that file is also run in a
# Kubernetes pod where mlrepro is not installed: a pod's run and a recorded run are the same format.
from harness.kubernetes.runner import FORMAT, SCHEMA, canonical as _canonical, encode_bundle

SIDES = ("host", "image")


class ReferenceBundleError(MlreproError):
    """A reference bundle is unreadable, altered, or belongs to another lock: record it again with `mlrepro record`."""


@dataclass(frozen=True)
class Reference:
    """One recorded run: what `RunResult` holds that a comparison reads, and where it came from."""

    where: str  # "host" or "image"
    lock_sha256: str
    image_id: str | None  # the image's ID when recorded in the image
    probe: Mapping[str, Any]
    files: Mapping[str, bytes]  # configured artifact path -> bytes
    #: sha256 of the encoded file (set by `decode_reference`/`encode`); not part of the encoding.
    sha256: str = field(default="", compare=False)

    def run_result(self):  # -> harness.sides.RunResult
        """The reference as the side of a comparison (`compare_runs` takes it like any run)."""
        from harness.sides.steps import RunResult

        return RunResult(where=f"reference ({self.where})", probe=dict(self.probe), files=dict(self.files), logs={})

    def require_lock(self, lock_sha256: str, *, source: str, lock_name: str = "the lock") -> None:
        """Refuse a reference recorded under another lock: its packages were never meant to match."""
        if self.lock_sha256 != lock_sha256:
            raise ReferenceBundleError(
                f"reference {source} (sha256 {self.sha256[:12]}) was recorded under lock sha256 {self.lock_sha256[:12]}, "
                f"but {lock_name} is sha256 {lock_sha256[:12]}: expected a reference of this lock; record one under it "
                "with 'mlrepro record --out FILE'")


def encode_reference(reference: Reference) -> bytes:
    """Pure: the bundle's bytes; the same reference always gives the same bytes (and so the same sha256)."""
    if reference.where not in SIDES:
        raise ValueError(f"Reference: where={reference.where!r}, expected one of {SIDES}")
    return encode_bundle(reference.where, reference.lock_sha256, reference.image_id, dict(reference.probe),
                         dict(reference.files))


def decode_reference(data: bytes, *, source: str = "reference") -> Reference:
    """Pure: the reference in `data`, or ReferenceBundleError naming what is wrong (one line)."""

    def bad(expected: str, found: object) -> ReferenceBundleError:
        shown = found if isinstance(found, str) else repr(found)
        return ReferenceBundleError(f"reference {source}: expected {expected}, found {shown[:160]}; "
                                    "it is corrupt or not a reference: record it again with 'mlrepro record --out FILE'")

    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad("a JSON reference bundle written by 'mlrepro record'", f"unreadable JSON ({str(exc)[:80]})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise bad(f"format {FORMAT!r}", document.get("format") if isinstance(document, dict) else type(document).__name__)
    if document.get("schema") != SCHEMA:
        raise bad(f"schema {SCHEMA}", document.get("schema"))
    payload, stated = document.get("payload"), document.get("payload_sha256")
    if not isinstance(payload, dict) or not isinstance(stated, str):
        raise bad("a payload and its payload_sha256", "neither" if payload is None else type(payload).__name__)
    try:
        actual = hashlib.sha256(_canonical(payload)).hexdigest()
    except ValueError:
        raise bad("a payload of plain JSON values", "non-finite numbers") from None
    if actual != stated:
        raise bad(f"payload checksum sha256 {stated[:16]}", f"sha256 {actual[:16]} (altered)")
    where, lock, image_id, probe, artifacts = (payload.get(k) for k in ("where", "lock_sha256", "image_id", "probe", "artifacts"))
    if where not in SIDES:
        raise bad("where = host or image", where)
    if not isinstance(lock, str) or len(lock) != 64:
        raise bad("a lock_sha256 of 64 hex digits", lock)
    if image_id is not None and not isinstance(image_id, str):
        raise bad("image_id: a string or null", image_id)
    if not isinstance(probe, dict) or not isinstance(artifacts, dict):
        raise bad("a probe object and an artifacts object", type(probe).__name__)
    files: dict[str, bytes] = {}
    for path, entry in artifacts.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("base64"), str):
            raise bad(f"artifact {path!r} with base64 bytes", entry)
        try:
            content = base64.b64decode(entry["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise bad(f"artifact {path!r} as base64", "invalid base64") from None
        if hashlib.sha256(content).hexdigest() != entry.get("sha256") or len(content) != entry.get("size"):
            raise bad(f"artifact {path!r} with sha256 {str(entry.get('sha256'))[:16]}", "other bytes")
        files[path] = content
    if _canonical(document) + b"\n" != data:  # the same content written otherwise: its sha256 would not name it
        raise bad("the exact bytes 'mlrepro record' writes (canonical JSON, one line)", "the content re-formatted or edited")
    return Reference(where=where, lock_sha256=lock, image_id=image_id, probe=probe, files=files,
                     sha256=hashlib.sha256(data).hexdigest())


def load_reference(path: Path) -> Reference:
    """Read and decode the bundle at `path` (ReferenceBundleError when missing, unreadable or corrupt)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ReferenceBundleError(f"reference {path}: expected a file written by 'mlrepro record', found none; "
                                   f"record one with 'mlrepro record --out {path}'") from None
    except OSError as exc:
        raise ReferenceBundleError(f"reference {path}: expected a readable file, found {exc.strerror or exc}; check the path") from None
    return decode_reference(data, source=str(path))


def from_run(run, *, where: str, lock_sha256: str, image_id: str | None, artifact_paths: tuple[str, ...]) -> Reference:
    """A reference of `run` (a RunResult) keeping the configured artifacts; every one must be there."""
    missing = [path for path in artifact_paths if path not in run.files]
    if missing:
        raise MlreproError(f"the {where} run wrote no {missing[0]}: expected every configured artifact "
                           f"({', '.join(artifact_paths)}) in a reference; check the steps' outputs")
    return Reference(where=where, lock_sha256=lock_sha256, image_id=image_id, probe=dict(run.probe),
                     files={path: run.files[path] for path in artifact_paths})


def record(config, *, side: str = "host", python: str | None = None, engine=None,
           progress: Callable[[str], None] = print) -> Reference:
    """Run the configured steps once on `side` (the host with `python`, or the image) and keep them as a reference.

    `engine` is a `harness.docker.Engine` (image side only; connected when None).
    """
    from harness.lock import read_lock

    if side not in SIDES:
        raise MlreproError(f"side={side!r}: expected one of {', '.join(SIDES)}")
    config.require_steps(), config.require_artifacts()  # a reference of no output proves nothing
    lock = read_lock(config.lock)
    image_id = None
    if side == "image":
        from harness.docker import Engine
        from harness.sides import run_in_image
        from harness.verify import prepare

        engine = engine or Engine.connect()
        _, image = prepare(config, engine, progress=progress)
        run, image_id = run_in_image(engine, config, image.tag, progress=progress), image.image_id
    else:
        from harness.sides import run_on_host

        run = run_on_host(config, python, progress=progress)
    reference = from_run(run, where=side, lock_sha256=lock.sha256, image_id=image_id,
                         artifact_paths=tuple(rule.path for rule in config.artifacts))
    return decode_reference(encode_reference(reference))  # with its sha256, exactly as a reader will see it


__all__ = ["FORMAT", "SCHEMA", "SIDES", "Reference", "ReferenceBundleError", "decode_reference", "encode_reference",
           "from_run", "load_reference", "record"]
