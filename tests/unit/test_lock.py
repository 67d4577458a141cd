"""Parsing the lock: one exact, hashed pin per package, or a one-line LockError."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import LockError
from harness.lock import parse_lock, read_lock

ROOT = Path(__file__).resolve().parents[2]
H = "--hash=sha256:" + "a" * 64


def test_repository_lock_pins_every_package_with_hashes():
    lock = read_lock(ROOT / "requirements.txt")
    assert {"scikit-learn", "numpy", "scipy", "skops"} <= set(lock.pins)
    assert all(pin.hashes for pin in lock.pins.values())


def test_continuations_comments_and_options():
    text = f"--index-url https://example.invalid/simple\n# comment\nScikit_Learn==1.9.1 \\\n    {H} \\\n    --hash=sha256:{'b' * 64}\n    # via -r requirements.in\n"
    lock = parse_lock(text)
    assert lock.versions == {"scikit-learn": "1.9.1"}
    assert len(lock.pins["scikit-learn"].hashes) == 2
    assert lock.pins["scikit-learn"].line == 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("numpy>=1.0 " + H, "unpinned"),
        ("numpy==2.0", "expected --hash"),
        ("-e ./local", "editable"),
        ("pkg @ https://example.invalid/pkg.whl " + H, "URL/VCS"),
        ("numpy==1.0 " + H + "\nnumpy==2.0 " + H, "pinned twice"),
        ("!!! not a requirement", "expected 'name==version"),
    ],
)
def test_bad_lines_give_one_line_errors_with_the_line_number(text, fragment):
    with pytest.raises(LockError) as info:
        parse_lock(text, "requirements.txt")
    assert fragment in str(info.value)
    assert str(info.value).startswith("requirements.txt:")
    assert "\n" not in str(info.value)


def test_missing_and_empty_lock(tmp_path):
    with pytest.raises(LockError, match="found none"):
        read_lock(tmp_path / "requirements.txt")
    (tmp_path / "requirements.txt").write_text("# nothing\n")
    with pytest.raises(LockError, match="found none"):
        read_lock(tmp_path / "requirements.txt")


names = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5})?", fullmatch=True)
versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True)


@given(st.dictionaries(names, versions, min_size=1, max_size=8))
def test_written_pins_parse_back(pins):
    text = "".join(f"{n}=={v} \\\n    {H}\n" for n, v in pins.items())
    assert parse_lock(text).versions == pins
