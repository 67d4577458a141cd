"""Integration fixtures: a real engine (never mocked) and this repository's image.

Docker tests skip locally without an engine but fail under CI=true
(`harness.plugin.require_engine`). Every test module here is marked `docker`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.config import load_config
from harness.plugin import require_engine

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def engine():
    return require_engine()


@pytest.fixture(scope="session")
def repo_config():
    return load_config(ROOT)


@pytest.fixture(scope="session")
def prepared(repo_config, engine):
    """(lock, ImageInfo) of this repository's image, built or reused."""
    from harness.verify import prepare

    return prepare(repo_config, engine, progress=lambda m: None)


@pytest.fixture
def other_project(tmp_path) -> Path:
    """A private copy of the second, differently shaped project (tests may edit it)."""
    dest = tmp_path / "otherproject"
    shutil.copytree(FIXTURES / "otherproject", dest, ignore=shutil.ignore_patterns("wheels", "__pycache__"))
    return dest
