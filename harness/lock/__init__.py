"""The lock lifecycle: `requirements.txt` parsed, refreshed with pip-compile, and checked for freshness.

Modules, one concept each:

- `lockfile`: the lock's text: pins and hashes (`parse_lock`), its header's Python, its '# via' annotations.
- `requirements`: requirements.in: the direct dependencies, released packages only.
- `wheels`: what a wheel's metadata declares, which wheels a directory holds, their hashes.
- `freshness`: `mlrepro lock --check`: is the lock still the resolution of requirements.in (pure, offline).
- `compiler`: pip-compile's arguments and environment, one run's result, its failures as one line.
- `update`: `mlrepro lock`: validate the inputs (`plan_refresh`), resolve (`refresh`), the pin changes.
- `resolvers`: where pip-compile runs: the `Resolver` seam, the host, a container of the base image.

The names below are what the CLI and callers use; the rules' building blocks
stay in their modules. Nothing here imports docker: `--check` needs no engine.
"""

from harness.lock.compiler import CompileOptions
from harness.lock.freshness import CheckResult, Finding, check
from harness.lock.lockfile import Lock, Pin, parse_lock, read_lock
from harness.lock.resolvers import HostResolver, Resolver, container_resolver, host_target
from harness.lock.update import LockUpdate, PinChange, RefreshPlan, plan_refresh, refresh

__all__ = [
    "CheckResult", "CompileOptions", "Finding", "HostResolver", "Lock", "LockUpdate", "Pin", "PinChange",
    "RefreshPlan", "Resolver", "check", "container_resolver", "host_target", "parse_lock", "plan_refresh",
    "read_lock", "refresh",
]
