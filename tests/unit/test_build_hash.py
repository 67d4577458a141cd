"""The content hash changes exactly when something that goes into the image changes."""

from pathlib import Path

import pytest

from harness.image.base import apt_mirror
from harness.image.build import content_hash
from harness.sides.runner import expand, forwarded_env
from harness.config import parse_config


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY app/ /app/\n")
    (tmp_path / ".dockerignore").write_text("*\n!Dockerfile\n!app/\n**/__pycache__\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print(1)\n")
    (tmp_path / "notes.txt").write_text("not in the context\n")
    return tmp_path


def test_hash_follows_context_args_and_base(context):
    h = lambda args={"A": "1"}, base="sha256:b": content_hash(context, context / "Dockerfile", args, base)  # noqa: E731
    first = h()
    assert h() == first
    (context / "notes.txt").write_text("ignored by .dockerignore\n")
    (context / "app" / "__pycache__").mkdir()
    (context / "app" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert h() == first
    assert h(args={"A": "2"}) != first
    assert h(base="sha256:c") != first
    (context / "app" / "main.py").write_text("print(2)\n")
    assert h() != first


def test_apt_mirror_reads_both_source_formats():
    deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nURIs: http://deb.debian.org/debian-security\n"
    assert apt_mirror(deb822) == "http://deb.debian.org/debian"
    assert apt_mirror("deb [arch=amd64] http://mirror.example/debian/ bookworm main\n") == "http://mirror.example/debian"
    assert apt_mirror("deb https://packages.cloud.google.com/apt cloud-sdk main\n") is None


def test_expand_substitutes_placeholders_and_interpreter():
    cmd = expand(("python", "-m", "p", "--out", "{out}/x.csv", "--in", "{inputs}/a.csv"), out="/o", inputs="/i", python="/venv/bin/python")
    assert cmd == ["/venv/bin/python", "-m", "p", "--out", "/o/x.csv", "--in", "/i/a.csv"]
    assert expand(("Rscript", "{out}"), out="/o", inputs="/i", python="/py") == ["Rscript", "/o"]


def test_forwarded_env_takes_patterns_then_fixed_values(tmp_path):
    (tmp_path / "in.csv").write_text("a\n")
    config = parse_config({"inputs": ["in.csv"], "run": {"pass_env": ["OPENBLAS_*"], "env": {"OMP_NUM_THREADS": "1"}}}, tmp_path)
    env = forwarded_env(config, {"OPENBLAS_CORETYPE": "Haswell", "HOME": "/root", "OMP_NUM_THREADS": "8"})
    assert env == {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1"}
