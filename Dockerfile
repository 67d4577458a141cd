# Hermetic image for ml_project: no network during the build, only the locked
# wheels from ./wheelhouse (fetched on the host by `mlrepro wheelhouse`, hashes
# checked), a non-root user, no pip, no wheelhouse, no cache in the final image.
#
# Works with the legacy builder (no BuildKit features) so that every engine,
# including Debian's docker.io without buildx, builds it the same way.
#
# BASE_IMAGE: the public image on a networked machine; offline, the local one
# made by `mlrepro base-image` (the harness chooses and records it).
#
# Rebuild-reproducible (`mlrepro rebuild-check`: two no-cache builds hold the same
# bytes): pip byte-compiles with SOURCE_DATE_EPOCH set, so py_compile writes
# checked-hash pycs (keyed by the source's hash, not by its mtime, which is the
# install time: same bytes every build, still invalidated if a source changes);
# the project's files get fixed modes in the build stage, whatever the host's umask.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    SOURCE_DATE_EPOCH=0
COPY requirements.txt /build/requirements.txt
COPY wheelhouse/ /build/wheelhouse/
RUN python3 -m venv /opt/venv \
 && { /opt/venv/bin/pip install --no-index --find-links /build/wheelhouse \
        --require-hashes --only-binary=:all: -r /build/requirements.txt \
      || { echo "error: installing the lock from wheelhouse/ failed: a wheel is missing or does not match the hashes in requirements.txt; run 'mlrepro wheelhouse' to fetch the locked wheels again" >&2; exit 1; }; } \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools
COPY ml_project/ /app/ml_project/
RUN chmod -R u=rwX,go=rX /app

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/ /app/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /app
# A numeric uid needs no useradd layer and cannot collide with a base image's users.
USER 10001:10001

# Provenance last, so that changing it never invalidates the layers above.
ARG VCS_SOURCE=unknown
ARG VCS_REF=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG LOCK_SHA256=unknown
LABEL org.opencontainers.image.source=$VCS_SOURCE \
      org.opencontainers.image.revision=$VCS_REF \
      org.opencontainers.image.created=$CREATED \
      org.opencontainers.image.title="ml_project" \
      io.mlrepro.lock-sha256=$LOCK_SHA256
CMD ["python", "-m", "ml_project.predict", "--help"]
