"""The verification report: one record of what was compared and the verdict.

A Report is plain data (it round-trips through JSON exactly) so that the
verdict an auditor reads in a stored report is the verdict the harness
reached; nothing in it depends on when or where it was produced. Rendering
for people lives in `render`; nothing here prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from harness.compare import (
    DEFAULT_IGNORED_PACKAGES,
    ArtifactResult,
    Difference,
    artifact_differences,
    normalize_name,
    plain,
)

__all__ = ["DEFAULT_REPORT_IGNORED", "SCHEMA", "VERDICT_MAX_DIFFERENCES", "ImageInfo", "Report", "SideConsistency"]

SCHEMA = 1

# A verdict stays one readable line; the JSON report keeps every difference.
VERDICT_MAX_DIFFERENCES = 10

# What a report that does not say which packages were ignored was compared
# with: reports written before the field existed used the default set.
DEFAULT_REPORT_IGNORED: tuple[str, ...] = tuple(sorted(DEFAULT_IGNORED_PACKAGES))


@dataclass(frozen=True)
class ImageInfo:
    """The image that was verified: its tag, its ID, and what it was built from."""

    tag: str
    image_id: str
    content_hash: str
    base_image: str
    base_image_id: str


@dataclass(frozen=True)
class SideConsistency:
    """Repeated runs of one side (`verify --repeat N`): the artifacts that moved between them, and likely causes.

    `moved` compares run 1 with a later run under the artifact's own rule
    (its summary names "image" and "host" for run 1 and run k of this side).
    """

    side: str
    runs: int
    moved: tuple[ArtifactResult, ...] = ()
    causes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "moved", tuple(self.moved))
        object.__setattr__(self, "causes", tuple(self.causes))

    def to_dict(self) -> dict[str, Any]:
        return {"side": self.side, "runs": self.runs, "causes": list(self.causes),
                "moved": [{"path": a.path, "mode": a.mode, "status": a.status, "summary": a.summary, "details": a.details}
                          for a in self.moved]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SideConsistency":
        return cls(side=data["side"], runs=data["runs"], moved=tuple(ArtifactResult(**a) for a in data.get("moved", [])),
                   causes=tuple(data.get("causes", [])))


def _ignore_set(names: Iterable[str]) -> tuple[str, ...]:
    # Normalised and sorted: the JSON stays deterministic whatever order the
    # configuration listed them in, and lookups match compare_packages'.
    if isinstance(names, str):
        raise TypeError(f"Report: ignored_packages={names!r}, expected a collection of package names, not one string")
    names = tuple(names)
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise TypeError(f"Report: ignored_packages: expected package names (strings), found {bad[0]!r}")
    return tuple(sorted({normalize_name(name) for name in names}))


@dataclass(frozen=True)
class Report:
    """Everything one verification measured, and the verdict that follows from it.

    `ignored_packages` is the set compare_packages was told to skip
    (`[tool.mlrepro.compare] ignore_packages`): the rendering and the package
    count need it to tell an ignored package from one that agreed.
    """

    project: str
    image: ImageInfo
    lock_sha256: str
    environments: Mapping[str, Mapping]
    differences: tuple[Difference, ...]
    artifacts: tuple[ArtifactResult, ...]
    schema: int = SCHEMA
    ignored_packages: tuple[str, ...] = field(default=DEFAULT_REPORT_IGNORED, kw_only=True)
    #: sha256 of the recorded reference the image was compared with instead of a host run (`--against`), else None.
    reference_sha256: str | None = field(default=None, kw_only=True)
    #: Self-consistency of each repeated side (empty: no side was repeated; older reports load so).
    consistency: tuple[SideConsistency, ...] = field(default=(), kw_only=True)
    #: The resolved settings this verification ran with (`harness.settings.verified_settings`);
    #: None in reports written before they were recorded (a release then asks for a new verification).
    settings: Mapping[str, Any] | None = field(default=None, kw_only=True)
    #: Per side, the sha256 of its environment probe's key and whether the probe came from the cache
    #: (`harness.sides.probe_cache`); empty when no side could be cached.
    probe_cache: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "consistency", tuple(self.consistency))
        # Normalised on the way in so that equality survives a JSON round trip.
        object.__setattr__(self, "environments", plain(self.environments))
        object.__setattr__(self, "differences", tuple(self.differences))
        object.__setattr__(self, "artifacts", tuple(self.artifacts))
        object.__setattr__(self, "ignored_packages", _ignore_set(self.ignored_packages))
        if self.settings is not None:
            object.__setattr__(self, "settings", plain(self.settings))
        object.__setattr__(self, "probe_cache", plain(dict(self.probe_cache)))

    @property
    def drift(self) -> tuple[Difference, ...]:
        own = tuple(d for d in self.differences if d.severity == "drift")
        return own + tuple(artifact_differences(self.artifacts))

    @property
    def notes(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.severity == "note")

    @property
    def deterministic(self) -> bool:
        """No repeated side disagreed with itself (true when nothing was repeated)."""
        return not any(c.moved for c in self.consistency)

    @property
    def reproducible(self) -> bool:
        return not self.drift and self.deterministic

    def ignores(self, package: str) -> bool:
        """Whether the comparison skipped this package (any spelling of its name)."""
        return normalize_name(package) in self.ignored_packages

    def package_count(self) -> int:
        """Packages the image holds besides the ignored ones: the lock's size when there is no drift."""
        packages = self.environments.get("image", {}).get("packages", {})
        return sum(1 for name in packages if not self.ignores(name))

    def verdict(self) -> str:
        # One line whatever the inputs hold, so logs can be grepped for it.
        return _one_line(self._verdict())

    def _verdict(self) -> str:
        drift = self.drift
        if not self.deterministic:
            return self._nondeterministic_verdict(drift)
        if drift:
            shown = [d.message for d in drift[:VERDICT_MAX_DIFFERENCES]]
            if len(drift) > VERDICT_MAX_DIFFERENCES:
                shown.append(f"(+{len(drift) - VERDICT_MAX_DIFFERENCES} more)")
            return f"DRIFT: {_plural(len(drift), 'difference')}: " + "; ".join(shown)
        sides = "host == lock" if "host" in self.environments else "lock (host not run)"
        if self.reference_sha256:
            sides = f"reference sha256:{self.reference_sha256[:12]} == lock"
        facts = f"{_plural(self.package_count(), 'package')}, {self._artifact_phrase()}"
        if self.notes:
            facts += f"; {_plural(len(self.notes), 'note')}"
        return f"REPRODUCIBLE: image {self.image.tag} == {sides} ({facts})"

    def _nondeterministic_verdict(self, drift: tuple[Difference, ...]) -> str:
        # The project disagrees with itself: image vs host differences are not the image's to answer for.
        parts = []
        for c in self.consistency:
            if c.moved:
                shown = "; ".join(a.summary for a in c.moved[:VERDICT_MAX_DIFFERENCES])
                parts.append(f"{c.side}: {c.runs} runs disagree on {', '.join(a.path for a in c.moved)} ({shown})")
        causes = next((c.causes for c in self.consistency if c.moved), ())
        text = "NON-DETERMINISTIC: " + "; ".join(parts)
        if causes:
            text += "; likely causes: " + "; ".join(causes)
        if drift:
            text += f" (image vs host not judged: {_plural(len(drift), 'difference')} may follow from it)"
        return text

    def _artifact_phrase(self) -> str:
        if not self.artifacts:
            return "no artifacts compared"
        identical = sum(1 for a in self.artifacts if a.status == "identical")
        equivalent = len(self.artifacts) - identical
        if not equivalent:
            return f"{_plural(identical, 'artifact')} identical"
        return f"{_plural(len(self.artifacts), 'artifact')}: {identical} identical, {equivalent} equivalent within tolerance"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "project": self.project,
            "image": {
                "tag": self.image.tag,
                "image_id": self.image.image_id,
                "content_hash": self.image.content_hash,
                "base_image": self.image.base_image,
                "base_image_id": self.image.base_image_id,
            },
            "lock_sha256": self.lock_sha256,
            "environments": self.environments,
            "differences": [
                {"category": d.category, "subject": d.subject, "message": d.message, "severity": d.severity, "details": d.details}
                for d in self.differences
            ],
            "artifacts": [
                {"path": a.path, "mode": a.mode, "status": a.status, "summary": a.summary, "details": a.details}
                for a in self.artifacts
            ],
            "ignored_packages": list(self.ignored_packages),
            # Only when compared with a reference: reports of ordinary verifications stay byte for byte as before.
            **({"reference_sha256": self.reference_sha256} if self.reference_sha256 else {}),
            # Only when a side was repeated (`verify --repeat N`), for the same reason.
            **({"consistency": [c.to_dict() for c in self.consistency]} if self.consistency else {}),
            **({"settings": self.settings} if self.settings is not None else {}),
            **({"probe_cache": self.probe_cache} if self.probe_cache else {}),
            # Derived, written for auditors reading the file; from_json recomputes them.
            "reproducible": self.reproducible,
            "verdict": self.verdict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Report":
        """Read a stored report; one written before `ignored_packages` existed gets the default set."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"report: expected schema {SCHEMA}, found {found!r}")
        ignored = data.get("ignored_packages", list(DEFAULT_REPORT_IGNORED))
        if not isinstance(ignored, list) or not all(isinstance(name, str) for name in ignored):
            raise ValueError(f"report: expected ignored_packages to be a list of package names, found {ignored!r}")
        try:
            return cls(
                project=data["project"],
                image=ImageInfo(**data["image"]),
                lock_sha256=data["lock_sha256"],
                environments=data["environments"],
                differences=tuple(Difference(**d) for d in data["differences"]),
                artifacts=tuple(ArtifactResult(**a) for a in data["artifacts"]),
                schema=data["schema"],
                ignored_packages=tuple(ignored),
                reference_sha256=data.get("reference_sha256"),
                consistency=tuple(SideConsistency.from_dict(c) for c in data.get("consistency", [])),
                settings=data.get("settings"),
                probe_cache=data.get("probe_cache") or {},
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"report: expected the fields of schema {SCHEMA}, found a problem: {exc!r}") from None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
