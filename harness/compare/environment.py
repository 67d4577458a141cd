"""The environment each side ran in: Python, platform, thread pools, variables.

Only what can change what a model computes is compared; the probe dicts come
from `harness.sides.probe` (or a recorded report) and are read, never trusted to
have every key.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from harness.compare.differences import Difference

__all__ = ["PYTHON_POLICIES", "compare_environments", "compare_python"]

# How far the host's Python may be from the image's: not at all, the patch
# level, or the minor version. The default of `[tool.mlrepro.compare] python_policy` is 'minor'.
PYTHON_POLICIES = ("exact", "minor", "ignore")

_VERSION = re.compile(r"(\d+)\.(\d+)(.*)$")


def compare_python(image: str, host: str, *, policy: str = "minor") -> list[Difference]:
    """Python version agreement under a policy: 'exact', 'minor' (patch may differ) or 'ignore' (minor may differ)."""
    if policy not in PYTHON_POLICIES:
        raise ValueError(f"policy={policy!r}, expected one of {PYTHON_POLICIES}")
    if image == host:
        return []
    base = f"python: image {image}, host {host}"
    details = {"image": image, "host": host, "policy": policy}
    mi, mh = _VERSION.match(image.strip()), _VERSION.match(host.strip())
    if mi is None or mh is None:
        bad = image if mi is None else host
        return [
            Difference(
                "python", "python",
                f"{base} (cannot compare: expected a version like 3.11.7, found {bad!r})",
                "drift", {**details, "level": "unparsable"},
            )
        ]
    if mi.group(1) != mh.group(1):
        level = "major"
    elif mi.group(2) != mh.group(2):
        level = "minor"
    else:
        level = "patch"
    details["level"] = level
    if policy == "exact":
        return [Difference("python", "python", f"{base} (policy 'exact' requires identical versions)", "drift", details)]
    if level == "patch":
        return [Difference("python", "python", f"{base} (patch level differs; policy '{policy}' allows it)", "note", details)]
    if level == "minor" and policy == "ignore":
        return [Difference("python", "python", f"{base} (minor version differs; policy 'ignore' allows it)", "note", details)]
    required = "major.minor" if policy == "minor" else "major"
    return [
        Difference(
            "python", "python",
            f"{base} ({level} version differs; policy '{policy}' requires the same {required} version)",
            "drift", details,
        )
    ]


def _show(value: Any) -> str:
    if value is None:
        return "unknown"
    if value == "":
        return '""'
    return str(value)


def _pools_by_api(pools: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for pool in pools:
        grouped.setdefault(str(pool.get("user_api")), []).append(pool)
    return grouped


def _pool_values(pools: list[Mapping[str, Any]], key: str) -> str:
    # Several libraries can serve one API (numpy and scipy each vendor an
    # OpenBLAS); what matters is the set of values in use, not load order.
    return "/".join(sorted({_show(pool.get(key)) for pool in pools}))


def compare_environments(image: Mapping, host: Mapping, *, python_policy: str = "minor") -> list[Difference]:
    """Differences between two probe dicts that can change what a model computes.

    Executable paths and kernel releases are deliberately not compared: they
    differ between any container and host without changing a single number.
    """
    differences: list[Difference] = []
    py_i, py_h = image.get("python", {}), host.get("python", {})
    differences += compare_python(str(py_i.get("version")), str(py_h.get("version")), policy=python_policy)
    if py_i.get("implementation") != py_h.get("implementation"):
        differences.append(
            Difference(
                "python", "implementation",
                f"python implementation: image {_show(py_i.get('implementation'))}, host {_show(py_h.get('implementation'))}",
                "drift", {"image": py_i.get("implementation"), "host": py_h.get("implementation")},
            )
        )

    pl_i, pl_h = image.get("platform", {}), host.get("platform", {})
    for key, severity in (("system", "drift"), ("machine", "drift"), ("libc", "note")):
        if pl_i.get(key) != pl_h.get(key):
            differences.append(
                Difference(
                    "platform", key,
                    f"platform {key}: image {_show(pl_i.get(key))}, host {_show(pl_h.get(key))}",
                    severity, {"image": pl_i.get(key), "host": pl_h.get(key)},
                )
            )

    raw_i, raw_h = image.get("threadpools", []), host.get("threadpools", [])
    unknown = [side for side, raw in (("image", raw_i), ("host", raw_h)) if raw is None]
    if unknown:
        # The probe found no threadpoolctl there: thread pools are unknown, not absent.
        differences.append(
            Difference(
                "threads", "inspection",
                f"threads: not inspected in {' and '.join(unknown)} (threadpoolctl is not installed there)",
                "note", {"unknown": unknown},
            )
        )
    th_i, th_h = _pools_by_api(raw_i or []), _pools_by_api(raw_h or [])
    for api in sorted(set(th_i) | set(th_h)) if not unknown else ():
        pools_i, pools_h = th_i.get(api, []), th_h.get(api, [])
        if not pools_i or not pools_h:
            side, other, pools = ("image", "host", pools_i) if pools_i else ("host", "image", pools_h)
            differences.append(
                Difference(
                    "threads", api,
                    f"threads: {api} loaded in {side} ({_pool_values(pools, 'internal_api')}), none in {other}",
                    "drift", {"image": [dict(p) for p in pools_i], "host": [dict(p) for p in pools_h]},
                )
            )
            continue
        # Architecture (the OpenBLAS kernel picked for the CPU) can change
        # results too, but it follows the hardware, so it is only reported.
        for key, severity in (("internal_api", "drift"), ("num_threads", "drift"), ("version", "drift"), ("architecture", "note")):
            vi, vh = _pool_values(pools_i, key), _pool_values(pools_h, key)
            if vi != vh:
                differences.append(
                    Difference(
                        "threads", f"{api}.{key}",
                        f"threads: {api} {key} image {vi}, host {vh}",
                        severity, {"image": vi, "host": vh},
                    )
                )

    env_i, env_h = image.get("env", {}), host.get("env", {})
    for name in sorted(set(env_i) | set(env_h)):
        vi, vh = env_i.get(name), env_h.get(name)
        if vi != vh:
            shown_i = "unset" if vi is None else _show(vi)
            shown_h = "unset" if vh is None else _show(vh)
            differences.append(
                Difference("env", name, f"{name}: image {shown_i}, host {shown_h}", "drift", {"image": vi, "host": vh})
            )
    return differences
