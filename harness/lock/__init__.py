"""The lock: `requirements.txt` parsed (`lockfile`), refreshed with pip-compile and checked for freshness."""

from harness.lock.lockfile import Lock, Pin, parse_lock, read_lock

__all__ = ["Lock", "Pin", "parse_lock", "read_lock"]
