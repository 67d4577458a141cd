"""Wheels on disk: what a wheel's metadata declares, which wheels a directory holds, and their hashes.

The freshness check reads the locked wheels rather than asking an index: a
wheel's `*.dist-info/METADATA` is what pip itself resolves from, and the
wheelhouse already holds exactly the locked wheels, so the check stays offline.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from harness.errors import WheelhouseError

__all__ = ["WheelMetadata", "damaged", "file_sha256", "read_wheel_metadata", "wheel_files"]


@dataclass(frozen=True)
class WheelMetadata:
    """The parts of a wheel's METADATA the resolution depends on."""

    name: str  # canonical
    version: str
    requires_dist: tuple[str, ...]
    requires_python: str | None = None


def read_wheel_metadata(path: Path) -> WheelMetadata:
    """Name, version, Requires-Dist and Requires-Python from a wheel's `*.dist-info/METADATA`."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            if not names:
                raise WheelhouseError(f"{path.name}: expected a wheel with .dist-info/METADATA, found none; delete it and run 'mlrepro wheelhouse'")
            raw = zf.read(names[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelhouseError(f"{path.name}: expected a readable wheel, found {type(exc).__name__}: {exc}; delete it and run 'mlrepro wheelhouse'") from None
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    return WheelMetadata(
        name=canonicalize_name(str(message.get("Name", ""))),
        version=str(message.get("Version", "")),
        requires_dist=tuple(str(r) for r in message.get_all("Requires-Dist") or ()),
        requires_python=str(message["Requires-Python"]) if message.get("Requires-Python") else None,
    )


def wheel_files(directory: Path) -> dict[tuple[str, Version], list[Path]]:
    """The wheels in `directory` by (canonical name, version); names that are not wheel names are skipped."""
    found: dict[tuple[str, Version], list[Path]] = {}
    for path in sorted(directory.glob("*.whl")) if directory.is_dir() else ():
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        found.setdefault((canonicalize_name(name), version), []).append(path)
    return found


def damaged(path: Path) -> str | None:
    """Why the file is not an intact wheel (not a zip, truncated, a member failing its CRC), or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    except Exception as exc:  # zipfile raises assorted errors on damaged archives (zlib.error, ValueError)
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return f"member {bad} fails its CRC" if bad else None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (wheels can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
