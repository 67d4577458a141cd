"""Signing keys from PEM files: ECDSA P-256 (SHA-256, DER signatures) or Ed25519 (raw 64-byte signatures).

These are the two algorithms cosign and sigstore's DSSE tooling verify, so an
attestation signed here can be checked by them with the `.pub` file.

A private key file is refused when its permission bits give the group or
others any access: the mode is read with `os.stat` before the file is opened,
so an exposed key is reported without its bytes being read. An encrypted key
takes its password from an environment variable (never from the command
line, where `ps` would show it). No message ever holds key material or the
password: errors name the file, what was expected, what was found and the fix.

`cryptography` is an optional dependency (the `attest` extra); it is imported
here at module level but its absence only surfaces when a key is loaded or
made, as an AttestError naming the extra.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.attest.errors import AttestError

try:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
except ImportError:  # the `attest` extra is not installed: loaders say so
    _CRYPTOGRAPHY = False
else:
    _CRYPTOGRAPHY = True

__all__ = [
    "ALGORITHMS",
    "ECDSA_P256",
    "ED25519",
    "PASSWORD_ENV",
    "Signer",
    "Verifier",
    "generate_key",
    "keyid",
    "load_signer",
    "load_verifier",
]

ECDSA_P256 = "ecdsa-p256-sha256"
ED25519 = "ed25519"
ALGORITHMS = (ECDSA_P256, ED25519)
# Short spellings accepted by generate_key (`mlrepro key generate --algorithm ecdsa-p256`).
_ALIASES = {"ecdsa-p256": ECDSA_P256, "p256": ECDSA_P256}
#: The environment variable holding an encrypted private key's password.
PASSWORD_ENV = "MLREPRO_SIGN_KEY_PASSWORD"

# A PEM key is a few hundred bytes; anything this large is not one (and is not read whole).
_MAX_KEY_FILE = 64 * 1024
_GENERATE_HINT = "make one with `mlrepro key generate PATH`"


def _require_cryptography() -> None:
    if not _CRYPTOGRAPHY:
        raise AttestError("signing and verifying attestations needs the 'cryptography' package: pip install 'mlrepro[attest]'")


@dataclass(frozen=True)
class Verifier:
    """The public half of a key: checks signatures, never raises for a bad one."""

    keyid: str
    algorithm: str
    _public: Any = field(repr=False, compare=False)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when `signature` is this key's over `data`; False for any bad or malformed signature."""
        if not isinstance(signature, (bytes, bytearray)) or not isinstance(data, (bytes, bytearray)):
            return False
        try:
            if self.algorithm == ECDSA_P256:
                self._public.verify(bytes(signature), bytes(data), ec.ECDSA(hashes.SHA256()))
            else:
                self._public.verify(bytes(signature), bytes(data))
        except (InvalidSignature, ValueError):
            return False
        return True

    def public_pem(self) -> bytes:
        """The key as a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), what cosign reads."""
        return self._public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Signer:
    """A private key able to sign; its repr and equality never touch the key itself."""

    keyid: str
    algorithm: str
    _private: Any = field(repr=False, compare=False)

    def sign(self, data: bytes) -> bytes:
        """The signature of `data`: DER-encoded ECDSA with SHA-256, or a raw 64-byte Ed25519 signature."""
        if self.algorithm == ECDSA_P256:
            return self._private.sign(bytes(data), ec.ECDSA(hashes.SHA256()))
        return self._private.sign(bytes(data))

    def verifier(self) -> Verifier:
        """The public half, for checking what this signer signed."""
        return Verifier(keyid=self.keyid, algorithm=self.algorithm, _public=self._private.public_key())


def keyid(public_key: Any) -> str:
    """"sha256:" + the hex sha256 of the key's SubjectPublicKeyInfo DER encoding (the same for both halves' files)."""
    _require_cryptography()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


# ------------------------------------------------------------------ reading


def _stat_key_file(path: Path) -> os.stat_result:
    """The file's stat (following symlinks); a missing path or a directory is an AttestError."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AttestError(f"key file {path}: expected a PEM key file, found nothing at that path; "
                          f"pass the right path or {_GENERATE_HINT}") from None
    except OSError as exc:
        raise AttestError(f"key file {path}: expected a readable PEM key file, found it cannot be examined "
                          f"({exc.strerror or type(exc).__name__}); check the path and its directories' permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise AttestError(f"key file {path}: expected a PEM key file, found a directory; pass the key file inside it")
    if not stat.S_ISREG(info.st_mode):
        raise AttestError(f"key file {path}: expected a regular PEM key file, found another kind of file; pass the key file itself")
    return info


def _check_private_mode(path: Path, info: os.stat_result) -> None:
    """Refuse a private key that the group or others may access (POSIX permission bits only)."""
    if os.name == "nt":  # Windows has no such bits: its ACLs are not checked here
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        # The contents are not read, so a public key given to sign with is only suspected from its name.
        public = "; if it is a public key, sign with the private key (the path without .pub)" if path.suffix == ".pub" else ""
        raise AttestError(f"private key {path}: expected permissions that let only its owner read it, found mode {mode:04o} "
                          f"(group or others have access); run `chmod 600 {path}` and keep the key out of shared places"
                          + public)


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except PermissionError:
        raise AttestError(f"key file {path}: expected a file this user can read, found it unreadable (permission denied); "
                          "run as the key's owner or fix its ownership") from None
    except OSError as exc:
        raise AttestError(f"key file {path}: expected a readable PEM key file, found a read error "
                          f"({exc.strerror or type(exc).__name__}); check the file") from None
    if len(data) > _MAX_KEY_FILE:
        raise AttestError(f"key file {path}: expected a PEM key (a few hundred bytes), found more than {_MAX_KEY_FILE} bytes; "
                          "pass the key file, not another file")
    return data


def _pem_kind(path: Path, data: bytes) -> str:
    """'private' or 'public' from the PEM armour; any other content is an AttestError that quotes none of it."""
    if b"-----BEGIN" not in data:
        raise AttestError(f"key file {path}: expected a PEM key (-----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY-----), "
                          f"found no PEM block; pass a PEM file or {_GENERATE_HINT}")
    if b"PRIVATE KEY-----" in data:
        return "private"
    if b"PUBLIC KEY-----" in data:
        return "public"
    if b"-----BEGIN CERTIFICATE-----" in data:
        raise AttestError(f"key file {path}: expected a PEM public key, found a certificate; "
                          f"extract its key with `openssl x509 -pubkey -noout -in {path}`")
    raise AttestError(f"key file {path}: expected a PEM private or public key, found another kind of PEM block; "
                      f"pass a key file or {_GENERATE_HINT}")


def _password(path: Path, password_env: str) -> bytes:
    value = os.environ.get(password_env)
    if not value:
        raise AttestError(f"private key {path}: it is encrypted and needs a password, found ${password_env} not set; "
                          f"export {password_env} with the key's password")
    return value.encode("utf-8")


def _parse_private(path: Path, data: bytes, password_env: str) -> Any:
    unreadable = (f"private key {path}: expected a PEM private key (PKCS8 or traditional EC), found content that does not "
                  f"parse as one; pass an intact key file or {_GENERATE_HINT}")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted: a password is needed
        pass
    except UnsupportedAlgorithm:
        raise AttestError(f"private key {path}: expected an ECDSA P-256 or Ed25519 key, found a key type this "
                          f"'cryptography' cannot read; {_GENERATE_HINT}") from None
    except ValueError:
        raise AttestError(unreadable) from None
    password = _password(path, password_env)
    try:
        return serialization.load_pem_private_key(data, password=password)
    except UnsupportedAlgorithm:
        raise AttestError(f"private key {path}: expected an ECDSA P-256 or Ed25519 key, found a key type this "
                          f"'cryptography' cannot read; {_GENERATE_HINT}") from None
    except (TypeError, ValueError):
        raise AttestError(f"private key {path}: expected the password in ${password_env} to decrypt it, found it does not "
                          f"(wrong password, or a damaged file); set {password_env} to the key's password") from None


def _algorithm(path: Path, key: Any, private: bool) -> str:
    """The algorithm name of a supported key; RSA, other curves and other types are refused."""
    ec_key = ec.EllipticCurvePrivateKey if private else ec.EllipticCurvePublicKey
    ed_key = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    rsa_key = rsa.RSAPrivateKey if private else rsa.RSAPublicKey
    if isinstance(key, ed_key):
        return ED25519
    if isinstance(key, ec_key):
        if isinstance(key.curve, ec.SECP256R1):
            return ECDSA_P256
        raise AttestError(f"key file {path}: expected an ECDSA key on curve P-256 (secp256r1) or an Ed25519 key, found an EC "
                          f"key on curve {key.curve.name}; {_GENERATE_HINT}")
    if isinstance(key, rsa_key):
        raise AttestError(f"key file {path}: expected an ECDSA P-256 or Ed25519 key, found an RSA key (not supported); "
                          f"{_GENERATE_HINT}")
    raise AttestError(f"key file {path}: expected an ECDSA P-256 or Ed25519 key, found a {type(key).__name__.lstrip('_')}; "
                      f"{_GENERATE_HINT}")


def _signer_from(path: Path, data: bytes, password_env: str) -> Signer:
    key = _parse_private(path, data, password_env)
    algorithm = _algorithm(path, key, private=True)
    return Signer(keyid=keyid(key.public_key()), algorithm=algorithm, _private=key)


def load_signer(path: Path, *, password_env: str = PASSWORD_ENV) -> Signer:
    """The signer in a PEM private key file (PKCS8 or traditional EC, optionally encrypted).

    The permission check comes first, from `os.stat`: an exposed key is
    refused before it is read. An encrypted key's password is read from the
    environment variable `password_env`.
    """
    _require_cryptography()
    path = Path(path)
    info = _stat_key_file(path)
    _check_private_mode(path, info)
    data = _read_key_file(path)
    if _pem_kind(path, data) != "private":
        raise AttestError(f"key file {path}: expected a PEM private key to sign with, found a public key; "
                          "pass the private key (the file without .pub)")
    return _signer_from(path, data, password_env)


def load_verifier(path: Path, *, password_env: str = PASSWORD_ENV) -> Verifier:
    """The verifier of a PEM public key (SubjectPublicKeyInfo), or the public half of a private key file.

    A private key file gets the same permission check as in load_signer (its
    mode is taken before the file is read); a public key file has none.
    """
    _require_cryptography()
    path = Path(path)
    info = _stat_key_file(path)
    data = _read_key_file(path)
    if _pem_kind(path, data) == "private":
        _check_private_mode(path, info)
        return _signer_from(path, data, password_env).verifier()
    try:
        public = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm:
        raise AttestError(f"public key {path}: expected an ECDSA P-256 or Ed25519 key, found a key type this "
                          f"'cryptography' cannot read; use the .pub written by `mlrepro key generate`") from None
    except ValueError:
        raise AttestError(f"public key {path}: expected a PEM public key (-----BEGIN PUBLIC KEY-----), found content that "
                          "does not parse as one; pass an intact .pub file") from None
    algorithm = _algorithm(path, public, private=False)
    return Verifier(keyid=keyid(public), algorithm=algorithm, _public=public)


# ------------------------------------------------------------------ making


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` (never an existing file or symlink) with `mode`, and write `data`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)  # the umask may only narrow the mode; make it exactly this
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
    finally:
        if fd != -1:
            os.close(fd)


def generate_key(path: Path, algorithm: str = ED25519) -> Signer:
    """Write a new unencrypted PKCS8 PEM private key at `path` (mode 0600) and its public key at `<path>.pub` (0644).

    Neither file may exist already: a key is never overwritten. `algorithm`
    is one of ALGORITHMS, or "ecdsa-p256" for the first.
    """
    _require_cryptography()
    path = Path(path)
    algorithm = _ALIASES.get(algorithm, algorithm)
    if algorithm not in ALGORITHMS:
        raise AttestError(f"key algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}; pass one of those")
    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if os.path.lexists(target):
            raise AttestError(f"key file {target}: expected a new path, found an existing file; "
                              "choose another path or remove the old key deliberately")
    private = ec.generate_private_key(ec.SECP256R1()) if algorithm == ECDSA_P256 else ed25519.Ed25519PrivateKey.generate()
    signer = Signer(keyid=keyid(private.public_key()), algorithm=algorithm, _private=private)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        _write_new(path, pem, 0o600)
    except FileExistsError:
        raise AttestError(f"key file {path}: expected a new path, found an existing file; "
                          "choose another path or remove the old key deliberately") from None
    except OSError as exc:
        raise AttestError(f"key file {path}: expected to create it, found {exc.strerror or type(exc).__name__}; "
                          "check that its directory exists and is writable") from None
    try:
        _write_new(public_path, signer.verifier().public_pem(), 0o644)
    except OSError as exc:
        path.unlink()  # no private key without its public half: the pair is made whole or not at all
        raise AttestError(f"public key {public_path}: expected to create it, found {exc.strerror or type(exc).__name__}; "
                          "nothing was written; check the directory and retry") from None
    return signer
