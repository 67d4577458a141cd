"""Secrets stay out of images: the build context is scanned before anything is built.

Whatever the build context holds (as `.dockerignore` filters it) can be
copied into the image, and `mlrepro release` pushes the image: an `.env` with
a cloud key, an `id_rsa` or a `.netrc` in the context ends up in a registry.
Before a build, every file the engine would receive is checked by name
(private keys, credential files, `.env`) and, for small text files, by
content (private-key blocks, cloud access keys, tokens). A hit refuses the
build with one line naming the file, unless `[tool.mlrepro.build]
allow_secrets` lists that path (a test fixture key, say). Pure apart from
reading the files.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

#: File names that are secrets whatever they hold (matched on the last path component).
SECRET_NAMES: tuple[tuple[str, str], ...] = (
    (".env", "a .env file"), (".env.*", "a .env file"), ("*.env", "an env file"),
    ("id_rsa", "an SSH private key"), ("id_dsa", "an SSH private key"), ("id_ecdsa", "an SSH private key"),
    ("id_ed25519", "an SSH private key"), ("*.pem", "a PEM file (keys or certificates)"), ("*.key", "a key file"),
    ("*.p12", "a PKCS#12 key store"), ("*.pfx", "a PKCS#12 key store"), (".netrc", "a .netrc (login passwords)"),
    ("_netrc", "a .netrc (login passwords)"), ("credentials", "a credentials file (AWS and others)"),
    (".git-credentials", "git credentials"), (".pypirc", "a .pypirc (index passwords)"), (".npmrc", "an .npmrc (tokens)"),
    (".dockercfg", "Docker registry credentials"), ("config.json", None),  # only under .docker/, see below
)
#: Content that is a secret wherever it appears.
SECRET_CONTENT: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |)PRIVATE KEY-----"), "a private key"),
    (re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(rb"(?i)aws_secret_access_key\s*[=:]"), "an AWS secret access key"),
    (re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token"),
    (re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(rb"(?i)\bAccountKey=[A-Za-z0-9+/=]{40,}"), "an Azure storage account key"),
    (re.compile(rb"\"private_key\"\s*:\s*\"-----BEGIN"), "a cloud service-account key"),
)
#: Content is read only from files this small (models and wheels are large and binary).
MAX_SCANNED = 1 << 20
_BINARY_SUFFIXES = (".whl", ".zip", ".gz", ".tgz", ".xz", ".bz2", ".npy", ".npz", ".parquet", ".skops", ".pkl", ".joblib", ".png", ".jpg")


@dataclass(frozen=True)
class SecretFinding:
    path: str  # relative to the context, posix
    reason: str


def _by_name(rel: PurePosixPath) -> str | None:
    name = rel.name
    if name == "config.json":
        return "Docker registry credentials" if rel.parent.name == ".docker" else None
    for pattern, reason in SECRET_NAMES:
        if reason and fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def _by_content(path: Path) -> str | None:
    if path.suffix.lower() in _BINARY_SUFFIXES or path.is_symlink():
        return None
    try:
        if path.stat().st_size > MAX_SCANNED:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    for pattern, reason in SECRET_CONTENT:
        if pattern.search(data):
            return reason
    return None


def scan(context: Path, files: Iterable[str], allowed: Sequence[str] = ()) -> list[SecretFinding]:
    """Every file of `files` (paths relative to `context`) that looks like a secret, minus the `allowed` paths."""
    allow = {PurePosixPath(a).as_posix() for a in allowed}
    found = []
    for rel in files:
        posix = PurePosixPath(rel.replace("\\", "/"))
        if posix.as_posix() in allow:
            continue
        reason = _by_name(posix) or _by_content(context / rel)
        if reason:
            found.append(SecretFinding(posix.as_posix(), reason))
    return found


__all__ = ["MAX_SCANNED", "SECRET_CONTENT", "SECRET_NAMES", "SecretFinding", "scan"]
