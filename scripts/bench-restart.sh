#!/usr/bin/env bash
# bench-restart.sh - kill -9 → answering for socketley and PM2 side by side, same C echo binary,
# same run (bench/restart; issue 19). Needs root (scripts/systemd-sandbox.sh), gcc, node and npm:
# PM2 is installed with `npm install -g pm2` when it is missing (PM2_VERSION=x.y.z pins it). PM2 is
# a benchmark peer only, never a dependency of socketley.
#
# Usage: scripts/bench-restart.sh [FLAGS...]   (make bench-restart BENCHFLAGS="...")
#   -restart-sec D  the extra socketley row's --restart-sec (default 0; '' = no extra row)
#   -uptime D       a victim is killed only after answering this long (default 15s; 0 = back to
#                   back, which measures crash backoff instead of the first restart)
#   -kills N -services N -timeout D -gap D -v -pm2 CMD ('' = no PM2 row)
# The harness is built outside the sandbox and runs inside it with a private PM2_HOME in the
# sandbox's work dir; the sandbox kills whatever is left (daemon, units, PM2) on teardown.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID == 0 ]] || { echo "bench-restart: must run as root (systemd sandbox)" >&2; exit 1; }
[[ -x bin/socketley ]] || { echo "bench-restart: bin/socketley missing: make build" >&2; exit 1; }
command -v gcc >/dev/null || { echo "bench-restart: gcc is needed to build the echo server" >&2; exit 1; }

pm2=()
if [[ " $* " != *" -pm2 "* && " $* " != *" -pm2="* && " $* " != *" --pm2"* ]]; then
	if ! command -v pm2 >/dev/null; then
		command -v npm >/dev/null || { echo "bench-restart: pm2 missing and no npm to install it" >&2; exit 1; }
		echo "bench-restart: installing PM2: npm install -g pm2${PM2_VERSION:+@$PM2_VERSION}" >&2
		npm install -g --no-fund --no-audit "pm2${PM2_VERSION:+@$PM2_VERSION}" >&2
	fi
	pm2=(-pm2 "$(command -v pm2)")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-restart.XXXXXXXX")
trap 'rm -rf "$tmp"' EXIT
go -C bench build -o "$tmp/restart-bench" ./restart
scripts/systemd-sandbox.sh --journal -- "$tmp/restart-bench" -socketley "$PWD/bin/socketley" \
	-src "$PWD/bench/restart/testdata/echo.c" "${pm2[@]}" "$@"
