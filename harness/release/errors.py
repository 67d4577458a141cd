"""What can stop a release, each error saying what to do about it.

Tree::

    MlreproError
    ├── RegistryError            the registry refused or failed a request
    │   ├── RegistryUnreachable  nothing answers at the registry's address
    │   ├── RegistryAuthError    the credentials were rejected or could not be obtained
    │   ├── BlobAltered          a blob's bytes do not hash to its digest (altered in storage)
    │   └── PushError            the engine reported a failed push inside its 200 stream
    └── ReleaseRefused           the release policy said no before anything was pushed
        └── TagCollision         the remote tag already names another image

The engine's own stream failure (`harness.docker.registry_stream.RegistryStreamError`,
neutral, with a `kind`) becomes RegistryAuthError, RegistryUnreachable or
PushError in `from_stream_error`, keeping its message and evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import MlreproError

if TYPE_CHECKING:  # the adapter is not imported at run time: the release errors stay importable without docker
    from harness.docker.registry_stream import RegistryStreamError


class RegistryError(MlreproError):
    """The registry refused or failed a request: the message quotes its answer; check the name, repository and permissions."""


class RegistryUnreachable(RegistryError):
    """Nothing answers at the registry's address: check the host name, the network, or start the registry."""


class BlobAltered(RegistryError):
    """The registry served a blob whose bytes do not hash to its digest: it was altered where it is stored; trust nothing in it."""


class RegistryAuthError(RegistryError):
    """The credentials were rejected or could not be obtained: log in again (see `mlrepro release --help`, --auth)."""


class PushError(RegistryError):
    """The engine reported a failed push or pull inside its (HTTP 200) stream: `evidence` holds the stream's tail."""


def from_stream_error(error: "RegistryStreamError") -> RegistryError:
    """The release's name for what the engine's push stream reported (same one-line message, same evidence)."""
    kind = {"auth": RegistryAuthError, "unreachable": RegistryUnreachable}.get(error.kind, PushError)  # "stalled" is a PushError
    return kind(error.message, evidence=error.evidence)


class ReleaseRefused(MlreproError):
    """The release was refused before anything was pushed: each reason says what to do (verify, commit, or choose a tag)."""

    def __init__(self, reasons: tuple[str, ...] | list[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("release refused: " + "; ".join(self.reasons))


class TagCollision(ReleaseRefused):
    """The remote tag already names a different image: released tags never move; release under a new tag."""

    def __init__(self, ref: str, remote: str, local_image_id: str, remote_config: str | None) -> None:
        self.ref, self.remote, self.local_image_id, self.remote_config = ref, remote, local_image_id, remote_config
        found = f"image {remote_config}" if remote_config else "an index/list, not a single image"
        super().__init__([
            f"{ref} already points to {remote} ({found}), not to the image being released ({local_image_id}); "
            "released tags never move: release under a new tag"
        ])


__all__ = ["BlobAltered", "PushError", "RegistryAuthError", "RegistryError", "RegistryUnreachable", "ReleaseRefused", "TagCollision",
           "from_stream_error"]
