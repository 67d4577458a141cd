"""The proof that travels with the image: DSSE-signed in-toto attestations, a CycloneDX SBOM, and their check.

`keys` (PEM keys: ECDSA P-256 or Ed25519, via `cryptography`), `dsse` (the
envelope and its pre-authentication encoding), `statement` (the in-toto
Statement v1 of a verification), `sbom` (CycloneDX from the image's own
installed distributions, cross-checked with the lock), `errors`.
The `attest` extra brings the libraries: pip install 'mlrepro[attest]'.
"""

from harness.attest.errors import AttestError, CheckFailed, SignatureInvalid

__all__ = ["AttestError", "CheckFailed", "SignatureInvalid"]
