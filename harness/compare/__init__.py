"""Pure comparison of what the lock promised, the image holds, and the host ran.

Everything here works on plain data (probe dicts, version mappings, file
bytes) and returns frozen dataclasses, so the judgement of "reproducible or
not" can be tested exhaustively without Docker and re-run on recorded data.

One module per concept; import from here, not from the modules:

- `differences`: Difference (what every comparison returns), plain, normalize_name
- `packages`: compare_packages, the default ignored packages, host-extras policies
- `environment`: compare_python, compare_environments, python policies
- `artifacts`: ArtifactRule, ArtifactResult, compare_artifact (modes bitwise/numeric/json/hash)
- `files`: compare_files / compare_streams, the same comparison on paths or streams (memory bounded by a chunk)
- `formats`: which reader mode 'numeric' uses, by suffix: `streaming` (CSV, JSON lines, one pass,
  `sources` reading chunks, `cells` counting identical numbers), `tables` (JSON arrays, in memory),
  `arrays` (.npy/.npz without numpy), `parquet` (pyarrow when importable, else Unavailable)
- `tolerance`: numbers_close, the one rule deciding whether two numbers differ (close_enough: its float fast path)
- `documents`, `summaries`: reading JSON and wording summaries, shared by the modes
- `filesystems`: FileEntry manifests of two builds' final filesystems, compare_builds (`mlrepro rebuild-check`)

The constants here (ARTIFACT_MODES, PYTHON_POLICIES, HOST_EXTRAS,
DEFAULT_IGNORED_PACKAGES) are the only definitions: `harness.config`
validates `[tool.mlrepro]` against them.
"""

from __future__ import annotations

from harness.compare.artifacts import (
    ARTIFACT_MODES,
    ARTIFACT_STATUSES,
    ArtifactResult,
    ArtifactRule,
    artifact_differences,
    compare_artifact,
)
from harness.compare.differences import SEVERITIES, Difference, normalize_name, plain
from harness.compare.files import compare_files, compare_streams
from harness.compare.environment import PYTHON_POLICIES, compare_environments, compare_python
from harness.compare.filesystems import FileEntry, RebuildComparison, compare_builds
from harness.compare.packages import DEFAULT_IGNORED_PACKAGES, HOST_EXTRAS, compare_packages
from harness.compare.parquet import Unavailable
from harness.compare.tolerance import numbers_close

__all__ = [
    "ARTIFACT_MODES",
    "ARTIFACT_STATUSES",
    "DEFAULT_IGNORED_PACKAGES",
    "HOST_EXTRAS",
    "PYTHON_POLICIES",
    "SEVERITIES",
    "ArtifactResult",
    "ArtifactRule",
    "Difference",
    "FileEntry",
    "RebuildComparison",
    "Unavailable",
    "artifact_differences",
    "compare_artifact",
    "compare_builds",
    "compare_environments",
    "compare_files",
    "compare_packages",
    "compare_python",
    "compare_streams",
    "normalize_name",
    "numbers_close",
    "plain",
]
