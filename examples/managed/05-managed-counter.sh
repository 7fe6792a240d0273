#!/usr/bin/env bash
# 05 - managed counter: the counter server replies "[counter] #N: <message>"
# with a per-connection counter. #1, #2, #3 on one connection; a new connection
# starts at #1; after stop/start the service starts counting at #1 again.
# Needs a running daemon (socketley daemon --user); see examples/README.md.
# shellcheck source=examples/managed/lib.sh
source "$(dirname "$0")/lib.sh"
NAME=counter

step "Start the counter server"
BIN=$(build_example counter-server)
require_daemon
claim "$NAME" "$BIN"
require_port_free "$COUNTER_PORT"
cleanup_on_exit "$NAME"
show socketley add "$BIN" --name "$NAME" -s -- -port "$COUNTER_PORT" || fail "socketley add"
wait_until 15 "the counter listens on port $COUNTER_PORT" port_busy "$COUNTER_PORT"
show socketley ps
PID=$(pid_of "$NAME")
[[ -n $PID ]] || fail "no pid for $NAME"
pause

step "Count on one connection"
tcp_open C1 "$COUNTER_PORT" || fail "cannot connect to port $COUNTER_PORT"
n=0
for msg in apple banana cherry; do
	n=$((n + 1))
	printf '%s> %s%s\n' "$D" "$msg" "$N"
	tcp_send "$C1" "$msg"
	expect_line "$C1" "[counter] #$n: $msg" "connection 1"
done
step "A second connection has its own counter"
tcp_open C2 "$COUNTER_PORT" || fail "cannot connect to port $COUNTER_PORT"
tcp_send "$C2" "other"
expect_line "$C2" "[counter] #1: other" "connection 2"
tcp_send "$C1" "date"
expect_line "$C1" "[counter] #4: date" "connection 1"
pause

step "Stop and start the service"
show socketley stop "$NAME" || fail "socketley stop"
[[ $(status "$NAME") == stopped ]] || fail "status after stop is '$(status "$NAME")', want stopped"
if tcp_recv "$C1" 5; then fail "connection 1 still gets data after stop: $LINE"; fi
tcp_close "$C1"
tcp_close "$C2"
ok "stopped; the connections were closed"
show socketley start "$NAME" || fail "socketley start"
wait_until 15 "the counter listens again" port_busy "$COUNTER_PORT"
NEW=$(pid_of "$NAME")
[[ -n $NEW && $NEW != "$PID" ]] || fail "pid after start is '$NEW', want a new one (was $PID)"
ok "running again as pid $NEW (was $PID)"
pause

step "The counter starts again at #1"
tcp_open C3 "$COUNTER_PORT" || fail "cannot connect to port $COUNTER_PORT"
n=0
for msg in again and-again; do
	n=$((n + 1))
	tcp_send "$C3" "$msg"
	expect_line "$C3" "[counter] #$n: $msg" "new connection"
done
tcp_close "$C3"
