#!/usr/bin/env bash
# examples-test.sh - `make examples-test`: run every scenario of examples/managed
# non-interactively against a real systemd and a private socketley daemon.
#
# Uses the systemd user manager of your session when there is one; as root
# without one (CI machines, containers) it re-runs itself inside
# scripts/systemd-sandbox.sh --journal. It builds socketley (unless $SOCKETLEY
# is set), starts `socketley daemon --user` on a private socket and state dir,
# exports SOCKETLEY_SOCKET so the scenarios reach that daemon, runs them one by
# one, checks that they left no runtime or unit behind, and stops the daemon.
#
# Usage: scripts/examples-test.sh [-v] [SCENARIO...]   (default: examples/managed/[0-9]*.sh)
#   -v   print every scenario's output, not only the output of failures
# Exit status: 0 all passed, 1 a scenario failed, 2 the harness could not run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ARGS=("$@")
VERBOSE=0
if [[ ${1:-} == -v ]]; then
	VERBOSE=1
	shift
fi

user_manager() {
	busctl --user --timeout=2 call org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus NameHasOwner s org.freedesktop.systemd1 2>/dev/null | grep -q true
}
if [[ -z ${DBUS_SESSION_BUS_ADDRESS:-} && -S ${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/bus ]]; then
	export DBUS_SESSION_BUS_ADDRESS=unix:path=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/bus
fi
if ! user_manager; then
	if [[ $EUID == 0 && -z ${SDH_WORKDIR:-} ]]; then
		echo "examples-test: no systemd user manager here; running inside scripts/systemd-sandbox.sh" >&2
		# the sandbox moves XDG_CACHE_HOME: keep using the warm Go build cache
		GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) \
			exec scripts/systemd-sandbox.sh --journal -- "$0" "${ARGS[@]}"
	fi
	echo "examples-test: no systemd user manager answers on the session bus." >&2
	echo "  Log in to a systemd session (systemctl --user must work), or run as root to use the sandbox." >&2
	exit 2
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/socketley-examples.XXXXXX") || exit 2
DPID=
finish() {
	local rc=$?
	trap - EXIT
	if [[ -n $DPID ]]; then
		"$SOCKETLEY" remove '*' >/dev/null 2>&1 # only what the scenarios left behind
		kill -TERM "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	rm -rf "$W"
	exit "$rc"
}
trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

t0=$SECONDS
if [[ -z ${SOCKETLEY:-} ]]; then
	SOCKETLEY=$W/socketley
	CGO_ENABLED=0 go build -o "$SOCKETLEY" ./cmd/socketley || { echo "examples-test: cannot build socketley" >&2; exit 2; }
fi
export SOCKETLEY EXAMPLES_BIN=$W/bin
export SOCKETLEY_SOCKET=$W/socketley.sock

"$SOCKETLEY" daemon --user --socket "$SOCKETLEY_SOCKET" --state-dir "$W/state" >"$W/daemon.log" 2>&1 &
DPID=$!
deadline=$((SECONDS + 15))
until "$SOCKETLEY" ls >/dev/null 2>&1; do
	if ! kill -0 "$DPID" 2>/dev/null || ((SECONDS >= deadline)); then
		echo "examples-test: the daemon did not come up:" >&2
		cat "$W/daemon.log" >&2
		exit 2
	fi
	sleep 0.05
done
echo "examples-test: daemon pid $DPID on $SOCKETLEY_SOCKET ($(systemctl --user is-system-running 2>/dev/null) user manager)"

(($#)) || set -- examples/managed/[0-9]*.sh
# the units the scenarios create; none may survive a scenario
UNITS=(socketley-{echo-svc,crash-test,cycle-test,chat,counter}.service)
failed=()
for s in "$@"; do
	name=$(basename "$s" .sh)
	start=$SECONDS
	# no terminal: the scenarios do not pause; timeout as a last resort only
	timeout -k 10 180 bash "$s" </dev/null >"$W/$name.log" 2>&1
	rc=$?
	# entries of our daemon (not orphans: other daemons' units on this manager)
	left=$("$SOCKETLEY" ls | awk 'NR > 1 && $2 != "orphan"')
	units=$(systemctl --user list-units --all --plain --no-legend "${UNITS[@]}" 2>/dev/null)
	if ((rc == 0)) && [[ -n $left || -n $units ]]; then
		echo "examples-test: $name left runtimes or units behind:" >>"$W/$name.log"
		printf '%s\n%s\n' "$left" "$units" >>"$W/$name.log"
		rc=1
	fi
	if ((rc == 0)); then
		printf 'PASS  %-24s %3ds\n' "$name" $((SECONDS - start))
		((VERBOSE)) && sed 's/^/    /' "$W/$name.log"
	else
		printf 'FAIL  %-24s %3ds (exit %d)\n' "$name" $((SECONDS - start)) "$rc"
		sed 's/^/    /' "$W/$name.log"
		failed+=("$name")
		"$SOCKETLEY" remove '*' >/dev/null 2>&1 # next scenario starts clean
	fi
done

if ((${#failed[@]})); then
	echo "--- daemon log"
	cat "$W/daemon.log"
	if command -v journalctl >/dev/null; then
		echo "--- journal of the example units (last 60 lines)"
		jargs=(--no-pager -n 60 --user-unit 'socketley-*')
		[[ $EUID == 0 ]] || jargs+=(--user)
		journalctl "${jargs[@]}" 2>/dev/null
	fi
	echo "examples-test: FAILED: ${failed[*]} ($((SECONDS - t0))s)"
	exit 1
fi
echo "examples-test: all $# scenarios passed ($((SECONDS - t0))s)"
