"""The release journal and history: an interrupted release is completed or rolled back by the next one.

A push is the one step of a release that cannot be undone and may be cut
short (a killed CI job, a lost connection) after the registry took the tag
but before the record was written. So, beside the record (`out/release.json`):

- `release.json.<registry>.journal` is written (atomically) just before the push, holding
  the record the release is about to make (everything but what the registry
  decides), and removed once the record is written;
- `release-history.jsonl` gets one JSON line per release, appended, never
  rewritten: `{"event": "released" | "completed" | "rolled-back" | "superseded", ...}`.

The next release that finds a journal left behind resolves it against the
registry before anything else (`resolve`): the tag names the journaled image
-> the push went through: "completed", with the digest the registry holds, so
the history records exactly what was pushed; no such tag -> nothing was
pushed: "rolled-back"; another image -> someone else pushed the tag meanwhile:
"superseded". Each registry has its own journal; those of another registry are left for a
release to it.
Pure apart from the files and the `RegistryAPI` it is given.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.files import write_atomic

JOURNAL_SCHEMA = 1


def journal_path(record_path: Path, registry: str) -> Path:
    """One journal per registry beside the record (`release.json.myreg.azurecr.io.journal`): a release to one
    registry never overwrites the unresolved journal of another."""
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", registry)
    return Path(record_path).with_name(f"{Path(record_path).name}.{safe}.journal")


def history_path(record_path: Path) -> Path:
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + "-history.jsonl")


def append_history(record_path: Path, entry: Mapping[str, Any]) -> Path:
    """One JSON line, appended with a single write (O_APPEND: concurrent releases never interleave a line)."""
    path = history_path(record_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(entry), sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_history(record_path: Path) -> list[dict[str, Any]]:
    """Every entry of the history, oldest first (a torn last line, from a crash mid-write, is skipped)."""
    path = history_path(record_path)
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


@dataclass(frozen=True)
class Journal:
    """The release in flight: where to (registry, repository, tag), which image, and the record it will become."""

    registry: str
    repository: str
    tag: str
    image_id: str
    record: Mapping[str, Any]  # the prospective ReleaseRecord fields (no digest yet)
    started_at: str
    schema: int = JOURNAL_SCHEMA
    #: The local name the push gives the image (REGISTRY/REPO:TAG) when the release made it: a killed push leaves it.
    local_tag: str | None = None

    def to_json(self) -> str:
        return json.dumps({"schema": self.schema, "registry": self.registry, "repository": self.repository, "tag": self.tag,
                           "image_id": self.image_id, "record": dict(self.record), "started_at": self.started_at,
                           "local_tag": self.local_tag}, sort_keys=True, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> "Journal | None":
        """The journal at `path`, or None when there is none or it is unreadable (a torn write is no journal)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("schema") != JOURNAL_SCHEMA:
                return None
            return cls(registry=data["registry"], repository=data["repository"], tag=data["tag"], image_id=data["image_id"],
                       record=data["record"], started_at=data["started_at"], local_tag=data.get("local_tag"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def begin(record_path: Path, journal: Journal) -> Path:
    path = journal_path(record_path, journal.registry)
    write_atomic(path, journal.to_json())
    return path


def end(record_path: Path, registry: str) -> None:
    try:
        journal_path(record_path, registry).unlink()
    except FileNotFoundError:
        pass


def resolve(record_path: Path, client, registry: str, *, clock: Callable[[], str],
            progress: Callable[[str], None] = lambda message: None,
            untag: Callable[[str], object] = lambda ref: None) -> dict[str, Any] | None:
    """Resolve a journal left by an interrupted release to `registry` (see the module docstring); its history entry."""
    record_path = Path(record_path)
    path = journal_path(record_path, registry)
    for other in sorted(record_path.parent.glob(f"{record_path.name}.*.journal")):
        if other != path:
            progress(f"an interrupted release is journaled in {other}; release to its registry again to resolve it")
    journal = Journal.read(path)
    if journal is None:
        if path.exists():
            progress(f"{path} is unreadable (a write cut short before any push): removed")
            end(record_path, registry)
        return None
    ref = f"{journal.registry}/{journal.repository}:{journal.tag}"
    remote = client.manifest(journal.repository, journal.tag)
    entry: dict[str, Any] = {**journal.record, "journal_started_at": journal.started_at, "resolved_at": clock()}
    if remote is not None and not remote.is_index and remote.config_digest == journal.image_id:
        entry.update(event="completed", digest=remote.digest, reference=f"{journal.registry}/{journal.repository}@{remote.digest}")
        progress(f"an earlier release of {ref} was interrupted after its push: the registry holds it as {remote.digest}; recorded in the history")
    elif remote is None:
        entry.update(event="rolled-back", digest=None, reference=None)
        progress(f"an earlier release of {ref} was interrupted before its push: nothing was pushed; recorded in the history")
    else:
        entry.update(event="superseded", digest=remote.digest, reference=None)
        progress(f"an earlier release of {ref} was interrupted and the tag now names {remote.digest}, another image; recorded in the history")
    append_history(record_path, entry)
    if journal.local_tag:  # the push's own local name, which the killed release could not remove
        untag(journal.local_tag)
    end(record_path, registry)
    return entry


__all__ = ["JOURNAL_SCHEMA", "Journal", "append_history", "begin", "end", "history_path", "journal_path", "read_history", "resolve"]
