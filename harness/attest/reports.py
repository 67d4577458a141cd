"""A signed verification report: the report file and a DSSE envelope beside it.

`mlrepro verify --json R --sign-key KEY.pem` writes R, then `R.dsse` (the
envelope's payload is R's exact bytes, payload type the report's media type).
`mlrepro release` trusts a report file only this way (or when it verified the
image itself, `--verify`): anyone who can write `out/report.json` could
otherwise mark any image as verified. `trusted_report` says which report
bytes a release may use, or why none.
"""

from __future__ import annotations

from pathlib import Path

from harness.attest.dsse import Envelope, sign_envelope, verify_envelope
from harness.attest.errors import SignatureInvalid
from harness.files import write_atomic
from harness.release.manifest import MEDIA_VERIFICATION_REPORT as MEDIA_REPORT  # its payload type: its media type as an artifact
SUFFIX = ".dsse"


def signature_path(report_path: Path) -> Path:
    """Where the signature of `report_path` lives: beside it, `<name>.dsse`."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.name + SUFFIX)


def write_signature(report_path: Path, report_bytes: bytes, signer) -> Path:
    """Sign the report's bytes and write the envelope beside it (atomically); its path."""
    envelope = sign_envelope(MEDIA_REPORT, report_bytes, signer)
    path = signature_path(report_path)
    write_atomic(path, envelope.to_json().decode())
    return path


def trusted_report(report_path: Path, verifier) -> tuple[bytes | None, str | None]:
    """(report bytes, None) when `report_path` carries a valid signature by `verifier`'s key, else (None, why not)."""
    report_path = Path(report_path)
    sig = signature_path(report_path)
    if verifier is None:
        return None, (f"the verification report {report_path} is a loose file (anyone who can write it could mark any image verified): "
                      "release with --verify (verify and release in one process), or sign it ('mlrepro verify --json "
                      f"{report_path} --sign-key KEY.pem') and release with the same --sign-key")
    try:
        data = report_path.read_bytes()
    except FileNotFoundError:
        return None, f"no verification report at {report_path}"
    except OSError as exc:
        return None, f"cannot read the verification report {report_path} ({exc.strerror or exc})"
    try:
        envelope = Envelope.from_json(sig.read_bytes())
    except FileNotFoundError:
        return None, (f"{report_path} is not signed (no {sig.name} beside it); sign it with 'mlrepro verify --json {report_path} "
                      "--sign-key KEY.pem', or release with --verify")
    except (OSError, ValueError) as exc:
        return None, f"the report signature {sig} is unusable ({str(exc)[:200]}); verify again with --sign-key"
    try:
        payload = verify_envelope(envelope, verifier)
    except SignatureInvalid as exc:
        return None, f"the report signature {sig} does not verify: {exc}"
    if envelope.payload_type != MEDIA_REPORT:
        return None, f"the signature {sig} signs a {envelope.payload_type!r}, not a verification report; verify again with --sign-key"
    if payload != data:
        return None, (f"the signature {sig} is valid but for other bytes than {report_path}: the report was changed after it was "
                      "signed; verify again with --sign-key")
    return data, None


__all__ = ["MEDIA_REPORT", "SUFFIX", "signature_path", "trusted_report", "write_signature"]
