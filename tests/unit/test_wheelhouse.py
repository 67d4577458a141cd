"""The wheelhouse target: tags for the image's platform, and the freshness stamp."""

import json

from harness.lock import parse_lock
from harness.image.wheelhouse import STAMP, Target, is_fresh


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
    stamp = {"lock_sha256": lock.sha256, "target": target.key(), "wheels": ["numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"]}
    (tmp_path / STAMP).write_text(json.dumps(stamp))
    assert is_fresh(tmp_path, lock, target)
    assert not is_fresh(tmp_path, lock, Target("3.12", "x86_64", "2.36"))
    (tmp_path / "stray-1.0-py3-none-any.whl").write_bytes(b"y")
    assert not is_fresh(tmp_path, lock, target)
