"""Environment probe: what an interpreter would actually compute with.

The harness copies this file into the image and runs it on the host too, then
compares the two JSON objects. It must therefore run unchanged under any
interpreter >= 3.8 with nothing but the standard library at module level, and
it must print nothing but one JSON object on stdout. It is run often, so the
heavy imports (numpy, scipy, scikit-learn) happen only when threadpoolctl is
there to report what they loaded.

    python probe.py [--env NAME]...
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import re
import subprocess
import sys

SCHEMA = 1

# Variables that change the numbers a run produces (thread counts decide
# summation order in BLAS/OpenMP reductions; the hash seed decides set and dict
# iteration orders that leak into feature orderings; cuBLAS needs its
# workspace config for deterministic kernels).
ENV_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "BLIS_", "VECLIB_", "NUMEXPR_")
ENV_NAMES = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")

THREADPOOL_KEYS = ("user_api", "internal_api", "num_threads", "version", "architecture", "filename")

# Imported only to make their native libraries load before threadpoolctl
# looks; scipy.linalg rather than scipy because scipy's BLAS loads lazily.
_LIBRARY_MODULES = ("numpy", "scipy.linalg", "sklearn")


def normalize_name(name):
    """PEP 503 normalisation, so 'Scikit_Learn' and 'scikit-learn' are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_info():
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "compiler": platform.python_compiler(),
    }


def libc_version():
    """'glibc 2.36', 'musl 1.2.4', 'musl' or '' when unknown."""
    try:
        # Asks the running C library itself, unlike platform.libc_ver which
        # scans the interpreter binary and can report the build-time glibc.
        value = os.confstr("CS_GNU_LIBC_VERSION")
        if value:
            return value
    except (AttributeError, ValueError, OSError):
        pass
    loaders = sorted(glob.glob("/lib/ld-musl-*.so.1"))
    if loaders:
        # The musl loader prints its version banner on stderr when run bare.
        try:
            result = subprocess.run(
                [loaders[0]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=5
            )
            match = re.search(r"Version\s+(\S+)", result.stderr.decode("utf-8", "replace"))
            if match:
                return "musl " + match.group(1)
        except (OSError, subprocess.SubprocessError):
            pass
        return "musl"
    lib, version = platform.libc_ver()
    return (lib + " " + version).strip()


def platform_info():
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "libc": libc_version(),
        "release": platform.release(),
    }


def packages():
    """Installed distributions by normalised name; the first on sys.path wins, as for import."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        try:
            # dist.name only exists from 3.10 on; the metadata header works everywhere.
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:
            continue
        if not name or version is None:
            continue
        key = normalize_name(name)
        if key not in found:
            found[key] = version
    return dict(sorted(found.items()))


def threadpools():
    """Native thread pools as threadpoolctl sees them; None (unknown) without threadpoolctl."""
    # Libraries may print at import time; stdout belongs to the JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import threadpoolctl
        except Exception:
            return None
        import importlib

        for module in _LIBRARY_MODULES:
            try:
                importlib.import_module(module)
            except Exception:
                pass
        try:
            info = threadpoolctl.threadpool_info()
        except Exception:
            return []
    pools = []
    for entry in info:
        pool = {}
        for key in THREADPOOL_KEYS:
            if key == "filename":
                # Basename only: absolute paths differ between image and host
                # (site-packages locations) without meaning anything.
                path = entry.get("filepath") or entry.get("filename")
                pool[key] = os.path.basename(path) if path else None
            else:
                pool[key] = entry.get(key)
        pools.append(pool)
    # Load order depends on import order, not on the environment.
    pools.sort(key=lambda p: tuple(str(p[k]) for k in THREADPOOL_KEYS))
    return pools


def determinism_env(extra_env=()):
    extra = set(extra_env)
    selected = {}
    for name, value in os.environ.items():
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES or name in extra:
            selected[name] = value
    return dict(sorted(selected.items()))


def collect(extra_env=()):
    """The probe object; extra_env names further environment variables to report when set."""
    return {
        "schema": SCHEMA,
        "python": python_info(),
        "platform": platform_info(),
        "packages": packages(),
        "threadpools": threadpools(),
        "env": determinism_env(extra_env),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print this interpreter's environment as one JSON object.")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="also report environment variable NAME when set (repeatable)",
    )
    args = parser.parse_args(argv)
    data = collect(extra_env=args.env)
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
