#!/usr/bin/env bash
# Make sure a headless browser exists for the HTML report's browser tests.
#
#   scripts/ensure-browser.sh
#
# The integration tests that write an HTML report (`verify --html`, `demo --html`)
# open it in Debian's `chromium` through tests/browser.py (headless, from the
# command line: --screenshot, --dump-dom) and check from the page's DOM that the
# verdict, the histogram and the worst-rows table are visible. On a machine that
# has chromium this does nothing; as root
# on Debian it installs the package; anywhere else it says what to install and
# exits 2 (under CI=true the tests fail without it rather than skip).
set -euo pipefail

say() { printf 'ensure-browser: %s\n' "$*" >&2; }

command -v chromium >/dev/null 2>&1 && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "error: chromium is missing and this is not root on Debian, so nothing is installed automatically; install it (Debian: apt-get install chromium) and run this again"
    exit 2
fi

say "installing chromium (headless browser for the HTML report tests)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null 2>&1 || {
    say "error: installed chromium but it is still not on PATH"
    exit 2
}
