"""Rebuild comparison (issue 19): pure manifests and verdicts, no Docker.

Properties: a manifest compared with itself is identical; any single change to
one file is named, at that path only, with the reason that change deserves.
Examples pin the reasons by file kind, the tar reading (hashing in chunks,
hard links, excluded engine paths, `./` names), the JSON, the console lines,
the context copy under a umask, and the one-line refusal without buildah.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness.cli.rebuild import SHOWN, render
from harness.compare.filesystems import (
    CONFIG_FIELDS,
    REASONS,
    FileEntry,
    compare_builds,
    config_fields,
    content_reason,
    manifest,
)
from harness.image.rebuild import Build, RebuildResult, copy_context

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ strategies

_names = st.text(alphabet="abcxyz_.", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))
_suffixes = st.sampled_from(["", ".py", ".pyc", ".so", ".txt"])
_paths = st.builds(lambda parts, suffix: "/" + "/".join(parts) + suffix, st.lists(_names, min_size=1, max_size=4), _suffixes)
_sha = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())


@st.composite
def entries(draw, path: str | None = None) -> FileEntry:
    path = path or draw(_paths)
    kind = draw(st.sampled_from(["file", "dir", "symlink"]))
    return FileEntry(
        path=path, kind=kind, mode=draw(st.integers(0, 0o7777)), uid=draw(st.sampled_from([0, 1000, 10001])),
        gid=draw(st.sampled_from([0, 1000, 10001])), size=draw(st.integers(0, 10**9)) if kind == "file" else 0,
        sha256=draw(_sha) if kind == "file" else "", target=draw(_paths) if kind == "symlink" else "",
        mtime=draw(st.integers(0, 2**33)),
    )


manifests = st.lists(entries(), max_size=20).map(lambda es: {e.path: e for e in es})
configs = st.fixed_dictionaries({"Config.Env": st.lists(st.text(max_size=5), max_size=3), "Config.User": st.sampled_from(["", "10001"]),
                                 "Created": st.text(max_size=10)})


def _change(entry: FileEntry, what: str) -> tuple[FileEntry, str]:
    """`entry` with one thing changed, and the reason the comparison must give."""
    if what == "content":
        if entry.kind != "file":
            return dataclasses.replace(entry, kind="file", sha256="0" * 64, target="", size=1), "type differs"
        return dataclasses.replace(entry, sha256=hashlib.sha256(entry.sha256.encode()).hexdigest()), content_reason(entry.path)
    if what == "mode":
        return dataclasses.replace(entry, mode=entry.mode ^ 0o020), "mode differs"
    if what == "owner":
        return dataclasses.replace(entry, uid=entry.uid + 1), "owner differs"
    if what == "kind":
        return dataclasses.replace(entry, kind="dir" if entry.kind != "dir" else "symlink", sha256="", target=""), "type differs"
    raise AssertionError(what)


# ------------------------------------------------------------------ properties


@given(manifests, configs)
def test_a_manifest_compared_with_itself_is_identical(files, config):
    result = compare_builds(files, dict(files), config, dict(config), mtimes=True)
    assert result.identical
    assert result.verdict == "IDENTICAL CONTENT"
    assert result.files_compared == len(files)
    assert result.files == () and result.config == ()


@given(manifests, st.data(), st.sampled_from(["content", "mode", "owner", "kind"]))
@example(files={"/opt/venv/x/__pycache__/a.cpython-311.pyc": FileEntry("/opt/venv/x/__pycache__/a.cpython-311.pyc", "file", 0o644, 0, 0, 9, "a" * 64)},
         data=None, what="content")
def test_a_single_change_is_named_with_its_reason(files, data, what):
    if not files:
        files = {"/a": FileEntry("/a", "file", 0o644, 0, 0, 1, "b" * 64)}
    path = sorted(files)[0] if data is None else data.draw(st.sampled_from(sorted(files)))
    changed, reason = _change(files[path], what)
    result = compare_builds(files, {**files, path: changed}, {}, {})
    assert [(d.path, d.reason) for d in result.files] == [(path, reason)]
    assert result.verdict == "DIFFERS"
    assert reason in REASONS


@given(manifests, entries(), st.booleans())
def test_a_file_in_one_build_only_is_named_by_the_build_that_has_it(files, extra, in_first):
    files.pop(extra.path, None)
    first, second = ({**files, extra.path: extra}, files) if in_first else (files, {**files, extra.path: extra})
    result = compare_builds(first, second, {}, {})
    assert [(d.path, d.reason) for d in result.files] == [(extra.path, "only in first build" if in_first else "only in second build")]
    assert result.files_compared == len(files) + 1


@given(entries())
def test_mtimes_differ_only_when_asked_for(entry):
    later = dataclasses.replace(entry, mtime=entry.mtime + 1)
    assert compare_builds({entry.path: entry}, {entry.path: later}, {}, {}).identical
    assert [d.reason for d in compare_builds({entry.path: entry}, {entry.path: later}, {}, {}, mtimes=True).files] == ["mtime differs"]


# ------------------------------------------------------------------ examples


def test_content_reasons_name_what_the_file_is():
    assert content_reason("/opt/venv/lib/python3.11/site-packages/numpy/__pycache__/x.cpython-311.pyc") == "byte-compiled file differs"
    assert content_reason("/opt/venv/lib/python3.11/site-packages/numpy-2.4.6.dist-info/RECORD") == "RECORD lists other hashes"
    assert content_reason("/built") == "content differs"
    assert content_reason("/etc/RECORD") == "content differs"


def test_several_changes_to_one_file_are_all_named():
    a = FileEntry("/app/x.py", "file", 0o644, 0, 0, 3, "a" * 64)
    b = dataclasses.replace(a, sha256="b" * 64, mode=0o664, gid=5)
    (diff,) = compare_builds({a.path: a}, {a.path: b}, {}, {}).files
    assert diff.reason == "content differs; mode differs; owner differs"


def test_config_fields_are_compared_and_times_reported_apart():
    attrs = {"Architecture": "amd64", "Os": "linux", "Created": "2026-01-01T00:00:00Z",
             "Config": {"Env": ["A=1"], "Cmd": ["python"], "User": "10001:10001", "WorkingDir": "/app", "Labels": {"k": "v"},
                        "Entrypoint": None, "ExposedPorts": {"80/tcp": {}}}}
    first = config_fields(attrs)
    assert set(first) == {*CONFIG_FIELDS, "Created"}
    assert first["Config.Entrypoint"] is None and first["Config.ExposedPorts"] == {"80/tcp": {}}
    later = config_fields({**attrs, "Created": "2026-01-02T00:00:00Z", "Config": {**attrs["Config"], "Env": ["A=2"]}})
    result = compare_builds({}, {}, first, later)
    assert [(d.field, d.first, d.second) for d in result.config] == [("Config.Env", ["A=1"], ["A=2"])]
    assert result.times == {"Created": ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")}
    assert compare_builds({}, {}, first, config_fields({**attrs, "Created": "x"})).identical


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_manifest_hashes_members_as_they_pass():
    big = os.urandom(3 << 20)  # more than one read chunk
    raw = _tar([
        (_info("./", tarfile.DIRTYPE, mode=0o755), None),
        (_info("./.bashrc", mode=0o644, uid=0), b"hi\n"),
        (_info("./opt/big.bin", mode=0o600, uid=10001, gid=10001, mtime=7), big),
        (_info("./opt/same.bin", tarfile.LNKTYPE, linkname="opt/big.bin", mode=0o600), None),
        (_info("./bin", tarfile.SYMTYPE, linkname="usr/bin", mode=0o777), None),
        (_info("./.dockerenv", mode=0o755), b""),
        (_info("./proc/self", tarfile.DIRTYPE, mode=0o555), None),
    ])
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as tar:
        files = manifest(((m, tar.extractfile(m) if m.isreg() else None) for m in tar), exclude=frozenset({"/.dockerenv", "/proc"}))
    assert sorted(files) == ["/", "/.bashrc", "/bin", "/opt/big.bin", "/opt/same.bin"]
    assert files["/opt/big.bin"] == FileEntry("/opt/big.bin", "file", 0o600, 10001, 10001, len(big), hashlib.sha256(big).hexdigest(), "", 7)
    assert files["/opt/same.bin"].kind == "hardlink"
    assert (files["/opt/same.bin"].sha256, files["/opt/same.bin"].target) == (hashlib.sha256(big).hexdigest(), "/opt/big.bin")
    assert (files["/bin"].kind, files["/bin"].target) == ("symlink", "usr/bin")
    assert files["/.bashrc"].sha256 == hashlib.sha256(b"hi\n").hexdigest()


def _result(first: dict, second: dict, builder: str = "docker", ids: tuple[str, str] = ("sha256:" + "1" * 64, "sha256:" + "2" * 64)) -> RebuildResult:
    comparison = compare_builds(first, second, {"Created": "t1"}, {"Created": "t2"})
    builds = (Build(0o022, ids[0], len(first), 1.0, 1.0), Build(0o002, ids[1], len(second), 1.0, 1.0))
    return RebuildResult("p", "mlrepro-test/p", "c" * 64, builder, builds, comparison)


def test_json_is_deterministic_and_leaves_out_times_and_legacy_ids():
    a = FileEntry("/built", "file", 0o644, 0, 0, 20, "a" * 64, mtime=1)
    b = dataclasses.replace(a, sha256="b" * 64, mtime=2)
    data = _result({a.path: a}, {a.path: b}).to_json()
    text = json.dumps(data, sort_keys=True)
    assert text == json.dumps(_result({a.path: a}, {a.path: b}).to_json(), sort_keys=True)
    assert data["verdict"] == "DIFFERS" and data["files_compared"] == 1
    assert data["files"] == [{"path": "/built", "reason": "content differs",
                              "first": {"kind": "file", "mode": "0644", "uid": 0, "gid": 0, "size": 20, "sha256": "a" * 64},
                              "second": {"kind": "file", "mode": "0644", "uid": 0, "gid": 0, "size": 20, "sha256": "b" * 64}}]
    assert data["times_not_compared"] == ["Created"] and "t1" not in text and "image_ids" not in data
    assert [v["umask"] for v in data["variations"]] == ["022", "002"]


def test_console_names_each_differing_file_then_the_verdict():
    entries_ = {f"/f{i:03}": FileEntry(f"/f{i:03}", "file", 0o644, 0, 0, 1, "a" * 64) for i in range(SHOWN + 3)}
    changed = {p: dataclasses.replace(e, mode=0o600) for p, e in entries_.items()}
    lines = render(_result(entries_, changed))
    assert lines[0] == "/f000: mode differs"
    assert lines[SHOWN] == "... and 3 more differing files (--json PATH lists them all)"
    assert "Created (a time, not compared): t1 / t2" in lines
    assert lines[-1] == f"DIFFERS: {SHOWN + 3} of {SHOWN + 3} files differ ({SHOWN + 3} mode differs) (mtimes ignored)"
    same = render(_result(entries_, dict(entries_)))
    assert same[-1] == f"IDENTICAL CONTENT: {SHOWN + 3} files and the image config of two no-cache builds of mlrepro-test/p agree (mtimes ignored)"


def test_buildah_builds_must_also_share_the_image_id():
    entry = FileEntry("/a", "file", 0o644, 0, 0, 1, "a" * 64)
    other = _result({"/a": entry}, {"/a": entry}, builder="buildah")
    assert not other.identical and other.verdict == "DIFFERS"
    assert render(other)[-1] == "DIFFERS: 0 of 1 files differ; the image IDs differ (mtimes ignored)"
    same = _result({"/a": entry}, {"/a": entry}, builder="buildah", ids=("sha256:" + "3" * 64,) * 2)
    assert same.identical and same.to_json()["image_ids_equal"] is True


@pytest.mark.parametrize("umask, file_mode, exec_mode, dir_mode", [(0o022, 0o644, 0o755, 0o755), (0o002, 0o664, 0o775, 0o775)])
def test_context_copy_gets_the_modes_of_a_checkout_under_the_umask(tmp_path, umask, file_mode, exec_mode, dir_mode):
    src = tmp_path / "src"
    (src / "app" / "sub").mkdir(parents=True)
    (src / "Dockerfile").write_text("FROM x\n")
    (src / ".dockerignore").write_text("*\n!Dockerfile\n!app/\n")
    (src / "app" / "sub" / "a.py").write_text("1\n")
    (src / "app" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "app" / "run.sh", 0o700)
    (src / "secret.txt").write_text("not in the context\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    assert copy_context(src, src / "Dockerfile", dest, umask) == 4
    assert not (dest / "secret.txt").exists()
    assert (dest / "app" / "sub" / "a.py").read_text() == "1\n"
    assert (dest / "app" / "sub" / "a.py").stat().st_mode & 0o777 == file_mode
    assert (dest / "app" / "run.sh").stat().st_mode & 0o777 == exec_mode
    assert (dest / "app" / "sub").stat().st_mode & 0o777 == dir_mode


def test_reproducible_build_without_buildah_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "DOCKER_HOST": "unix:///nonexistent/mlrepro-rebuild.sock"}
    for command in (["build", "--reproducible"], ["rebuild-check", "--reproducible"]):
        proc = subprocess.run([sys.executable, "-m", "harness.cli", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: a reproducible build needs buildah"), proc.stderr
        assert "only be compared by content" in lines[0] and "apt-get install buildah" in lines[0]
        assert "Traceback" not in proc.stderr


LEGACY_LOG = """\
Step 1/6 : ARG BASE_IMAGE=mlrepro/python:3.11-bookworm
Step 2/6 : FROM ${BASE_IMAGE} AS build
 ---> f4bdc9fb81ae
Step 3/6 : COPY app/ /app/
 ---> 9b3791c7df01
Step 4/6 : RUN chmod -R u=rwX,go=rX /app
 ---> Running in 98c9236d499d
Removing intermediate container 98c9236d499d
 ---> e8293c71af38
Step 5/6 : from ${BASE_IMAGE}
 ---> f4bdc9fb81ae
Step 6/6 : COPY --from=build /app/ /app/
 ---> 24e215e6bee1
Successfully built 24e215e6bee1
"""


def test_the_images_a_build_made_leave_out_its_base():
    from harness.docker.filesystem import built_images

    assert built_images(LEGACY_LOG.splitlines()) == ["9b3791c7df01", "e8293c71af38", "24e215e6bee1"]
    assert built_images(["Step 1/1 : FROM scratch", " ---> Using cache", " ---> abc"]) == []
