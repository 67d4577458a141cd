"""What can go wrong with keys, attestations and their check.

Tree::

    MlreproError                exit 2
    └── AttestError             a key or an attestation input is unusable (bad PEM, open permissions, missing extra)
    CheckFailed                 exit 1: the image does not carry a valid proof (`mlrepro check`)
    └── SignatureInvalid        no signature on the envelope verifies with the given key

A key's bytes never appear in any message: errors name the file and what to do.
"""

from __future__ import annotations

from harness.errors import EXIT_DRIFT, MlreproError


class AttestError(MlreproError):
    """A key or attestation input is unusable: the message names the file, what was expected and the fix."""


class CheckFailed(MlreproError):
    """The proof attached to an image does not hold (wrong subject, not reproducible, a policy unmet): exit 1."""

    exit_code = EXIT_DRIFT


class SignatureInvalid(CheckFailed):
    """No signature of the DSSE envelope verifies with the given public key (tampered, or signed by another key)."""


__all__ = ["AttestError", "CheckFailed", "SignatureInvalid"]
