"""pytest plugin (entry point `pytest11: mlrepro`): reproducibility as fixtures.

A project writes its parity tests in a few lines::

    def test_image_is_reproducible(mlrepro_report):
        assert_reproducible(mlrepro_report)

Fixtures (session-scoped, built on first use, in this order): `mlrepro_config`
-> `mlrepro_engine` -> `mlrepro_image` -> `mlrepro_runs` -> `mlrepro_report`.
Without an engine the Docker fixtures skip, except under CI=true where a
missing engine is a failure. A failing test that used them gets the
differences and the container's step logs as report sections.

Importing this module is cheap (docker is imported by the fixtures), because
pytest loads it in every session of every project that installs mlrepro.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

_RESULTS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlrepro")
    group.addoption("--mlrepro-config", default=None, help="pyproject.toml (or directory) with [tool.mlrepro]; default: the rootdir's")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS_KEY] = {}
    config.addinivalue_line("markers", "docker: needs a real Docker engine (a failure, not a skip, when CI=true)")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisite(reason: str) -> NoReturn:
    """A prerequisite the test cannot run without is missing: skip locally, fail under CI=true.

    The one place that decides, so that no test skips silently in CI.
    """
    if in_ci():
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_engine():
    """An Engine, or skip (locally) / fail (CI=true) with the reason."""
    from harness.docker import Engine
    from harness.errors import EngineError

    try:
        return Engine.connect()
    except EngineError as exc:
        missing_prerequisite(f"no Docker engine: {exc}")


def assert_reproducible(report) -> None:
    """Fail with the one-line verdict and every difference unless the report is clean."""
    if not report.reproducible:
        lines = [report.verdict()] + [f"  - {d.message}" for d in report.drift]
        raise AssertionError("\n".join(lines))


@pytest.fixture(scope="session")
def mlrepro_config(request: pytest.FixtureRequest):
    from harness.config import load_config

    option = request.config.getoption("--mlrepro-config")
    return load_config(Path(option) if option else Path(request.config.rootpath))


@pytest.fixture(scope="session")
def mlrepro_engine():
    return require_engine()


@pytest.fixture(scope="session")
def mlrepro_image(mlrepro_config, mlrepro_engine):
    """(lock, ImageInfo): the image for the current tree, built or reused by content hash."""
    from harness.verify import prepare

    return prepare(mlrepro_config, mlrepro_engine, progress=lambda message: None)


@pytest.fixture(scope="session")
def mlrepro_runs(request: pytest.FixtureRequest, mlrepro_config, mlrepro_engine, mlrepro_image):
    """(image RunResult, host RunResult): the steps run in the container and on the host."""
    from harness.verify import run_both

    runs = run_both(mlrepro_config, mlrepro_engine, mlrepro_image[1], progress=lambda message: None)
    request.config.stash[_RESULTS_KEY]["runs"] = runs
    return runs


@pytest.fixture(scope="session")
def mlrepro_report(request: pytest.FixtureRequest, mlrepro_config, mlrepro_image, mlrepro_runs):
    """The comparison of the two runs against each other and the lock."""
    from harness.verify import compare_runs

    lock, image = mlrepro_image
    report = compare_runs(mlrepro_config, lock, image, *mlrepro_runs)
    request.config.stash[_RESULTS_KEY]["report"] = report
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and report.when == "call":
        names = getattr(item, "fixturenames", ())
        results = item.config.stash.get(_RESULTS_KEY, {})
        if "mlrepro_report" in names and "report" in results:
            mlr = results["report"]
            body = [mlr.verdict()] + [f"{d.severity}: {d.message}" for d in (*mlr.drift, *mlr.notes)]
            body += [a.summary for a in mlr.artifacts]
            report.sections.append(("mlrepro differences", "\n".join(body)))
        if ("mlrepro_runs" in names or "mlrepro_report" in names) and "runs" in results:
            for run in results["runs"]:
                for step, log in run.logs.items():
                    report.sections.append((f"mlrepro {run.where} log: {step}", log[-4000:] or "(no output)"))
    return report


# Persistent prediction workers ([tool.mlrepro.worker]), for property-based parity tests.

_WORKERS_KEY = pytest.StashKey[tuple]()


@pytest.fixture(scope="session")
def mlrepro_worker_sides(request: pytest.FixtureRequest, mlrepro_config, mlrepro_engine, mlrepro_image):
    """(ContainerWorker, HostWorker), both started (setup steps run, worker ready); removed at session end."""
    if mlrepro_config.worker is None:
        pytest.skip("no [tool.mlrepro.worker] in the configuration: add command, setup and schema to run worker parity tests")
    from harness.parity.worker import ContainerWorker, HostWorker, started_together

    sides = (ContainerWorker(mlrepro_engine, mlrepro_config, mlrepro_image[1].tag), HostWorker(mlrepro_config))
    request.config.stash[_WORKERS_KEY] = sides
    with started_together(*sides):
        yield sides


@pytest.fixture(scope="session")
def mlrepro_workers(mlrepro_worker_sides):
    """(container Worker, host Worker): send the same rows to both (`harness.parity.worker.ask_both`) and compare."""
    return tuple(side.worker for side in mlrepro_worker_sides)


@pytest.fixture(scope="session")
def mlrepro_schema(mlrepro_config, mlrepro_worker_sides):
    """The feature schema ([{"name", "min", "max"}]) from the host side's setup output, per `worker.schema`."""
    return mlrepro_worker_sides[1].schema()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")  # a second implementation, beside the one above
def pytest_runtest_makereport_worker_logs(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and report.when == "call" and "mlrepro_workers" in getattr(item, "fixturenames", ()):
        for side in item.config.stash.get(_WORKERS_KEY, ()):
            if side.worker is not None:
                report.sections.append((f"mlrepro {side.where} worker stderr", side.worker.stderr[-4000:] or "(no output)"))
    return report
