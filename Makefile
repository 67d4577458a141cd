# Two entry points do all set-up on a fresh machine: `make verify` and `make test`.
# Each creates the venv, makes sure a Docker engine answers (installing and
# starting Debian's docker.io only when run as root on Debian with no engine),
# makes sure a base image exists, then does its job.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export TESTCONTAINERS_RYUK_DISABLED := true

.PHONY: verify test demo engine base-image bench clean help

help:
	@echo "make verify   build the image, verify container == host == lock, print the report (out/report.json)"
	@echo "make test     run the test suite (unit, Docker integration, plugin)"
	@echo "make demo     show what other library versions do to the same code"
	@echo "make bench    run the benchmarks (on demand; results in the README)"

# The venv holds the harness and the lock: the lock first, with hashes, so the
# host side of the comparison runs exactly the locked versions.
$(STAMP): pyproject.toml requirements.txt
	@echo "make: creating $(VENV) (the lock with hashes, then the harness)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

engine:
	@scripts/ensure-docker.sh

# debootstrap is only used when the public base image cannot be pulled; as root
# on Debian it is installed here so that `mlrepro base-image` can fall back to it.
base-image: $(STAMP) engine
	@if ! command -v debootstrap >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing debootstrap (to build a local base image if the public one cannot be pulled)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }; \
	fi
	@$(BIN)/mlrepro base-image

verify: base-image
	$(BIN)/mlrepro verify --json out/report.json

# Parquet comparison and matplotlib plots are optional (never harness dependencies);
# their tests run in a venv of their own that holds those libraries (and rich, which
# harness.report imports) and nothing of the project.
OPTIONAL_VENV := .mlrepro/optional-venv
$(OPTIONAL_VENV)/.stamp:
	@echo "make: creating $(OPTIONAL_VENV) (pyarrow, matplotlib, rich: the optional-library tests)"
	$(PYTHON) -m venv $(OPTIONAL_VENV)
	$(OPTIONAL_VENV)/bin/pip install --quiet --disable-pip-version-check pyarrow matplotlib rich
	@touch $@

# The lock gate first: a stale lock fails fast with a message naming `mlrepro lock`.
# The release tests push to a real local registry (Debian's docker-registry).
test: base-image $(OPTIONAL_VENV)/.stamp
	@scripts/ensure-commands.sh "the release tests' local registry" docker-registry=docker-registry htpasswd=apache2-utils
	@scripts/ensure-commands.sh "reproducible builds (mlrepro build --reproducible)" buildah=buildah
	@scripts/ensure-commands.sh "the HTML report's browser tests" chromium=chromium
	$(BIN)/mlrepro lock --check
	MLREPRO_OPTIONAL_PYTHON=$(abspath $(OPTIONAL_VENV))/bin/python $(BIN)/python -m pytest --durations=25

demo: base-image
	$(BIN)/mlrepro demo

bench: base-image
	$(BIN)/python benchmarks/run.py

clean:
	-$(BIN)/mlrepro clean
	rm -rf out .mlrepro/host-venv
