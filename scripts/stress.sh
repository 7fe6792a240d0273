#!/usr/bin/env bash
# stress.sh - `make stress`: run the Go test suite repeatedly while every core is
# kept busy, and report per package: test runs, failures and the failing tests.
# A test that passes 29 times in 30 is a failing test; this is how to find it.
#
# Usage: scripts/stress.sh [-n COUNT] [-run REGEX] [-no-hog] [PACKAGE...]
#   -n COUNT   go test -count (default 20, env STRESS_COUNT)
#   -run RE    only tests matching RE
#   -no-hog    do not start the CPU hog (to compare)
#   PACKAGE    go package patterns (default ./..., env STRESS_PKGS)
#
# Runs `go test -json -race -tags integration -count=COUNT` -- as root inside
# scripts/systemd-sandbox.sh (a private systemd user manager, as `make test` does),
# otherwise in your session. The CPU hog is one busy loop per core (nproc), or
# stress-ng --cpu when installed; it is started before go test and always stopped
# (also on Ctrl-C and errors). Exit status: 0 no failure, 1 a test failed, 2 the
# harness could not run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export PATH=$PATH:/usr/local/go/bin

count=${STRESS_COUNT:-20} run= hog=1 pkgs=()
while (($#)); do
	case $1 in
	-n) count=${2:?-n needs a number}; shift 2 ;;
	-run) run=${2:?-run needs a regular expression}; shift 2 ;;
	-no-hog) hog=0; shift ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	-*) echo "stress.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
	*) pkgs+=("$1"); shift ;;
	esac
done
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "stress.sh: -n wants a positive number, got '$count'" >&2; exit 2; }
((${#pkgs[@]})) || read -ra pkgs <<<"${STRESS_PKGS:-./...}"

work=$(mktemp -d /tmp/socketley-stress.XXXXXX)
hog_pids=()
stop_hog() {
	local p
	for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${hog_pids[@]}"; do wait "$p" 2>/dev/null; done
	hog_pids=()
}
trap 'stop_hog; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

go build -o "$work/testreport" ./internal/testreport/cmd/testreport || exit 2
# Compile first, without the hog, so build time does not eat the test timeout.
go test -tags integration -race -count=1 -run '^$' "${pkgs[@]}" >/dev/null || { echo "stress.sh: the tests do not build" >&2; exit 2; }

cores=$(nproc)
if ((hog)); then
	if command -v stress-ng >/dev/null; then
		stress-ng --cpu "$cores" --quiet &
		hog_pids+=($!)
		how="stress-ng --cpu $cores"
	else
		for ((i = 0; i < cores; i++)); do
			bash -c 'while :; do :; done' &
			hog_pids+=($!)
		done
		how="$cores busy loops"
	fi
	echo "stress.sh: CPU hog: $how (pids ${hog_pids[*]})"
else
	how="none"
fi

gotest=(go test -json -race -tags integration -count="$count" -timeout 60m)
[[ -n $run ]] && gotest+=(-run "$run")
gotest+=("${pkgs[@]}")
echo "stress.sh: ${gotest[*]}"
t0=$(date +%s)
if [[ $EUID == 0 && -z ${SDH_WORKDIR:-} ]] && ! { [[ -n ${DBUS_SESSION_BUS_ADDRESS:-} ]] && systemctl --user is-system-running >/dev/null 2>&1; }; then
	scripts/systemd-sandbox.sh --journal -- env SOCKETLEY_REQUIRE_SYSTEMD=1 GOCACHE="$(go env GOCACHE)" \
		GOMODCACHE="$(go env GOMODCACHE)" "${gotest[@]}" | "$work/testreport" -stats
	rc=("${PIPESTATUS[@]}")
else
	"${gotest[@]}" | "$work/testreport" -stats
	rc=("${PIPESTATUS[@]}")
fi
stop_hog
echo "stress.sh: count=$count, hog: $how, $(($(date +%s) - t0)) s"
if ((rc[1] == 2)); then exit 2; fi
if ((rc[0] != 0 || rc[1] != 0)); then exit 1; fi
exit 0
