"""The source tree's git facts, read one way: the revision, its commit time, the remote, uncommitted changes.

`run` is the only place that starts git: a timeout, and no exception when
git is missing, times out, or the directory is no repository (None). The two
readers built on it serve the image build (`provenance`: the build args that
become OCI labels) and the release (`state`: may this tree be released?).
Stdlib only: no Docker, no network.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

#: Seconds one git command may take (a status of a large tree on a slow disk included).
TIMEOUT = 30
#: What `provenance` says when git cannot tell (not a repository, git missing).
UNKNOWN = "unknown"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class GitState:
    """The tree as a release sees it."""

    revision: str | None  # None: not a git repository (or git missing)
    dirty: tuple[str, ...] = ()  # `git status --porcelain` paths: modified, staged or untracked


def run(root: Path, *args: str, timeout: float = TIMEOUT) -> str | None:
    """`git -C root ARGS...`'s stdout (unstripped), or None when git is missing, times out or fails."""
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def provenance(root: Path) -> dict[str, str]:
    """VCS_REF, CREATED and VCS_SOURCE build args: the revision, its commit time (not the wall clock:
    rebuilding the same commit labels it the same) and the remote without credentials."""

    def value(*args: str) -> str:
        return (run(root, *args) or "").strip()

    return {
        "VCS_REF": value("rev-parse", "HEAD") or UNKNOWN,
        "CREATED": value("log", "-1", "--format=%cI") or EPOCH,
        "VCS_SOURCE": without_credentials(value("config", "--get", "remote.origin.url")) or UNKNOWN,
    }


def state(root: Path) -> GitState:
    """HEAD's revision and every modified, staged or untracked path (a failed status counts as dirty)."""
    head = run(root, "rev-parse", "--verify", "HEAD")
    if head is None:
        return GitState(None)
    status = run(root, "status", "--porcelain", "--untracked-files=normal")
    lines = status.splitlines() if status is not None else ["?? (git status failed)"]
    return GitState(head.strip(), tuple(line[3:] for line in lines if line.strip()))


def without_credentials(url: str) -> str:
    """A remote URL fit for a label: `https://user:token@host/x` would put a secret in every image."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


__all__ = ["GitState", "provenance", "run", "state", "without_credentials"]
