"""The image and what goes into it: the base image (`base`), the locked wheels (`wheelhouse`), the build (`build`)."""

from harness.image.base import ensure_base, resolve_base
from harness.image.build import content_hash, ensure_image
from harness.image.wheelhouse import Target, fetch

__all__ = ["Target", "content_hash", "ensure_base", "ensure_image", "fetch", "resolve_base"]
