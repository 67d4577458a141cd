"""Release: push exactly the verified image, refer to it by digest, never move a released tag.

One module per concept (the rules are in `publish`'s docstring):

- `policy`    pure: ReleaseTarget, ReleaseRecord, release_refusals, decide_tag, the report artifact
- `publish`   the sequencing: `release`, `release_project` (engine + registry, record written last)
- `client`    the registry's HTTP API (OCI distribution): RegistryClient, behind the RegistryAPI seam
- `manifest`  pure: media types, Manifest, parse_manifest
- `auth`      one credentials provider per kind of registry; `auth_for` picks one
- `secrets`   Credentials, and `redact` keeping them out of every message
- `errors`    RegistryError (Unreachable, AuthError, PushError), ReleaseRefused (TagCollision)

This package re-exports what the CLI, the tests and a CI script need; the
rest stays in its module.
"""

from harness.git import GitState
from harness.release.auth import (
    AUTH_METHODS,
    AcrCliAuth,
    AcrEntraAuth,
    AuthProvider,
    DockerConfigAuth,
    EcrAuth,
    EnvironmentAuth,
    StaticAuth,
    auth_for,
)
from harness.release.client import RegistryAPI, RegistryClient
from harness.release.errors import PushError, RegistryAuthError, RegistryError, RegistryUnreachable, ReleaseRefused, TagCollision
from harness.release.manifest import Manifest
from harness.release.policy import (
    ReleaseRecord,
    ReleaseTarget,
    decide_tag,
    provenance,
    release_refusals,
    verification_manifest,
    verification_tag,
)
from harness.release.publish import read_report, release, release_project, write_record
from harness.release.secrets import Credentials, redact

__all__ = [
    # policy and sequencing
    "GitState", "ReleaseRecord", "ReleaseTarget", "decide_tag", "provenance", "read_report", "release", "release_project",
    "release_refusals", "verification_manifest", "verification_tag", "write_record",
    # errors
    "PushError", "RegistryAuthError", "RegistryError", "RegistryUnreachable", "ReleaseRefused", "TagCollision",
    # registry and credentials
    "AUTH_METHODS", "AcrCliAuth", "AcrEntraAuth", "AuthProvider", "Credentials", "DockerConfigAuth", "EcrAuth",
    "EnvironmentAuth", "Manifest", "RegistryAPI", "RegistryClient", "StaticAuth", "auth_for", "redact",
]
