"""Manifests as a registry serves them (OCI distribution spec): media types, digest, config digest. Pure."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MEDIA_VERIFICATION_REPORT = "application/vnd.mlrepro.verification-report.v1+json"
#: Manifests that list other manifests (multi-platform): they name no single image.
INDEX_TYPES = (MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX)
#: What a client asks for: every manifest kind it can read.
ACCEPT = ", ".join((MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX))


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry serves it; `config_digest` is the image ID for an image manifest."""

    digest: str
    media_type: str
    body: bytes = field(repr=False)
    config_digest: str | None

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def parse_manifest(body: bytes, media_type: str) -> Manifest:
    """Pure: digest (sha256 of the bytes served) and config digest (None for an index or list)."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    media_type = (media_type or data.get("mediaType") or "").split(";")[0].strip()
    config = data.get("config")
    config_digest = config.get("digest") if isinstance(config, dict) else None
    return Manifest(digest=digest, media_type=media_type, body=body, config_digest=config_digest)


__all__ = ["ACCEPT", "INDEX_TYPES", "MEDIA_DOCKER_LIST", "MEDIA_DOCKER_MANIFEST", "MEDIA_OCI_EMPTY", "MEDIA_OCI_INDEX",
           "MEDIA_OCI_MANIFEST", "MEDIA_VERIFICATION_REPORT", "Manifest", "parse_manifest"]
