#!/usr/bin/env bash
# 03 - stop/start cycle: register without -s (nothing runs yet), start, stop,
# start again (a new process), then remove.
# Needs a running daemon (socketley daemon --user); see examples/README.md.
# shellcheck source=examples/managed/lib.sh
source "$(dirname "$0")/lib.sh"
NAME=cycle-test

step "Register the echo service without starting it"
BIN=$(build_example echo-service)
require_daemon
claim "$NAME" "$BIN"
require_port_free "$ECHO_PORT"
cleanup_on_exit "$NAME"
show socketley add "$BIN" --name "$NAME" -- -port "$ECHO_PORT" || fail "socketley add"
show socketley ls
ST=$(status "$NAME")
[[ $ST == created || $ST == stopped ]] || fail "status after add is '$ST', want created or stopped"
[[ -z $(pid_of "$NAME") ]] || fail "$NAME has a process although it was not started"
! port_busy "$ECHO_PORT" || fail "port $ECHO_PORT answers although $NAME was not started"
ok "$NAME is registered ($ST) and not running"
pause

step "Start it"
show socketley start "$NAME" || fail "socketley start"
wait_until 15 "$NAME answers on port $ECHO_PORT" echo_answers "$ECHO_PORT"
PID1=$(pid_of "$NAME")
[[ -n $PID1 ]] || fail "no pid after start"
ok "running as pid $PID1"
check_echo "$ECHO_PORT"
pause

step "Stop it"
show socketley stop "$NAME" || fail "socketley stop"
show socketley ls
[[ $(status "$NAME") == stopped ]] || fail "status after stop is '$(status "$NAME")', want stopped"
! kill -0 "$PID1" 2>/dev/null || fail "pid $PID1 still alive after stop returned"
! port_busy "$ECHO_PORT" || fail "port $ECHO_PORT still answers after stop"
ok "stopped: pid $PID1 is gone, port $ECHO_PORT closed"
pause

step "Start it again: a new process"
show socketley start "$NAME" || fail "socketley start"
wait_until 15 "$NAME answers again" echo_answers "$ECHO_PORT"
PID2=$(pid_of "$NAME")
[[ -n $PID2 && $PID2 != "$PID1" ]] || fail "pid after the second start is '$PID2', want a new one (was $PID1)"
ok "running again as pid $PID2 (was $PID1)"
check_echo "$ECHO_PORT"
pause

step "Remove it"
show socketley remove "$NAME" || fail "socketley remove"
[[ -z $(status "$NAME") ]] || fail "$NAME still listed after remove"
! kill -0 "$PID2" 2>/dev/null || fail "pid $PID2 still alive after remove"
show socketley ls
ok "removed"
