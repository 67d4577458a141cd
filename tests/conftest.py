"""Test settings in one place: hypothesis profiles and the Docker policy.

Profiles: `dev` (default, quick) and `ci` (selected when CI=true: more examples,
no deadline because the machines are noisy). Docker tests use the plugin's
`require_engine()`: skipped locally without an engine, a failure under CI=true.
The session ends with a leftover check: anything the harness labeled that the
session left behind fails it (see the hooks at the end).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# Leftover check (issue 8): once the whole session is over (fixtures torn down), nothing
# the harness labeled may remain. Only this session's doing counts: what existed before
# it started, and what processes still running made (another session on the same
# engine), are left out. A leftover fails the session and is listed.
_LEFTOVERS_AT_START = pytest.StashKey["set[str] | None"]()


def _leftovers() -> set[str] | None:
    """What this process's runs, or runs whose process is gone, left behind; None without an engine."""
    try:
        from harness.docker.engine import Engine
        from harness.ownership import LABEL_RUN, RUN_ID
        from harness.errors import EngineError
        from harness.ownership import run_processes, run_tempdirs

        resources = Engine.connect(timeout=5).managed_resources()
    except (ImportError, EngineError):
        return None
    found = {f"{r.kind} {r.id[:12]} (run {r.labels.get(LABEL_RUN)})" for r in resources if r.labels.get(LABEL_RUN) == RUN_ID or not r.owner_alive}
    found |= {f"temporary directory {p}" for p in run_tempdirs(RUN_ID) + run_tempdirs(include_live=False)}
    found |= {f"host process {pid}" for pid in run_processes(RUN_ID) + run_processes(include_live=False)}
    return found


def pytest_sessionstart(session):
    session.config.stash[_LEFTOVERS_AT_START] = _leftovers()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_LEFTOVERS_AT_START, None)
    after = _leftovers()
    if before is None or after is None:
        return
    leaked = sorted(after - before)
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["labeled resources left behind after the session (run 'mlrepro clean'):", *(f"  {item}" for item in leaked)]
        if reporter is not None:
            reporter.write_sep("=", "mlrepro leftover check FAILED", red=True, bold=True)
            for line in lines:
                reporter.write_line(line, red=True)
        else:
            print("\n".join(lines))
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
