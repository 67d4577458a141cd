"""`mlrepro base-image`'s offline path for real: debootstrap, docker import, idempotent.

The image every offline engine builds from; on our own CI machines it usually
exists already, so this test builds a second one under a throwaway name to
prove the path still works (about 45 s), then removes it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from harness.plugin import missing_prerequisite
from harness.image.base import ensure_base
from harness.ownership import RUN_ID

REF = f"mlrepro-test/python-base:{RUN_ID}"


@pytest.fixture
def build_config(repo_config):
    if not (shutil.which("debootstrap") or os.path.exists("/usr/sbin/debootstrap")) or os.geteuid() != 0:
        missing_prerequisite("debootstrap and root are needed to test the offline base image")
    # A base that cannot exist, so the fallback must be built.
    return dataclasses.replace(repo_config.build, base_image="base.invalid/python:none", fallback_base_image=REF)


def test_local_base_image_is_built_once_and_runs_python_offline(engine, build_config):
    lines: list[str] = []
    try:
        name, image_id, created = ensure_base(engine, build_config, progress=lines.append)
        assert (name, created) == (REF, True)
        assert engine.image_id(REF) == image_id
        assert any("debootstrap" in line for line in lines) and len(lines) < 15  # phases, not packages
        again = ensure_base(engine, build_config, progress=lines.append)
        assert again == (REF, image_id, False)  # idempotent: nothing rebuilt
        with engine.container(REF, role="test") as box:
            result = box.exec(["python3", "-c", "import sys, venv, ssl; print(sys.version_info[:2])"], timeout=60)
        assert result.exit_code == 0 and result.output.strip() == "(3, 11)"
    finally:
        if engine.image_id(REF):
            engine.client.images.remove(REF, force=True)
