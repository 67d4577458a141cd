"""The probe cache: what cannot change between runs is not measured again.

The environment probe imports numpy, scipy and scikit-learn on each side
(about 1.4 s of CPU each, on the critical path of a warm verify). Its answer
is a function of things that can be named without running it:

- image side: the image ID (its files, its ENV, its interpreter), the
  determinism variables forwarded into it, the probe's source and options,
  and the machine (CPU model, core count, kernel, architecture);
- host side: the interpreter (real path, size, mtime), the distributions its
  site directories hold (the names of their `.dist-info` / `.egg-info` /
  `.pth` entries: names carry versions), PYTHONPATH, the determinism
  variables the step environment holds, the C library, and the machine.

`ProbeCache.load(slot, key)` gives the cached probe only when the stored key
is exactly `key`; a slot is one side of one image or interpreter, so a key
that changed (another thread count, an upgraded package) is recognised and
named in a note, and probed again. A corrupt entry and a directory that is not
writable fall back to probing with a note, never to a wrong environment.
The entries live in `.mlrepro/probe-cache/` (never in a build context).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from harness.files import write_atomic
from harness.sides.probe import ENV_NAMES, ENV_PREFIXES

SCHEMA = 1
#: The probe's own source: a changed probe measures other things.
PROBE_SHA256 = hashlib.sha256((Path(__file__).with_name("probe.py")).read_bytes()).hexdigest()


def key_sha256(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def determinism_subset(env: Mapping[str, str], extra: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """The variables of `env` the probe reports (the same selection as `probe.determinism_env`)."""
    return {k: v for k, v in sorted(env.items()) if k.startswith(ENV_PREFIXES) or k in ENV_NAMES or k in extra}


def machine() -> dict[str, Any]:
    """What the probe's platform and threadpool answers depend on, on this machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "cpu model", "hardware")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    return {"cpu": model, "cpus": cpus, "kernel": platform.release(), "arch": platform.machine()}


def interpreter_fingerprint(python: str) -> dict[str, Any]:
    """The interpreter and what its site directories hold (entry names only: cheap, and names carry versions).

    A venv's `bin/python` is a symlink to its base interpreter: the venv is
    named by the path as given (never resolved), its own site directories are
    read, and the base's too only when `pyvenv.cfg` includes them.
    """
    given = Path(python if os.path.sep in python else (_which(python) or python)).absolute()
    real = os.path.realpath(given)
    try:
        st = os.stat(real)
        stat = [st.st_size, st.st_mtime_ns]
    except OSError:
        stat = None
    prefixes = [given.parent.parent]
    config = given.parent.parent / "pyvenv.cfg"
    venv = config.is_file()
    if venv and re.search(r"^\s*include-system-site-packages\s*=\s*true\s*$", config.read_text(errors="replace"), re.M | re.I):
        prefixes.append(Path(real).parent.parent)
    if not venv:
        prefixes = [Path(real).parent.parent]
    dirs = sorted({d for prefix in prefixes for pattern in ("lib/python*/site-packages", "lib64/python*/site-packages")
                   for d in prefix.glob(pattern)})
    if os.path.abspath(sys.executable) == str(given):  # this very interpreter: its own sys.path says where it looks
        dirs = sorted({*dirs, *(Path(p) for p in sys.path if p and Path(p).is_dir())})
    entries = []
    for directory in dirs:
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith((".dist-info", ".egg-info", ".pth", ".egg-link")))
        except OSError:
            continue
        entries.append([str(directory), names])
    return {"python": str(given), "real": real, "venv": venv, "stat": stat, "site": entries}


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


class ProbeCache:
    """Probes by slot (one side of one image or interpreter), each with the exact key it was measured under."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, slot: str) -> Path:
        return self.directory / f"{hashlib.sha256(slot.encode()).hexdigest()[:24]}.json"

    def load(self, slot: str, key: Mapping[str, Any]) -> tuple[Mapping | None, str | None]:
        """(probe, None) on a hit; (None, note) when an entry exists but cannot be used; (None, None) when none exists."""
        path = self._path(slot)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"the cached probe {path} is unreadable ({exc.strerror or exc}): probing again"
        try:
            entry = json.loads(text)
            stored, probe = entry["key"], entry["probe"]
            if entry.get("schema") != SCHEMA or not isinstance(probe, dict) or not isinstance(stored, dict):
                raise ValueError("not an entry of this version")
        except (ValueError, KeyError, TypeError) as exc:
            return None, f"the cached probe {path} is corrupt ({str(exc)[:80]}): probing again"
        if stored != dict(key):
            changed = ", ".join(sorted(k for k in set(stored) | set(key) if stored.get(k) != key.get(k))) or "key"
            return None, f"the cached probe of {slot} was measured under another {changed}: probing again"
        return probe, None

    def store(self, slot: str, key: Mapping[str, Any], probe: Mapping) -> str | None:
        """Keep `probe` for `slot` under `key`; a note (and nothing kept) when the directory is not writable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(self._path(slot), json.dumps({"schema": SCHEMA, "slot": slot, "key": dict(key), "probe": dict(probe)},
                                                      sort_keys=True) + "\n")
        except (OSError, Exception) as exc:  # write_atomic raises MlreproError for what the OS refused
            return f"the probe cache {self.directory} is not writable ({str(exc)[:120]}): probing on every run"
        return None


__all__ = ["PROBE_SHA256", "ProbeCache", "determinism_subset", "interpreter_fingerprint", "key_sha256", "machine"]
