#!/usr/bin/env bash
# Make sure a Docker engine is reachable, or say exactly why not.
#
#   scripts/ensure-docker.sh          start an engine if none answers (root on Debian only)
#   scripts/ensure-docker.sh stop     stop the engine this script started (no-op otherwise)
#
# On a workstation with Docker Desktop (or any running engine) this does nothing.
# On a fresh Debian machine run as root (our CI kind), it installs Debian's
# docker.io when dockerd is missing, starts dockerd in the background and waits
# until it answers. The pid and log live in .mlrepro/ so `stop` only ever stops
# an engine that this script started.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
state="$here/.mlrepro"
pidfile="$state/dockerd.pid"
log="$state/dockerd.log"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if [ "${1:-}" = "stop" ]; then
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping the dockerd this script started (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        fi
        rm -f "$pidfile"
    fi
    exit 0
fi

if ! command -v docker >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" != 0 ]; then
    say "error: no Docker client or engine found; install Docker (Docker Desktop, or your distribution's docker package) and run this again"
    exit 2
fi

if engine_answers; then
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "error: no Docker engine answers (docker info failed) and this is not root on Debian, so nothing is installed automatically; start your engine (Docker Desktop, or 'sudo systemctl start docker') and run this again"
    exit 2
fi

if ! command -v dockerd >/dev/null 2>&1; then
    say "no engine installed: installing Debian's docker.io (about 30 s)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq docker.io >/dev/null
fi

mkdir -p "$state"
say "starting dockerd in the background (log: $log)"
# setsid: the engine must outlive the make or CI step that started it.
setsid dockerd >"$log" 2>&1 < /dev/null &
echo $! >"$pidfile"
for _ in $(seq 1 60); do
    if engine_answers; then
        say "engine ready: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"
        exit 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
    sleep 1
done
say "error: dockerd did not answer within 60 s; last lines of $log:"
tail -n 15 "$log" >&2 || true
exit 2
