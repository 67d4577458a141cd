#!/usr/bin/env bash
# Make sure the commands a job needs exist, installing their Debian packages when we may.
#
#   scripts/ensure-commands.sh "WHAT THEY ARE FOR" COMMAND=PACKAGE [COMMAND=PACKAGE ...]
#
# e.g. scripts/ensure-commands.sh "the HTML report's browser tests" chromium=chromium
#
# On a machine that has every COMMAND this does nothing; as root on Debian it
# installs the missing PACKAGEs (no recommends; a package's service is not
# started: the tests start their own, e.g. docker-registry on its own port);
# anywhere else it says what to install and exits 2. Under CI=true the tests
# that need a command fail without it rather than skip.
set -euo pipefail

purpose=${1:?usage: ensure-commands.sh PURPOSE COMMAND=PACKAGE...}
shift
say() { printf 'ensure-commands: %s\n' "$*" >&2; }

commands=() missing=()
for pair in "$@"; do
    commands+=("${pair%%=*}")
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "error: ${purpose} need ${missing[*]}, and this is not root on Debian, so nothing is installed automatically; install them (Debian/Ubuntu: apt-get install ${missing[*]}) and run this again"
    exit 2
fi

say "installing ${missing[*]} (${purpose})"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: no package's service starts on its own; restored afterwards.
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
for name in "${commands[@]}"; do
    command -v "$name" >/dev/null 2>&1 || { say "error: installed ${missing[*]} but $name is still not on PATH"; exit 2; }
done
