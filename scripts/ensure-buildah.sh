#!/usr/bin/env bash
# Make sure `buildah` exists, for `mlrepro build --reproducible` and its tests.
#
#   scripts/ensure-buildah.sh
#
# The legacy Docker builder stamps every layer and file with the build time, so two
# builds of one commit can only be compared by content. buildah (Debian's 1.28)
# builds the same Dockerfile with `--timestamp 0`: equal inputs, equal image ID.
# On a machine that has it this does nothing; as root on Debian it installs it;
# anywhere else it says what to install and exits 2.
set -euo pipefail

say() { printf 'ensure-buildah: %s\n' "$*" >&2; }

command -v buildah >/dev/null 2>&1 && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "error: buildah is missing and this is not root on Debian, so nothing is installed automatically; install it (Debian/Ubuntu: apt-get install buildah) and run this again"
    exit 2
fi

say "installing buildah (reproducible builds: mlrepro build --reproducible)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends buildah >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends buildah >/dev/null
}
command -v buildah >/dev/null 2>&1 || {
    say "error: installed buildah but it is still not on PATH"
    exit 2
}
