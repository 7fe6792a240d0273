#!/usr/bin/env bash
# The project's test command (README, make test, .ci/run). Runs every stage, also
# when an earlier one failed, and ends with a summary: stage, result, seconds, then
# every skipped Go test with the reason it gave (so a skip is never silent).
# Exit status: 0 when every stage passed, 1 when any failed.
#
# Stages:
#   lint      gofmt, go vet, staticcheck (scripts/lint.sh)
#   go-test   go test -race -tags integration ./... -- pure and integration tests
#             against a real systemd. As root on a machine without a usable systemd
#             session (CI, containers) inside scripts/systemd-sandbox.sh: a private
#             systemd user manager, session bus and journald, torn down afterwards,
#             with SOCKETLEY_REQUIRE_SYSTEMD=1 so an integration test fails instead
#             of skipping when systemd is missing. Not root: your own systemd user
#             session if there is one, else the integration tests skip (and say so).
#   systemd-next  the restart and watch tests again against systemd 254 (RestartSteps=, the
#             native restart backoff; Debian 12 ships 252), fetched by scripts/systemd-next.sh
#             from bookworm-backports (network the first time, then cached) and run by the
#             sandbox in place of the host's manager. Root only. Skipped with the reason when
#             it cannot be fetched, unless SYSTEMD_NEXT_REQUIRED=1 (.ci/run), which fails it.
#   fuzz      every go test -fuzz target for FUZZTIME (default 20000x executions) (scripts/fuzz.sh)
#   system-reboot  issue #10's reboot test with systemd as PID 1: a system-mode sandbox, the
#             packaged socketley.socket and socketley.service (ExecStart= pointed at this
#             build), 20 runtimes, 10 reboots (TestRebootSystemSocketUnit); and the hardened
#             echo-service under a system daemon, its exposure (TestHardenEchoSystem). Root, and
#             only where systemd is not PID 1.
#   examples  the examples/managed scenarios against a private daemon
#   packages  build, install, upgrade and purge the .deb/.rpm under a system-mode
#             sandbox (root, and only where systemd is not PID 1)
#
# Env: STAGES="lint go-test" runs only those; GOTEST_FLAGS adds go test flags
# (e.g. GOTEST_FLAGS="-run TestX"); GOTEST_PKGS (default ./...).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH=$PATH:/usr/local/go/bin

STAGES=${STAGES:-lint go-test systemd-next system-reboot fuzz examples packages}
GOTEST_PKGS=${GOTEST_PKGS:-./...}
work=$(mktemp -d /tmp/socketley-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

names=() results=() secs=()
# stage NAME CMD... : run CMD, record its result and time; never stops the script
stage() {
	local name=$1 t0 rc
	shift
	[[ " $STAGES " == *" $name "* ]] || return 0
	printf '\n==== stage %s\n' "$name"
	t0=$(date +%s)
	"$@"
	rc=$?
	names+=("$name") secs+=($(($(date +%s) - t0)))
	case $rc in
	0) results+=(pass) ;;
	77) results+=("skipped: $(cat "$work/$name.skip" 2>/dev/null)") ;;
	*) results+=("FAIL (exit $rc)") ;;
	esac
	return 0
}

# go_test: go test -json through internal/testreport (failed tests' output as they
# happen, skipped tests with reasons at the end); the same go test command as
# README's, in the sandbox as root.
# Tests that disturb every other client of the sandbox's manager: a daemon-reexec (systemd
# drops its bus connection, and re-executes the host's binary, not systemd-next's), a
# daemon-reload (every unit serialized and read back; a crash-loop test running meanwhile once
# saw systemd refuse a restart its start limit allowed) and a restart of the session bus. go test runs packages in parallel against one sandbox, so
# they run alone, in a sandbox of their own, after the others.
DISRUPTIVE='TestWatchAfterDaemonReexec|TestDaemonReexecKeepsTracking|TestWatchSurvivesDaemonReload|TestReconnectAfterBusRestart'

go_test() {
	local rc=0
	if [[ -n ${GOTEST_FLAGS:-} ]]; then
		gotest go-test $GOTEST_FLAGS $GOTEST_PKGS
		return
	fi
	gotest go-test -skip "^($DISRUPTIVE)\$" $GOTEST_PKGS || rc=1
	gotest go-test-alone -p 1 -run "^($DISRUPTIVE)\$" ./units ./cmd/socketley || rc=1
	return $rc
}

# gotest STAGE ARGS... : go test -json ARGS through testreport, as root in the sandbox.
gotest() {
	local name=$1 rc
	shift
	local run=(go test -json -race -tags integration -count=1 -timeout 20m "$@")
	go build -o "$work/testreport" ./internal/testreport/cmd/testreport || return 1
	if [[ $EUID == 0 ]]; then
		scripts/systemd-sandbox.sh ${SANDBOX_OPTS:---journal} -- env SOCKETLEY_REQUIRE_SYSTEMD=1 ${SANDBOX_ENV:-} GOCACHE="$(go env GOCACHE)" \
			GOMODCACHE="$(go env GOMODCACHE)" "${run[@]}" | "$work/testreport" -skips "$work/skips.$name"
		rc=$((PIPESTATUS[0] | PIPESTATUS[1]))
	else
		if [[ -n ${DBUS_SESSION_BUS_ADDRESS:-} ]] && systemctl --user is-system-running >/dev/null 2>&1; then
			echo "test.sh: not root; using your systemd user session" >&2
		else
			echo "test.sh: not root and no systemd user session: integration tests will SKIP (run as root to use the sandbox)" >&2
		fi
		"${run[@]}" | "$work/testreport" -skips "$work/skips.$name"
		rc=$((PIPESTATUS[0] | PIPESTATUS[1]))
	fi
	[[ -s $work/skips.$name ]] && sed "s/^/[$name] /" "$work/skips.$name" >>"$work/skips"
	return $rc
}

# systemd_next: the tests whose behaviour depends on the systemd version, against 254.
systemd_next() {
	local next
	if [[ $EUID != 0 ]]; then
		echo "needs root (the sandbox runs a fetched systemd)" >"$work/systemd-next.skip"
		cat "$work/systemd-next.skip"
		return 77
	fi
	if ! next=$(scripts/systemd-next.sh -q 2>"$work/next.err"); then
		cat "$work/next.err"
		[[ ${SYSTEMD_NEXT_REQUIRED:-0} == 1 ]] && return 1
		echo "systemd 254 could not be fetched: $(tail -1 "$work/next.err")" >"$work/systemd-next.skip"
		return 77
	fi
	eval "$next"
	export SDH_SYSTEMD SDH_SYSTEMD_LIBDIR
	# The native-backoff tests fail instead of skipping when the manager is not 254.
	SOCKETLEY_REQUIRE_NATIVE=1 gotest systemd-next -skip "^($DISRUPTIVE)\$" -run 'TestNative|TestCrash|TestMaxRestarts|TestBackoff|TestLifecycle|TestRestart|TestWatch|TestFailedStart|TestDaemonRestart|TestHealthRestarts|TestFillMany|TestListen|TestSocket' \
		./cmd/socketley ./units
}

# system_reboot: the reboot test that needs systemd as PID 1 (a system-mode sandbox).
system_reboot() {
	if [[ $EUID != 0 || -d /run/systemd/system ]]; then
		echo "needs root on a machine where systemd is not PID 1 (it runs systemd as PID 1 of a namespace)" >"$work/system-reboot.skip"
		cat "$work/system-reboot.skip"
		return 77
	fi
	SANDBOX_OPTS="--system --journal" SANDBOX_ENV=SOCKETLEY_SYSTEM_SANDBOX=1 gotest system-reboot -run '^(TestRebootSystemSocketUnit|TestHardenEchoSystem)$' ./cmd/socketley
}

fuzz() { scripts/fuzz.sh; }

packages() {
	if [[ $EUID != 0 || -d /run/systemd/system ]]; then
		echo "needs root on a machine where systemd is not PID 1; run make package-test there" >"$work/packages.skip"
		cat "$work/packages.skip"
		return 77
	fi
	scripts/package-test.sh
}

T0=$(date +%s)
stage lint scripts/lint.sh
stage go-test go_test
stage systemd-next systemd_next
stage system-reboot system_reboot
stage fuzz fuzz
stage examples scripts/examples-test.sh
stage packages packages

failed=0
printf '\n==== summary (%ds)\n' "$(($(date +%s) - T0))"
printf '%-10s %-50s %6s\n' STAGE RESULT SECONDS
for i in "${!names[@]}"; do
	printf '%-10s %-50s %6d\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"
	[[ ${results[$i]} == FAIL* ]] && failed=1
done
if [[ -s $work/skips ]]; then
	printf '\nskipped Go tests:\n'
	cat "$work/skips"
elif [[ " $STAGES " == *" go-test "* ]]; then
	printf '\nskipped Go tests: none\n'
fi
exit $failed
