"""The in-toto Statement v1 of one verification: which image it is about, and what the verification found. Pure.

Spec: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md.
The subjects name the artifacts by digest (the image, typically); the
predicate (type PREDICATE_TYPE) carries the verdict and what it rests on:
the lock, the image and its base, the settings' hash, the report's and the
SBOM's hashes, each artifact's hashes on both sides, the tolerances, and a
small summary of both environments (no package list: the SBOM holds it).

`statement_bytes` is the canonical serialisation that gets signed;
`parse_statement` is its reader on the checking side, refusing anything that
is not a verification statement of this tool as CheckFailed.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.attest.dsse import strict_json
from harness.attest.errors import CheckFailed
from harness.settings import settings_sha256

if TYPE_CHECKING:
    from harness.report.model import Report

__all__ = [
    "MEDIA_CYCLONEDX",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "parse_statement",
    "statement_bytes",
    "subject_digests",
    "verification_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlrepro.dev/attestations/verification/v1"
MEDIA_CYCLONEDX = "application/vnd.cyclonedx+json"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_REFUSED = "it is not an mlrepro verification attestation; attach one with `mlrepro release --sign-key`"


def _subject(name: Any, digest: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"statement subject: expected a non-empty name, found {name!r}")
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise ValueError(f"statement subject {name!r}: expected a digest 'sha256:' + 64 lowercase hex digits, found {digest!r}")
    return {"name": name, "digest": {"sha256": match.group(1)}}


def _hex64(value: Any, what: str) -> str:
    if not isinstance(value, str) or _HEX64.fullmatch(value) is None:
        raise ValueError(f"statement: expected {what} as 64 lowercase hex digits (no 'sha256:' prefix), found {value!r}")
    return value


def _artifact_hashes(details: Mapping[str, Any]) -> tuple[str | None, str | None]:
    hashes = details.get("sha256")
    if not isinstance(hashes, Mapping):
        return None, None
    return hashes.get("image"), hashes.get("host")


def _tolerances(settings: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    if not settings:
        return {}
    return {rule["path"]: {"atol": float(rule["atol"]), "rtol": float(rule["rtol"])}
            for rule in settings.get("artifacts", ())}


def _environment(probe: Mapping[str, Any]) -> dict[str, Any]:
    """What one side computed with, without the package list (the SBOM and the report hold it)."""
    python = probe.get("python") or {}
    system = probe.get("platform") or {}
    pools = probe.get("threadpools")
    return {
        "python": {"version": python.get("version"), "implementation": python.get("implementation")},
        "platform": {"machine": system.get("machine"), "system": system.get("system")},
        # None: threadpoolctl was not there to ask (unknown), [] : no native pool loaded.
        "threadpools": None if pools is None else [
            {key: pool.get(key) for key in ("user_api", "internal_api", "num_threads", "version")} for pool in pools
        ],
        "env": dict(probe.get("env") or {}),
    }


def verification_statement(*, subjects: Sequence[tuple[str, str]], report: "Report", report_sha256: str,
                           sbom_sha256: str | None, tool_version: str, platforms: Sequence[str]) -> dict[str, Any]:
    """The Statement (a JSON-safe dict) saying what `report` found about the subjects.

    `subjects` are (name, "sha256:<hex>") pairs, e.g. the image reference and
    its digest; names must be unique. `report_sha256` and `sbom_sha256` are
    bare hex digests of the files as attached. A malformed digest or subject
    is a ValueError: a statement is never written with a wrong one.
    """
    described = [_subject(*pair) if isinstance(pair, (tuple, list)) and len(pair) == 2 else _subject(pair, None)
                 for pair in subjects]
    if not described:
        raise ValueError("statement: expected at least one subject (the image), found none")
    names = [s["name"] for s in described]
    if len(set(names)) != len(names):
        raise ValueError(f"statement: expected unique subject names, found {sorted(n for n in set(names) if names.count(n) > 1)}")
    if isinstance(platforms, str) or not all(isinstance(p, str) for p in platforms):
        raise ValueError(f"statement: expected platforms as a list of strings such as 'linux/amd64', found {platforms!r}")
    verdict_line = report.verdict()
    image = report.image
    predicate = {
        "verdict": verdict_line.split(" ", 1)[0].rstrip(":"),
        "verdict_line": verdict_line,
        "reproducible": report.reproducible,
        "lock_sha256": report.lock_sha256,
        "image": {"id": image.image_id, "content_hash": image.content_hash,
                  "base_image": image.base_image, "base_image_id": image.base_image_id},
        "settings_sha256": None if report.settings is None else settings_sha256(report.settings),
        "report_sha256": _hex64(report_sha256, "report_sha256"),
        "sbom": None if sbom_sha256 is None else {"mediaType": MEDIA_CYCLONEDX, "sha256": _hex64(sbom_sha256, "sbom_sha256")},
        "artifacts": [
            {"path": a.path, "mode": a.mode, "status": a.status,
             "image_sha256": _artifact_hashes(a.details)[0], "host_sha256": _artifact_hashes(a.details)[1]}
            for a in report.artifacts
        ],
        "tolerances": _tolerances(report.settings),
        "environments": {side: _environment(probe) for side, probe in sorted(report.environments.items())},
        "platforms": list(platforms),
        "reference_sha256": report.reference_sha256,
        "tool": {"name": "mlrepro", "version": tool_version},
    }
    return {"_type": STATEMENT_TYPE, "subject": described, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The canonical JSON of a statement (sorted keys, compact, ASCII, no NaN): what gets signed."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def _refuse(found: str) -> CheckFailed:
    return CheckFailed(f"the attestation's statement: expected an in-toto Statement v1 of type {PREDICATE_TYPE}, "
                       f"found {found}; {_REFUSED}")


def parse_statement(payload: bytes) -> dict[str, Any]:
    """The statement in a verified envelope's payload; CheckFailed unless it is a verification statement of this tool."""
    try:
        statement = strict_json(payload)
    except ValueError as exc:
        raise _refuse(str(exc)) from None
    if not isinstance(statement, dict):
        raise _refuse(f"a JSON {type(statement).__name__}, not an object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise _refuse(f"_type {_short(statement.get('_type'))}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise _refuse(f"predicateType {_short(statement.get('predicateType'))}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise _refuse("no subject" if subjects in (None, []) else f"subject {_short(subjects)}, not a list")
    for index, subject in enumerate(subjects):
        digest = subject.get("digest") if isinstance(subject, dict) else None
        value = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(subject, dict) or not isinstance(subject.get("name"), str):
            raise _refuse(f"subject {index} without a name")
        if not isinstance(value, str) or _HEX64.fullmatch(value) is None:
            raise _refuse(f"subject {index} without a sha256 digest of 64 lowercase hex digits (found {_short(value)})")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or not isinstance(predicate.get("verdict"), str):
        raise _refuse("no predicate with a verdict")
    return statement


def _short(value: Any, limit: int = 80) -> str:
    """An untrusted value for a one-line message: repr, one line, cut short."""
    text = " ".join(repr(value).splitlines())
    return text if len(text) <= limit else text[:limit] + "..."


def subject_digests(statement: Mapping[str, Any]) -> set[str]:
    """The subjects' digests as "sha256:<hex>" (of a statement parse_statement accepted)."""
    return {"sha256:" + subject["digest"]["sha256"] for subject in statement["subject"]}
