"""Package versions: what the lock pins against what the image and the host hold."""

from __future__ import annotations

from typing import Iterable, Mapping

from harness.compare.differences import Difference, normalize_name

__all__ = ["DEFAULT_IGNORED_PACKAGES", "HOST_EXTRAS", "compare_packages"]

# Installer tooling: pip-sync leaves these alone, and so does the comparison,
# because virtualenv/ensurepip put them everywhere at unrelated versions.
# The default of `[tool.mlrepro.compare] ignore_packages`.
DEFAULT_IGNORED_PACKAGES = frozenset({"pip", "setuptools", "wheel", "pip-tools", "distribute", "pkg-resources"})

# What a host package outside the lock is: a difference, a note, or nothing.
HOST_EXTRAS = ("drift", "note", "ignore")

# Shown for a version a side does not have.
ABSENT = "-"


def _normalized(packages: Mapping[str, str]) -> dict[str, str]:
    return {normalize_name(name): str(version).strip() for name, version in packages.items()}


def compare_packages(
    lock: Mapping[str, str],
    image: Mapping[str, str],
    host: Mapping[str, str] | None,
    *,
    ignore: Iterable[str] = DEFAULT_IGNORED_PACKAGES,
    host_extras: str = "note",
) -> list[Difference]:
    """One Difference per package whose lock, image and host versions disagree.

    The image must equal the lock exactly (as pip-sync would leave it); the host
    only needs every locked package at its locked version, since it usually
    also carries the test tooling. host=None means the host was not run.
    Versions are compared as exact strings: the lock pins what pip installs.
    """
    if host_extras not in HOST_EXTRAS:
        raise ValueError(f"host_extras={host_extras!r}, expected one of {HOST_EXTRAS}")
    ignored = {normalize_name(name) for name in ignore}
    lock_n, image_n = _normalized(lock), _normalized(image)
    host_n = _normalized(host) if host is not None else None
    names = set(lock_n) | set(image_n) | set(host_n or ())

    differences = []
    extras: dict[str, str] = {}
    for name in sorted(names - ignored):
        want, got_image = lock_n.get(name), image_n.get(name)
        got_host = host_n.get(name) if host_n is not None else None
        problems: list[tuple[str, str]] = []
        if want is None and got_image is not None:
            problems.append(("drift", "in image but not in lock"))
        elif want is not None and got_image is None:
            problems.append(("drift", "missing from image"))
        elif want != got_image:
            problems.append(("drift", "image version differs from lock"))
        if host_n is not None:
            if want is not None and got_host is None:
                problems.append(("drift", "missing from host"))
            elif want is not None and got_host != want:
                problems.append(("drift", "host version differs from lock"))
            elif want is None and got_host is not None and got_image is None and host_extras != "ignore":
                # An unlocked package on both sides is already the image's drift.
                problems.append((host_extras, "on host but not in lock"))
        if not problems:
            continue
        if problems == [("note", "on host but not in lock")]:
            extras[name] = got_host or ABSENT  # summarised below: one note, not one per tool
            continue
        severity = "drift" if any(s == "drift" for s, _ in problems) else "note"
        host_text = "not run" if host_n is None else (got_host or ABSENT)
        differences.append(
            Difference(
                category="package",
                subject=name,
                message=f"{name}: lock {want or ABSENT}, image {got_image or ABSENT}, host {host_text}",
                severity=severity,
                details={
                    "lock": want,
                    "image": got_image,
                    "host": got_host,
                    "host_run": host_n is not None,
                    "problems": [problem for _, problem in problems],
                },
            )
        )
    if extras:
        listed = ", ".join(f"{n} {v}" for n, v in extras.items())
        differences.append(
            Difference(
                category="package",
                subject="host extras",
                message=f"host extras: {len(extras)} package(s) on the host are not in the lock (allowed by host_extras='note'): {listed}",
                severity="note",
                details={"packages": dict(extras)},
            )
        )
    return differences
