#!/usr/bin/env bash
# 02 - auto-restart: kill -9 a managed runtime; systemd restarts it (Restart=
# on-failure) and it comes back with a different PID that answers again.
# Needs a running daemon (socketley daemon --user); see examples/README.md.
# shellcheck source=examples/managed/lib.sh
source "$(dirname "$0")/lib.sh"
NAME=crash-test

step "Start the echo service as $NAME"
BIN=$(build_example echo-service)
require_daemon
claim "$NAME" "$BIN"
require_port_free "$ECHO_PORT"
cleanup_on_exit "$NAME"
show socketley add "$BIN" --name "$NAME" -s -- -port "$ECHO_PORT" || fail "socketley add"
wait_until 15 "$NAME answers on port $ECHO_PORT" echo_answers "$ECHO_PORT"
show socketley ps
PID=$(socketley ps | grep crash-test | awk '{print $NF}')
[[ $PID =~ ^[0-9]+$ ]] || fail "no PID for $NAME in socketley ps"
ok "$NAME runs as pid $PID"
pause

step "Crash it"
show kill -9 "$PID" || fail "kill -9 $PID"
wait_until 5 "pid $PID is gone" eval "! kill -0 $PID"
ok "pid $PID is dead"
pause

step "systemd brings it back"
wait_until 15 "$NAME runs again with a new pid" new_pid "$NAME" "$PID"
wait_until 15 "the restarted $NAME answers" echo_answers "$ECHO_PORT"
show socketley ps
NEW=$(socketley ps | grep crash-test | awk '{print $NF}')
[[ $NEW =~ ^[0-9]+$ && $NEW != "$PID" ]] || fail "pid after the crash is '$NEW', want a new one (old $PID)"
RESTARTS=$(socketley ps | awk -v n="$NAME" '$1 == n { print $5 }')
((RESTARTS >= 1)) || fail "RESTARTS is '$RESTARTS', want at least 1"
ok "back with pid $NEW (was $PID), $RESTARTS restart(s)"
check_echo "$ECHO_PORT"
