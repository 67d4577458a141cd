"""The wheelhouse target: tags for the image's platform, and the freshness stamp."""

import json
import os

from harness.lock import parse_lock
from harness.image.wheelhouse import STAMP, Target, is_fresh, why_stale, write_stamp


def test_platform_tags_cover_older_glibc_newest_first():
    tags = Target("3.11", "x86_64", "2.36").platforms()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags and "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags
    assert tags.index("manylinux_2_28_x86_64") < tags.index("manylinux_2_17_x86_64")


def test_pip_args_name_the_target_interpreter():
    args = Target("3.12", "aarch64", "2.36").pip_args()
    assert args[args.index("--python-version") + 1] == "3.12"
    assert "cp312" in args and "manylinux_2_36_aarch64" in args


def test_stamp_decides_freshness(tmp_path):
    lock = parse_lock("numpy==2.0 --hash=sha256:" + "a" * 64 + "\n")
    target = Target("3.11", "x86_64", "2.36")
    assert not is_fresh(tmp_path, lock, target)
    (tmp_path / "numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"x")
    assert write_stamp(tmp_path, lock, target) == ["numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"]
    assert is_fresh(tmp_path, lock, target)
    assert not is_fresh(tmp_path, lock, Target("3.12", "x86_64", "2.36"))
    assert not is_fresh(tmp_path, parse_lock("numpy==2.1 --hash=sha256:" + "b" * 64 + "\n"), target)
    (tmp_path / "stray-1.0-py3-none-any.whl").write_bytes(b"y")
    assert why_stale(tmp_path, lock, target) == "other wheels than the stamped ones"


def test_a_changed_wheel_makes_the_wheelhouse_stale_and_a_touched_one_does_not(tmp_path):
    """The stamp holds each wheel's size, mtime and sha256: bytes that changed are found, a new mtime alone is not stale."""
    lock = parse_lock("tiny==1.0 --hash=sha256:" + "a" * 64 + "\n")
    target = Target("3.11", "x86_64", "2.36")
    wheel = tmp_path / "tiny-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK" + bytes(range(256)) * 64)
    write_stamp(tmp_path, lock, target)
    stat = wheel.stat()
    os.utime(wheel, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # copied or touched: same bytes
    assert why_stale(tmp_path, lock, target) is None
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0x01  # one flipped byte, same size
    wheel.write_bytes(bytes(data))
    assert why_stale(tmp_path, lock, target) == "tiny-1.0-py3-none-any.whl changed since it was fetched (corrupt or truncated)"
    wheel.write_bytes(bytes(data[:50]))  # truncated
    assert why_stale(tmp_path, lock, target) == "tiny-1.0-py3-none-any.whl changed since it was fetched (corrupt or truncated)"


def test_a_stamp_of_the_older_format_is_stale(tmp_path):
    lock = parse_lock("tiny==1.0 --hash=sha256:" + "a" * 64 + "\n")
    target = Target("3.11", "x86_64", "2.36")
    (tmp_path / "tiny-1.0-py3-none-any.whl").write_bytes(b"x")
    (tmp_path / STAMP).write_text(json.dumps({"lock_sha256": lock.sha256, "target": target.key(), "wheels": ["tiny-1.0-py3-none-any.whl"]}))
    assert why_stale(tmp_path, lock, target) == "a stamp of an older format"
