"""The content hash changes exactly when something that goes into the image changes; so do the git labels."""

import os
import subprocess
from pathlib import Path

import pytest

from harness import git as git_reader
from harness.config import parse_config
from harness.git import provenance, without_credentials
from harness.image.base import apt_mirror
from harness.image.build import content_hash, git_provenance
from harness.sides.side import Workspace
from harness.sides.steps import expand, forwarded_env


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
    workspace = Workspace(root="/w", out="/o", inputs="/i")
    cmd = expand(("python", "-m", "p", "--out", "{out}/x.csv", "--in", "{inputs}/a.csv"), workspace, "/venv/bin/python")
    assert cmd == ["/venv/bin/python", "-m", "p", "--out", "/o/x.csv", "--in", "/i/a.csv"]
    assert expand(("Rscript", "{out}"), workspace, "/py") == ["Rscript", "/o"]


def test_forwarded_env_takes_patterns_then_fixed_values(tmp_path):
    (tmp_path / "in.csv").write_text("a\n")
    config = parse_config({"inputs": ["in.csv"], "run": {"pass_env": ["OPENBLAS_*"], "env": {"OMP_NUM_THREADS": "1"}}}, tmp_path)
    env = forwarded_env(config, {"OPENBLAS_CORETYPE": "Haswell", "HOME": "/root", "OMP_NUM_THREADS": "8"})
    assert env == {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1"}


# The build args from git (harness.git, shared with the release) -----------------------------------


def _git(root: Path, *args: str, **env: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env={**os.environ, **env})
    return done.stdout.strip()


def test_provenance_names_the_commit_not_the_clock_and_strips_remote_credentials(tmp_path):
    assert provenance(tmp_path) == {"VCS_REF": "unknown", "CREATED": "1970-01-01T00:00:00Z", "VCS_SOURCE": "unknown"}
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "remote", "add", "origin", "https://ci-bot:s3cr3t-t0ken@git.example.com/ml/project.git")
    (tmp_path / "a.txt").write_text("a")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a", GIT_COMMITTER_DATE="2024-05-01T12:00:00+00:00")
    head = _git(tmp_path, "rev-parse", "HEAD")
    args = provenance(tmp_path)
    assert args == {"VCS_REF": head, "CREATED": "2024-05-01T12:00:00+00:00", "VCS_SOURCE": "https://git.example.com/ml/project.git"}
    assert len(head) == 40 and provenance(tmp_path) == args  # the commit's time, not the clock: the same on every build
    assert git_provenance is provenance  # build.py's name for it, used by build_args


@pytest.mark.parametrize("url, expected", [
    ("https://user:token@host.example/x.git", "https://host.example/x.git"),
    ("https://token@host.example:8443/x.git?y=1", "https://host.example:8443/x.git?y=1"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),  # scp-like ssh: a user name, no secret
    ("https://host.example/x.git", "https://host.example/x.git"),
    ("", ""),
])
def test_remote_urls_lose_their_credentials(url, expected):
    assert without_credentials(url) == expected


def test_git_runner_gives_none_without_git_or_repository(tmp_path, monkeypatch):
    assert git_reader.run(tmp_path, "rev-parse", "HEAD") is None  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_reader.run(tmp_path, "--version") is None
    assert git_reader.state(tmp_path).revision is None


def test_a_reused_image_must_carry_the_full_content_hash_in_its_label():
    from harness.image.build import reuse_problem
    from harness.ownership import LABEL_CONTENT_HASH

    full = "ab" * 32
    assert reuse_problem("p:abababababababab", {LABEL_CONTENT_HASH: full}, full) is None
    other = reuse_problem("p:abababababababab", {LABEL_CONTENT_HASH: "ab" * 8 + "cd" * 24}, full)
    assert other == (f"image p:abababababababab exists but its {LABEL_CONTENT_HASH} label is ababababababababcdcdcdcd..., "
                     f"not abababababababababababab...: it was not built from this tree; building it again")
    assert "has no io.mlrepro.content-hash label" in reuse_problem("p:x", {}, full)


def _members(tar_bytes: bytes) -> list[tuple]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        return [(m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                 archive.extractfile(m).read() if m.isfile() else None) for m in archive.getmembers()]


def test_the_hashed_tar_is_the_tar_docker_py_sends_but_for_times(context):
    """Issue 13: what is hashed is what the engine receives, entry for entry (links, directories, modes, names)."""
    import io

    from docker.utils.build import tar as docker_tar

    from harness.docker.engine import write_context_tar

    (context / "app" / "empty").mkdir()
    (context / "app" / "link.py").symlink_to("main.py")
    (context / "app" / "odd\nname ü.txt").write_bytes(b"\x00\xff")
    (context / "app" / "main.py").chmod(0o600)
    ours = io.BytesIO()
    write_context_tar(context, context / "Dockerfile", ours)
    patterns = [line for line in (context / ".dockerignore").read_text().splitlines() if line]
    theirs = docker_tar(str(context), exclude=patterns, dockerfile=("Dockerfile", None)).read()
    assert _members(ours.getvalue()) == _members(theirs)
    assert {m[0] for m in _members(ours.getvalue())} >= {"Dockerfile", "app/empty", "app/link.py", "app/odd\nname ü.txt"}


@pytest.mark.parametrize("change", ["mode", "empty directory", "symlink target", "name with a newline", "hard link"])
def test_the_hash_sees_what_the_build_sees(context, change):
    h = lambda: content_hash(context, context / "Dockerfile", {}, "sha256:b")  # noqa: E731
    (context / "app" / "other.py").write_text("print(1)\n")  # the same bytes as main.py
    (context / "app" / "link.py").symlink_to("main.py")
    first = h()
    os.utime(context / "app" / "main.py", (1, 1))
    assert h() == first  # times are not content
    if change == "mode":
        (context / "app" / "main.py").chmod(0o600)
    elif change == "empty directory":
        (context / "app" / "data").mkdir()
    elif change == "symlink target":
        (context / "app" / "link.py").unlink()
        (context / "app" / "link.py").symlink_to("other.py")  # same content behind it, another link
    elif change == "name with a newline":
        (context / "app" / "main.py").rename(context / "app" / "main.py\n")
        (context / "app" / "main.py").symlink_to("main.py\n")
    else:
        (context / "app" / "other.py").unlink()
        os.link(context / "app" / "main.py", context / "app" / "other.py")
    assert h() != first


def test_hashing_a_large_context_file_takes_bounded_memory(tmp_path):
    """Issue 13: a 1 GB file in the context cost 1.1 GB of memory on every warm build (read whole to hash it).
    Now the tar is streamed through the hash: a 512 MB (sparse) file, hashed in a fresh interpreter, peaks far below it."""
    import sys

    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY big.bin /big.bin\n")
    with open(tmp_path / "big.bin", "wb") as fh:
        fh.truncate(512 * 1024 * 1024)
    # VmHWM, the peak of this process's own memory: ru_maxrss would carry over the forking pytest's size.
    code = ("import sys; from pathlib import Path; from harness.docker.engine import context_digest; "
            "p = Path(sys.argv[1]); context_digest(p, p / 'Dockerfile'); "
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip()) / 1024
    assert peak_mb < 200, f"hashing a 512 MB context file peaked at {peak_mb:.0f} MB"
