#!/usr/bin/env bash
# The project's test command (README, make test, .ci/run): lint, then every
# test -- pure and integration -- against a real systemd.
#
# As root on a machine without a usable systemd session (CI, containers) the
# tests run inside scripts/systemd-sandbox.sh: a private systemd user manager,
# session bus and journald, torn down afterwards. With SOCKETLEY_REQUIRE_SYSTEMD=1
# (set here) an integration test fails instead of skipping when systemd is
# missing. Not root: the tests use your own systemd user session if there is one.
# Then the fuzzers run briefly, the examples' scenarios run, and (as root, where
# systemd is not PID 1) the packages are built, installed, upgraded and purged.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/lint.sh
run_tests=(go test -race -tags integration -count=1 -timeout 20m ./...)
if [[ $EUID == 0 ]]; then
	scripts/systemd-sandbox.sh --journal -- env SOCKETLEY_REQUIRE_SYSTEMD=1 GOCACHE="$(go env GOCACHE)" "${run_tests[@]}"
elif [[ -n ${DBUS_SESSION_BUS_ADDRESS:-} ]] && systemctl --user is-system-running >/dev/null 2>&1; then
	echo "test.sh: not root; using your systemd user session" >&2
	"${run_tests[@]}"
else
	echo "test.sh: not root and no systemd user session: integration tests will SKIP (run as root to use the sandbox)" >&2
	"${run_tests[@]}"
fi
FUZZTIME=${FUZZTIME:-5s} scripts/fuzz.sh
# The five managed-runtime scenarios of examples/managed against a private daemon.
scripts/examples-test.sh
# Packages: build, inspect, install/upgrade/purge for real under a system-mode sandbox.
# Root only, and only where systemd is not PID 1 (it installs the .deb on this machine).
if [[ $EUID == 0 && ! -d /run/systemd/system ]]; then
	scripts/package-test.sh
else
	echo "test.sh: package test skipped (needs root on a machine where systemd is not PID 1; run make package-test)" >&2
fi
