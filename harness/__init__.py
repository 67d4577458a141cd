"""mlrepro: prove that an ML container computes exactly what was tested.

The public API is the names in `__all__`, importable from `harness` directly
(`verify` and `release` are sub-modules: `harness.verify.verify`,
`harness.release.release`).
They are loaded on first use (PEP 562), because pytest imports this package
in every session of every project that installs mlrepro (the `pytest11`
plugin), and that must stay cheap. The layout, one concept per module, is in
docs/architecture.md:

    config -> image (base, wheelhouse, build) -> sides (host, container) -> compare -> report -> release
    lock (requirements, freshness, compile, resolvers)    parity (protocol, schema, strategies, worker)
    docker (the only importer of docker/testcontainers)    ownership (run ids, labels, stale finders)
    cli (one module per command)                           plugin (pytest fixtures)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # configuration
    "Config": "harness.config", "load_config": "harness.config", "parse_config": "harness.config",
    # errors
    "MlreproError": "harness.errors", "ConfigError": "harness.errors", "EngineError": "harness.errors",
    "BuildError": "harness.errors", "StepError": "harness.errors", "LockError": "harness.errors",
    "EXIT_OK": "harness.errors", "EXIT_DRIFT": "harness.errors", "EXIT_ERROR": "harness.errors",
    # the engine adapter
    "Engine": "harness.docker",
    # verification
    "prepare": "harness.verify", "run_both": "harness.verify", "run_sides": "harness.verify",
    "compare_runs": "harness.verify",
    # sides
    "Side": "harness.sides", "HostSide": "harness.sides", "ContainerSide": "harness.sides",
    "RunResult": "harness.sides", "run_steps": "harness.sides",
    # comparison and report
    "ArtifactRule": "harness.compare", "compare_artifact": "harness.compare",
    "Report": "harness.report", "ImageInfo": "harness.report",
    # lock
    "Lock": "harness.lock", "read_lock": "harness.lock",
    # parity
    "HostWorker": "harness.parity", "ContainerWorker": "harness.parity", "started_together": "harness.parity",
    "ask_both": "harness.parity",
    # release
    "ReleaseTarget": "harness.release", "release_project": "harness.release",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return __all__
