#!/usr/bin/env bash
# 01 - add and run: register the echo service as a managed runtime and start it
# (-s). socketley runs it as the transient systemd unit socketley-echo-svc.service;
# the service attaches itself, so `ls` shows its type and port.
# Needs a running daemon (socketley daemon --user); see examples/README.md.
# shellcheck source=examples/managed/lib.sh
source "$(dirname "$0")/lib.sh"
NAME=echo-svc

step "Build the echo service (plain go build)"
BIN=$(build_example echo-service)
ok "built $BIN"
require_daemon
claim "$NAME" "$BIN"
require_port_free "$ECHO_PORT"
pause

step "Register it and start it at once (-s)"
cleanup_on_exit "$NAME"
show socketley add "$BIN" --name "$NAME" -s -- -port "$ECHO_PORT" || fail "socketley add"
wait_until 15 "$NAME answers on port $ECHO_PORT" echo_answers "$ECHO_PORT"
[[ $(status "$NAME") == running ]] || fail "$NAME is $(status "$NAME"), want running"
show socketley ls
ok "$NAME is running (pid $(pid_of "$NAME"))"
pause

step "Talk to it"
check_echo "$ECHO_PORT"
pause

step "systemd runs it"
show systemctl --user is-active "socketley-$NAME.service" || fail "unit socketley-$NAME.service is not active"
ok "unit socketley-$NAME.service is active"
