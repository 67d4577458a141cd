"""The files `mlrepro init` writes for a layout: pure text, no I/O.

The Dockerfile follows the contract every mlrepro image keeps (README,
"Use it on your project"): `ARG BASE_IMAGE` (the harness passes the
base it resolved), the lock and `wheelhouse/` copied in and installed with
`--no-index --require-hashes` (no network during the build), multi-stage so no
pip, wheel or build tree reaches the final image, a non-root numeric uid, and
OCI labels including `io.mlrepro.lock-sha256` (filled from the build args the
harness passes). It uses nothing of BuildKit, so the legacy builder builds it.
Nothing is byte-compiled (`PYTHONDONTWRITEBYTECODE=1`, `pip --no-compile`):
.pyc files carry timestamps, and without them two builds of one tree install
the same bytes.

A package (`[project]` with a `[build-system]`) is not built in the image:
building needs its backend (setuptools, wheel, hatchling...), which is not in
the lock and cannot be fetched during a hermetic build. Instead it is laid
out as an editable install would: its tree copied to /app, a `.pth` file in
the venv pointing at it, and one wrapper per `[project.scripts]` entry in the
venv's bin/, as pip writes them. Whatever the backend, nothing is fetched.

The .dockerignore is an allow-list when it goes with our Dockerfile (what it
COPYs and nothing else), a deny-list when the project keeps its own
Dockerfile (we cannot know what that one needs); both keep secrets out.
"""

from __future__ import annotations

import json
import re

from harness.config import default_image_name
from harness.init.layout import Layout

__all__ = ["NEVER_IN_CONTEXT", "dockerfile", "dockerignore", "example_step", "skeleton"]

#: What no build context should hold: VCS data, environments, outputs, caches, secrets.
NEVER_IN_CONTEXT = (
    "**/.git", "**/.venv", "**/venv", "**/.mlrepro", "**/out", "**/__pycache__", "**/*.pyc", "**/.pytest_cache",
    "**/.mypy_cache", "**/.ipynb_checkpoints", "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/*.p12",
    "**/*.egg-info", "**/id_rsa*", "**/id_dsa*", "**/id_ecdsa*", "**/id_ed25519*", "**/.netrc", "**/.pypirc",
)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TARGET = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*):([A-Za-z_][A-Za-z0-9_.]*)$")


def _code(layout: Layout) -> list[str]:
    """What the final stage copies to /app: scripts, packages, a src/ tree."""
    return [*layout.scripts, *(f"{p}/" for p in layout.packages), *(["src/"] if layout.src else [])]


def _package_setup(layout: Layout) -> str:
    """The RUN that makes a package importable from the venv and writes its console scripts (or nothing)."""
    if not layout.installable:
        return ""
    where = "/app/src" if layout.src else "/app"
    commands = [f"printf '%s\\n' '{where}' > \"$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/_{_slug(layout.name)}.pth\""]
    for name, target in layout.console_scripts:
        match = _TARGET.match(target.split("[")[0].strip())
        if not _NAME.match(name) or not match:
            continue  # an entry we cannot write safely: the user adds it by hand
        module, function = match.groups()
        lines = ["#!/opt/venv/bin/python", "import sys", f"import {module} as _entry", f"sys.exit(_entry.{function}())"]
        commands.append(f"printf '%s\\n' {' '.join(repr(line) for line in lines)} > /opt/venv/bin/{name}")
        commands.append(f"chmod 755 /opt/venv/bin/{name}")
    body = " \\\n && ".join(commands)
    return f"""# The package itself, as an editable install lays it out (no build backend needed offline):
# {where} on the venv's path and one wrapper per [project.scripts] entry.
RUN {body}
"""


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "project"


def dockerfile(layout: Layout, lock: str = "requirements.txt") -> str:
    """A hermetic, multi-stage Dockerfile for `layout` (legacy builder, no network, non-root)."""
    install_project = _package_setup(layout)
    code = _code(layout)
    if not code:
        copy_code = ("# (no top-level scripts or packages found: add a COPY line for the code the steps run)\n"
                     "WORKDIR /app")  # creates it, for the final stage's COPY --from
    else:
        files = [c for c in code if not c.endswith("/")]
        copy_code = "\n".join(([f"COPY {' '.join(files)} /app/"] if files else []) + [f"COPY {d} /app/{d}" for d in code if d.endswith("/")])
        # Fixed modes whatever the checkout's umask (COPY keeps the host's), so rebuilds hold the same files.
        copy_code += "\nRUN chmod -R u=rwX,go=rX /app"
    title = json.dumps(layout.name)
    return f"""# Hermetic image for {layout.name}, written by `mlrepro init` (yours to edit; init never overwrites it).
#
# No network during the build: only the locked wheels in ./wheelhouse (fetched on the host by
# `mlrepro wheelhouse` or `mlrepro verify`, hashes checked), installed with --require-hashes.
# Multi-stage: no pip, wheelhouse or build tree in the final image; a numeric non-root user.
# Nothing is byte-compiled (.pyc files embed timestamps) and the code gets fixed modes in the
# build stage: rebuilds of one tree install the same bytes, whatever the checkout's umask.
# Legacy builder compatible (no BuildKit features). A new file the steps need: a COPY line here
# and a `!path` line in .dockerignore.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${{BASE_IMAGE}} AS build
ENV PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_NO_INPUT=1 \\
    PYTHONDONTWRITEBYTECODE=1
COPY {lock} /build/{lock}
COPY wheelhouse/ /build/wheelhouse/
RUN python3 -m venv /opt/venv \\
 && {{ /opt/venv/bin/pip install --no-index --find-links /build/wheelhouse --no-compile \\
        --require-hashes --only-binary=:all: -r /build/{lock} \\
      || {{ echo "error: installing {lock} from wheelhouse/ failed: a wheel is missing or does not match its hash; run 'mlrepro wheelhouse'" >&2; exit 1; }}; }}
{install_project}RUN /opt/venv/bin/pip uninstall --yes --quiet pip setuptools
{copy_code}

FROM ${{BASE_IMAGE}}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/ /app/
ENV PATH=/opt/venv/bin:$PATH \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    HOME=/tmp
WORKDIR /app
USER 10001:10001

# Provenance last, so that changing it never invalidates the layers above (the harness passes these).
ARG VCS_SOURCE=unknown
ARG VCS_REF=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG LOCK_SHA256=unknown
LABEL org.opencontainers.image.source=$VCS_SOURCE \\
      org.opencontainers.image.revision=$VCS_REF \\
      org.opencontainers.image.created=$CREATED \\
      org.opencontainers.image.title={title} \\
      io.mlrepro.lock-sha256=$LOCK_SHA256
"""


def dockerignore(layout: Layout, *, allow_list: bool, lock: str = "requirements.txt") -> str:
    """An allow-list for our Dockerfile (exactly what it copies), else a deny-list; never secrets either way."""
    never = "\n".join(NEVER_IN_CONTEXT)
    if not allow_list:
        return f"""# Written by `mlrepro init` for the project's own Dockerfile: what must never enter a build context.
{never}
"""
    allowed = ["Dockerfile", lock, "wheelhouse/*.whl", *_code(layout)]
    lines = "\n".join(f"!{a}" for a in dict.fromkeys(allowed))
    return f"""# Written by `mlrepro init`: the build context is an allow-list, exactly what the Dockerfile copies,
# so the image's content hash and the upload stay small and nothing else (data, secrets) gets in.
*
{lines}
# Never, even inside an allowed directory:
{never}
"""


def example_step(layout: Layout) -> list[str]:
    """A plausible first step for the layout, shown commented in the skeleton."""
    if layout.console_scripts:
        return [layout.console_scripts[0][0], "--out", "{out}"]
    if layout.scripts:
        return ["python", layout.scripts[0], "--out", "{out}"]
    if layout.packages:
        return ["python", "-m", layout.packages[0], "--out", "{out}"]
    return ["python", "train.py", "--out", "{out}"]


def skeleton(layout: Layout, lock: str = "requirements.txt") -> str:
    """`[tool.mlrepro]` with what init knows stated, and the steps and artifacts to fill in, commented."""
    step = json.dumps(example_step(layout))
    requirements_in = "pyproject.toml" if layout.dependencies == "pyproject.toml" else "requirements.in"
    return f"""
# What mlrepro builds, runs and compares (written by `mlrepro init`; see README, "Use it on your project").
[tool.mlrepro]
project = {json.dumps(layout.name)}
requirements_in = "{requirements_in}"   # the direct dependencies; `mlrepro lock` resolves them
lock = "{lock}"                # exact pins with hashes, written by `mlrepro lock`
# inputs = ["data/holdout.csv"]          # copied to {{inputs}}/ on both sides

[tool.mlrepro.build]
dockerfile = "Dockerfile"
image_name = {json.dumps(default_image_name(layout.name))}

# Steps run in order, in the image and on the host. In every word of `command` and in `env` values,
# {{out}} is the output directory, {{inputs}} the inputs' directory, {{python}} the side's interpreter.
# [[tool.mlrepro.steps]]
# name = "train"
# command = {step}
# env = {{DATA_DIR = "{{inputs}}", ARTIFACT_DIR = "{{out}}"}}   # for code that reads paths from variables
#
# Files the steps write under {{out}}, compared between the image and the host:
# [[tool.mlrepro.artifacts]]
# path = "predictions.csv"
# compare = "numeric"                    # bitwise | numeric (atol/rtol) | json | hash (with key)
#
# Run the host side twice: runs that disagree are NON-DETERMINISTIC (the project, not the image).
# [tool.mlrepro.compare]
# repeat = 2
"""
