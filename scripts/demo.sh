#!/usr/bin/env bash
# demo.sh - `make demo`: socketley's main job in half a minute. Registers the
# echo service (examples/echo-service) as a managed runtime, shows it in ls/ps,
# kills it with kill -9 and shows systemd bringing it back with a new PID,
# then cleans up.
#
# Where systemd comes from:
#   - your own systemd user session, when `systemctl --user` works there
#     (a socketley daemon already running for you is used as it is);
#   - as root without one (no systemd as PID 1: CI machines, containers), the
#     project's sandbox: a private systemd user manager, session bus and
#     journald (scripts/systemd-sandbox.sh --journal), torn down afterwards.
#
# Environment: SOCKETLEY (the binary; default bin/socketley, built when
# missing), ECHO_PORT (default 7070).
set -euo pipefail
cd "$(dirname "$0")/.."

user_manager() {
	busctl --user --timeout=2 call org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus NameHasOwner s org.freedesktop.systemd1 2>/dev/null | grep -q true
}
if [[ -z ${DBUS_SESSION_BUS_ADDRESS:-} && -S ${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/bus ]]; then
	export DBUS_SESSION_BUS_ADDRESS=unix:path=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/bus
fi
if ! user_manager; then
	if [[ $EUID == 0 && -z ${SDH_WORKDIR:-} ]]; then
		echo "demo: no systemd user session here ($([[ $(ps -p 1 -o comm= 2>/dev/null) == systemd ]] ||
			echo "systemd is not PID 1, ")running as root): using the project's systemd sandbox"
		# the sandbox moves XDG_CACHE_HOME: keep using the warm Go build cache
		GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) \
			exec scripts/systemd-sandbox.sh --journal -- "$0" "$@"
	fi
	echo "demo: no systemd user manager answers on your session bus (systemctl --user does not work)." >&2
	echo "  Run it from a login session with systemd (or after 'loginctl enable-linger $USER')," >&2
	echo "  or as root, which runs it inside the project's systemd sandbox: sudo make demo" >&2
	exit 2
fi
if [[ -n ${SDH_WORKDIR:-} ]]; then
	WHERE="a private systemd user manager (scripts/systemd-sandbox.sh)"
else
	WHERE="your systemd user session"
fi

if [[ -z ${SOCKETLEY:-} ]]; then
	[[ -x bin/socketley ]] || make build
	SOCKETLEY=$PWD/bin/socketley
fi
export SOCKETLEY
# shellcheck source=examples/managed/lib.sh
source examples/managed/lib.sh
NAME=echo-svc
T0=$SECONDS

step "socketley runs binaries as systemd units - demo on $WHERE"
BIN=$(build_example echo-service)
ok "built $BIN (go build ./examples/echo-service)"

DPID='' DDIR=''
cleanup_hook() {
	[[ -n $DPID ]] || return 0
	printf '%s-- stopping the demo daemon (pid %s)%s\n' "$D" "$DPID" "$N"
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	rm -rf "$DDIR"
}
if socketley --user ls >/dev/null 2>&1; then
	ok "a socketley daemon already answers; using it"
	# the user daemon's socket, even if a system daemon is also running
	export SOCKETLEY_SOCKET=${SOCKETLEY_SOCKET:-${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/socketley/socketley.sock}
else
	# a private socket and state dir: the demo leaves nothing behind
	DDIR=$(mktemp -d "${TMPDIR:-/tmp}/socketley-demo.XXXXXX")
	export SOCKETLEY_SOCKET=$DDIR/socketley.sock
	printf '%s$ socketley daemon --user --socket %s --state-dir %s &%s\n' "$D" "$SOCKETLEY_SOCKET" "$DDIR/state" "$N"
	"$SOCKETLEY" daemon --user --socket "$SOCKETLEY_SOCKET" --state-dir "$DDIR/state" 2>"$DDIR/daemon.log" &
	DPID=$!
	wait_until 15 "the daemon answers (log: $DDIR/daemon.log)" socketley ls
	ok "daemon running (pid $DPID)"
fi
claim "$NAME" "$BIN"
require_port_free "$ECHO_PORT"

step "Register the echo service and start it (-s)"
cleanup_on_exit "$NAME"
PORTARGS=()
[[ $ECHO_PORT == 7070 ]] || PORTARGS=(-- -port "$ECHO_PORT")
show socketley add "$BIN" --name "$NAME" -s "${PORTARGS[@]}" || fail "socketley add"
wait_until 15 "$NAME answers on port $ECHO_PORT" echo_answers "$ECHO_PORT"
show socketley ls
check_echo "$ECHO_PORT"

step "It is a systemd unit: socketley-$NAME.service"
show systemctl --user status "socketley-$NAME.service" --no-pager --lines 0 || true

step "Kill it"
show socketley ps
# shellcheck disable=SC2016 # the command is printed, not run
printf '%s$ PID=$(socketley ps | grep %s | awk '"'"'{print $NF}'"'"')%s\n' "$D" "$NAME" "$N"
PID=$(socketley ps | grep "$NAME" | awk '{print $NF}')
[[ $PID =~ ^[0-9]+$ ]] || fail "no PID for $NAME in socketley ps"
show kill -9 "$PID"

step "systemd brings it back with a new PID"
wait_until 15 "$NAME runs again with a new pid" new_pid "$NAME" "$PID"
wait_until 15 "the restarted $NAME answers" echo_answers "$ECHO_PORT"
show socketley ps
show systemctl --user show -p NRestarts -p MainPID "socketley-$NAME.service"
NEW=$(pid_of "$NAME")
ok "pid $PID was killed; systemd restarted it as pid $NEW"
check_echo "$ECHO_PORT"

step "Its output is in the journal"
show socketley logs "$NAME" -n 8 || echo "(no journal on this machine: socketley logs needs systemd-journald)"

step "Clean up"
show socketley remove "$NAME" || fail "socketley remove"
show socketley ls
echo
ok "demo done in $((SECONDS - T0))s. Next: the scenarios in examples/managed/ (make examples-test runs them all), docs/managed-runtimes.md"
