"""The image and what goes into it: the base image (`base`), the locked wheels (`wheelhouse`), the build (`build`).

Names load on first use: `wheelhouse.Target` is needed by `mlrepro lock
--check`, which must not import docker (the build modules do).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Target": "harness.image.wheelhouse", "fetch": "harness.image.wheelhouse",
    "ensure_base": "harness.image.base", "resolve_base": "harness.image.base",
    "content_hash": "harness.image.build", "ensure_image": "harness.image.build",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness.image' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
