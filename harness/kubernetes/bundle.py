"""Reading the verification Job's result out of a pod log. Pure.

The runner (`harness.kubernetes.runner`) prints the run as a reference bundle
(the one encoding, `harness.reference`) framed in base64 lines between
`MLREPRO-RESULT-BEGIN <sha256> <length>` and `MLREPRO-RESULT-END`, last on
stdout. This module takes the last frame in a log and refuses anything that
does not decode to exactly the stated length and sha256: a log cut by a
rotation, a copy missing its end, or an edited byte is one error naming the
checksum, never a run to compare. A checked frame is then decoded as any
reference bundle (`decode_reference`, its own payload checksum included).
A runner that failed printed `MLREPRO-RESULT-FAILED {...}` instead: that is
the step's failure, with the log's tail as evidence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from harness.errors import MlreproError, StepError, tail
from harness.kubernetes.runner import BEGIN, END, FAILED

_HEADER = re.compile(rf"^{BEGIN} ([0-9a-f]{{64}}) ([0-9]+)$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=]*$")


class ResultBundleError(MlreproError):
    """A pod log holds no intact result bundle: read the complete log again (kubectl logs) or rerun the Job."""


def _failure(lines: list[str], source: str) -> StepError | None:
    """The StepError of a failure line after the last frame, if the runner printed one."""
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index].strip()
        if line.startswith(BEGIN):
            return None
        if line.startswith(FAILED + " "):
            try:
                data = json.loads(line[len(FAILED) + 1:])
                step, code, last = str(data["step"]), data["exit_code"], str(data.get("last") or "no output")
            except (ValueError, KeyError, TypeError):
                step, code, last = "?", None, line[:200]
            why = "timed out and was killed" if code is None else f"exit {code}"
            what = "the environment probe" if step == "probe" else f"step '{step}'"
            return StepError(f"{source}: {what} failed in the verification Job's pod ({why}): "
                             f"{' '.join(last.splitlines()[-1:])[:240]}; no result to compare",
                             where="kubernetes", step=step, exit_code_seen=code, evidence=tail("\n".join(lines[:index]), 40))
    return None


def extract_bundle(log: str, *, source: str = "the log") -> bytes:
    """The bundle bytes of the last frame in `log`, checked against its length and sha256."""
    lines = [line.rstrip("\r") for line in log.split("\n")]
    failure = _failure(lines, source)
    if failure is not None:
        raise failure
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(BEGIN)]
    if not starts:
        raise ResultBundleError(f"{source}: expected a '{BEGIN} <sha256> <length>' line, found none: "
                                "these are not a finished verification Job's logs; wait for the Job and read its logs again")
    start = starts[-1]
    header = _HEADER.match(lines[start].strip())
    if header is None:
        raise ResultBundleError(f"{source}: expected '{BEGIN} <sha256> <length>', found {lines[start].strip()[:120]!r}: "
                                "the bundle's checksum line is damaged; read the complete log again")
    digest, length = header.group(1), int(header.group(2))
    stated = f"checksum sha256:{digest} ({length} bytes)"
    body: list[str] = []
    for line in lines[start + 1:]:
        if line.strip() == END:
            break
        if not _BASE64.match(line.strip()):
            raise ResultBundleError(f"{source}: the result bundle does not match its {stated}: a line is not base64 "
                                    f"({line.strip()[:40]!r}); the log was altered or interleaved; read it again")
        body.append(line.strip())
    else:
        raise ResultBundleError(f"{source}: the result bundle with {stated} is truncated (no {END} line): "
                                "expected the complete log; read it again (kubectl logs) or rerun the Job")
    text = "".join(body)
    try:
        bundle = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        bundle = None
    # Re-encoding must give the same text: base64 has spare bits an altered character can hide in.
    if bundle is None or base64.b64encode(bundle).decode("ascii") != text:
        raise ResultBundleError(f"{source}: the result bundle does not match its {stated}: its base64 is damaged; "
                                "the log was altered or truncated; read it again")
    found = hashlib.sha256(bundle).hexdigest()
    if len(bundle) != length or found != digest:
        raise ResultBundleError(f"{source}: the result bundle does not match its {stated}: found sha256:{found} "
                                f"({len(bundle)} bytes); the log was altered or truncated; read it again")
    return bundle


def read_bundle(log: str, *, source: str = "the log"):  # -> harness.reference.Reference
    """The run in the last intact frame of a pod log, as a `Reference` (where = image)."""
    from harness.reference import ReferenceBundleError, decode_reference  # lazily: harness.reference imports the runner

    bundle = extract_bundle(log, source=source)
    try:
        reference = decode_reference(bundle, source=source)
    except ReferenceBundleError as exc:
        raise ResultBundleError(str(exc)) from None
    if reference.where != "image" or not reference.image_id:
        raise ResultBundleError(f"{source}: expected the result of a verification Job (a run in the image, with its ID), "
                                f"found a run recorded on the {reference.where}; pass the verification Job's log")
    return reference


__all__ = ["ResultBundleError", "extract_bundle", "read_bundle"]
