#!/usr/bin/env bash
# Make sure the tools of the release tests exist: a real registry and a bcrypt htpasswd.
#
#   scripts/ensure-registry-tools.sh
#
# The release integration tests (tests/integration/test_release.py) start
# Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1 with htpasswd
# auth, which accepts bcrypt only (`htpasswd -B`, from apache2-utils). On a
# machine that has both this does nothing; as root on Debian it installs the
# missing packages; anywhere else it says what to install and exits 2.
set -euo pipefail

say() { printf 'ensure-registry-tools: %s\n' "$*" >&2; }

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "error: missing ${missing[*]} and this is not root on Debian, so nothing is installed automatically; install them (Debian/Ubuntu: apt-get install ${missing[*]}) and run this again"
    exit 2
fi

say "installing ${missing[*]} (the release tests' local registry)"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the package's service must not start on its own (port 5000, no auth);
# the tests start their own instance. Restored afterwards.
policy=/usr/sbin/policy-rc.d
restore=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && restore=yes
fi
trap '[ -n "$restore" ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
command -v docker-registry >/dev/null 2>&1 && command -v htpasswd >/dev/null 2>&1 || {
    say "error: installed ${missing[*]} but docker-registry or htpasswd is still not on PATH"
    exit 2
}
