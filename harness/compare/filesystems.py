"""Two builds of one tree, compared: every file of their final filesystems and their image configs.

Verification proves that one image computes what the host computes; this says
whether the *next* build of the same tree holds the same bytes. Pure: a
manifest is made from tar members as they pass (hashed in chunks, so memory is
bounded by the number of files, never their size), and the comparison takes two
manifests and two configs and returns a frozen `RebuildComparison`. The Docker
side (exporting an image as tar members, reading its config) is in
`harness.docker`.

Modification times are ignored unless asked for: the legacy builder stamps
every file it writes with the build time, so they differ by definition; what
must not differ is what a program can observe through content, type, mode,
ownership and link targets. Likewise the image config's time fields (`Created`)
are reported apart, never as a difference.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Mapping

__all__ = [
    "CONFIG_FIELDS", "REASONS", "TIME_FIELDS", "ConfigDifference", "FileDifference", "FileEntry", "RebuildComparison",
    "compare_builds", "config_fields", "content_reason", "manifest",
]

#: The image config fields that a container's behaviour depends on ("Config.X": inside the config block).
CONFIG_FIELDS = (
    "Architecture", "Os", "Variant", "Author",
    "Config.Entrypoint", "Config.Cmd", "Config.Env", "Config.User", "Config.WorkingDir", "Config.Labels",
    "Config.ExposedPorts", "Config.Volumes", "Config.StopSignal", "Config.Shell", "Config.Healthcheck", "Config.OnBuild",
)
#: Fields that are times by definition: reported side by side, never a difference.
TIME_FIELDS = ("Created",)

_CHUNK = 1 << 20

# The reasons a file differs, one short phrase each (the report and the JSON use them verbatim).
ONLY_FIRST = "only in first build"
ONLY_SECOND = "only in second build"
TYPE = "type differs"
PYC = "byte-compiled file differs"
RECORD = "RECORD lists other hashes"
CONTENT = "content differs"
TARGET = "link target differs"
MODE = "mode differs"
OWNER = "owner differs"
MTIME = "mtime differs"
REASONS = (ONLY_FIRST, ONLY_SECOND, TYPE, PYC, RECORD, CONTENT, TARGET, MODE, OWNER, MTIME)

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True)
class FileEntry:
    """One path of a final filesystem: what a program in the container can observe about it.

    `sha256` is the content's hash for files and hard links (the linked file's
    content), empty otherwise; `target` is a symlink's or hard link's target.
    """

    path: str
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    sha256: str = ""
    target: str = ""
    mtime: int = 0

    def to_json(self, *, mtime: bool = False) -> dict[str, Any]:
        """Plain data; the mtime only when compared (else it would make every report of a build unique)."""
        data: dict[str, Any] = {"kind": self.kind, "mode": f"{self.mode:04o}", "uid": self.uid, "gid": self.gid, "size": self.size}
        if self.sha256:
            data["sha256"] = self.sha256
        if self.target:
            data["target"] = self.target
        if mtime:
            data["mtime"] = self.mtime
        return data


def _absolute(name: str) -> str:
    """A tar member name as the container sees it: `./etc/`, `etc` and `/etc` are all `/etc`."""
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "/" + name if name not in ("", ".") else "/"


def manifest(members: Iterable[tuple[tarfile.TarInfo, IO[bytes] | None]], *, exclude: frozenset[str] = frozenset()) -> dict[str, FileEntry]:
    """Path -> FileEntry for tar members as they pass (each file's reader is consumed here, in chunks).

    Later members replace earlier ones of the same path (as extraction would);
    `exclude` names absolute paths (and everything under them) left out.
    """
    found: dict[str, FileEntry] = {}
    for info, reader in members:
        path = _absolute(info.name)
        if path in exclude or any(path.startswith(p + "/") for p in exclude):
            continue
        kind = _KINDS.get(info.type, "other")
        digest, target = "", ""
        if kind == "file":
            sha = hashlib.sha256()
            if reader is not None:
                while chunk := reader.read(_CHUNK):
                    sha.update(chunk)
            digest = sha.hexdigest()
        elif kind == "symlink":
            target = info.linkname
        elif kind == "hardlink":
            target = _absolute(info.linkname)
            linked = found.get(target)
            digest = linked.sha256 if linked else ""
        size = found[target].size if kind == "hardlink" and target in found else info.size
        found[path] = FileEntry(path, kind, info.mode & 0o7777, info.uid, info.gid, size, digest, target, int(info.mtime))
    return found


def config_fields(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The compared fields (CONFIG_FIELDS, then TIME_FIELDS) of an image's inspect data; absent ones are None."""
    fields: dict[str, Any] = {}
    for name in (*CONFIG_FIELDS, *TIME_FIELDS):
        value: Any = attrs
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        fields[name] = value if value not in ("", [], {}) else None  # the engine writes "" or null for unset
    return fields


def content_reason(path: str) -> str:
    """Why two files' bytes may differ, named by what the file is (byte-compiled, a wheel's RECORD, other)."""
    if path.endswith(".pyc"):
        return PYC
    parent, _, name = path.rpartition("/")
    if name == "RECORD" and parent.endswith(".dist-info"):
        return RECORD
    return CONTENT


@dataclass(frozen=True)
class FileDifference:
    """One path whose entry differs; `reason` is one phrase of REASONS, or several joined by '; '."""

    path: str
    reason: str
    first: FileEntry | None
    second: FileEntry | None

    def to_json(self, *, mtime: bool = False) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason,
                "first": self.first.to_json(mtime=mtime) if self.first else None,
                "second": self.second.to_json(mtime=mtime) if self.second else None}


@dataclass(frozen=True)
class ConfigDifference:
    """One image config field whose value differs between the builds."""

    field: str
    first: Any
    second: Any


@dataclass(frozen=True)
class RebuildComparison:
    """The verdict on two builds: differing files and config fields, the times beside them."""

    files_compared: int
    files: tuple[FileDifference, ...]
    config: tuple[ConfigDifference, ...]
    times: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    mtimes: bool = False

    @property
    def identical(self) -> bool:
        return not self.files and not self.config

    @property
    def verdict(self) -> str:
        return "IDENTICAL CONTENT" if self.identical else "DIFFERS"

    def reason_counts(self) -> dict[str, int]:
        """How many files differ for each reason (a file with several reasons counts for each)."""
        counts: dict[str, int] = {}
        for diff in self.files:
            for reason in diff.reason.split("; "):
                counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_json(self) -> dict[str, Any]:
        """Everything compared, in a deterministic order (paths and fields sorted); time fields by name only."""
        return {
            "verdict": self.verdict,
            "files_compared": self.files_compared,
            "mtimes_compared": self.mtimes,
            "files_differing": len(self.files),
            "reasons": self.reason_counts(),
            "files": [d.to_json(mtime=self.mtimes) for d in self.files],
            "config": [{"field": d.field, "first": d.first, "second": d.second} for d in self.config],
            "times_not_compared": sorted(self.times),
        }


def _reasons(first: FileEntry, second: FileEntry, mtimes: bool) -> list[str]:
    if first.kind != second.kind:
        return [TYPE]
    reasons = []
    if first.sha256 != second.sha256 or (first.kind == "file" and first.size != second.size):
        reasons.append(content_reason(first.path))
    if first.target != second.target:
        reasons.append(TARGET)
    if first.mode != second.mode:
        reasons.append(MODE)
    if (first.uid, first.gid) != (second.uid, second.gid):
        reasons.append(OWNER)
    if mtimes and first.mtime != second.mtime:
        reasons.append(MTIME)
    return reasons


def compare_builds(first: Mapping[str, FileEntry], second: Mapping[str, FileEntry],
                   first_config: Mapping[str, Any], second_config: Mapping[str, Any], *, mtimes: bool = False) -> RebuildComparison:
    """Compare two builds' manifests (path -> FileEntry) and config fields (as `config_fields` returns them)."""
    files = []
    paths = sorted(set(first) | set(second))
    for path in paths:
        a, b = first.get(path), second.get(path)
        if a is None or b is None:
            files.append(FileDifference(path, ONLY_SECOND if a is None else ONLY_FIRST, a, b))
            continue
        reasons = _reasons(a, b, mtimes)
        if reasons:
            files.append(FileDifference(path, "; ".join(reasons), a, b))
    config = tuple(
        ConfigDifference(name, first_config.get(name), second_config.get(name))
        for name in sorted(set(first_config) | set(second_config))
        if name not in TIME_FIELDS and first_config.get(name) != second_config.get(name)
    )
    times = {name: (first_config.get(name), second_config.get(name)) for name in TIME_FIELDS
             if name in first_config or name in second_config}
    return RebuildComparison(len(paths), tuple(files), config, times, mtimes)
