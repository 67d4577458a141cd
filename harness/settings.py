"""What a verification depended on: the resolved settings a report records, and their hash. Pure.

A report is only evidence for the configuration it verified. Seen in the
field: a step changed in pyproject.toml, verified, changed back, released. So
`verify` records `verified_settings(config)` in the report (steps, inputs,
artifacts with their tolerances, the run environment, the comparison rules,
the build inputs), and `mlrepro release` refuses when today's configuration
hashes differently (`settings_sha256`).

Paths are written relative to the project root (POSIX), so the same project
checked out elsewhere hashes the same; machine-local things that do not change
what is computed (the host venv's location, timeouts) are left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from harness.config import Config

#: Bumped when the meaning of the recorded settings changes (a report from another version then says so).
SETTINGS_SCHEMA = 1


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # outside the project: absolute, as configured
        return Path(path).as_posix()


def verified_settings(config: Config) -> dict[str, Any]:
    """The settings that decide what a verification computes and how it judges it (JSON-safe, canonical order)."""
    root = config.root
    return {
        "schema": SETTINGS_SCHEMA,
        "project": config.project,
        "lock": _relative(config.lock, root),
        "build": {
            "dockerfile": _relative(config.build.dockerfile, root),
            "context": _relative(config.build.context, root),
            "build_args": dict(sorted(config.build.build_args.items())),
        },
        "steps": [{"name": s.name, "command": list(s.command), "env": dict(sorted(s.env.items()))} for s in config.steps],
        "inputs": [_relative(p, root) for p in config.inputs],
        "artifacts": [{"path": a.path, "mode": a.mode, "atol": float(a.atol), "rtol": float(a.rtol), "key": a.key}
                      for a in config.artifacts],
        "run": {"env": dict(sorted(config.run.env.items())), "pass_env": list(config.run.pass_env),
                "workdir_in_image": config.run.workdir_in_image},
        "compare": {"python_policy": config.compare.python_policy, "host_extras": config.compare.host_extras,
                    "ignore_packages": sorted(config.compare.ignore_packages),
                    "repeat": config.compare.repeat, "repeat_image": config.compare.repeat_image},
        "probe_env": list(config.probe_env),
        "host_mode": config.host.mode,
    }


def settings_sha256(settings: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `settings` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def settings_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The top-level keys whose values differ (for a one-line refusal naming what changed). Pure."""
    keys = sorted(set(recorded) | set(current))
    return [key for key in keys if recorded.get(key) != current.get(key)]


__all__ = ["SETTINGS_SCHEMA", "settings_changes", "settings_sha256", "verified_settings"]
