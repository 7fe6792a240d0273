#!/usr/bin/env bash
# 04 - managed chat: the chat server (sdk/server) as a managed runtime, two
# clients chatting; kill -9 the server; systemd restarts it, the clients
# reconnect and chat again. Each message reaches the other client exactly once.
# Needs a running daemon (socketley daemon --user); see examples/README.md.
# shellcheck source=examples/managed/lib.sh
source "$(dirname "$0")/lib.sh"
NAME=chat

# connect VAR WHO: connect a client (retrying while the server comes up) and
# read its welcome line; stores the fd in VAR and the nickname in NICK_<VAR>.
connect() {
	local deadline=$((SECONDS + 15)) fd=
	until tcp_open fd "$CHAT_PORT" && tcp_recv "$fd" 2 && [[ $LINE == "* welcome "* ]]; do
		((SECONDS < deadline)) || fail "$2 cannot join the chat on port $CHAT_PORT"
		[[ -n ${fd:-} ]] && tcp_close "$fd"
		fd=
		sleep 0.1
	done
	printf -v "$1" '%s' "$fd"
	NICK=${LINE#\* welcome }
	NICK=${NICK%%;*}
	ok "$2 joined as $NICK"
}

# chat FROM_FD FROM_NICK TO_FD WHO_FROM WHO_TO TEXT: FROM says TEXT; TO hears it
# once; FROM hears nothing back.
chat() {
	printf '%s%s> %s%s\n' "$D" "$4" "$6" "$N"
	tcp_send "$1" "$6"
	expect_line "$3" "[$2] $6" "$5"
	expect_nothing "$3" "$5"
	expect_nothing "$1" "$4" 0.1 # it had the same half second to arrive
}

step "Start the chat server"
BIN=$(build_example chat-server)
require_daemon
claim "$NAME" "$BIN"
require_port_free "$CHAT_PORT"
cleanup_on_exit "$NAME"
show socketley add "$BIN" --name "$NAME" -s -- -port "$CHAT_PORT" || fail "socketley add"
wait_until 15 "the chat server listens on port $CHAT_PORT" port_busy "$CHAT_PORT"
wait_until 10 "$NAME attaches as a server" eval "socketley ls | awk '\$1 == \"$NAME\" && \$3 == \"server\"' | grep -q ."
show socketley ls
PID=$(pid_of "$NAME")
pause

step "Two clients chat"
connect ALICE alice
A_NICK=$NICK
connect BOB bob
B_NICK=$NICK
chat "$ALICE" "$A_NICK" "$BOB" alice bob "hi bob, this is alice"
chat "$BOB" "$B_NICK" "$ALICE" bob alice "hello alice"
pause

step "Crash the server"
show kill -9 "$PID" || fail "kill -9 $PID"
for who in ALICE BOB; do
	# the server is gone: the client reads end-of-file (or a reset) at once
	if tcp_recv "${!who}" 5; then fail "$who still gets data from a killed server: $LINE"; fi
	tcp_close "${!who}"
done
ok "both clients were disconnected"
wait_until 15 "$NAME runs again with a new pid" new_pid "$NAME" "$PID"
show socketley ps
NEW=$(pid_of "$NAME")
ok "systemd restarted the chat server: pid $NEW (was $PID)"
pause

step "The clients reconnect and chat again"
connect ALICE alice
A_NICK=$NICK
connect BOB bob
B_NICK=$NICK
chat "$ALICE" "$A_NICK" "$BOB" alice bob "we are back"
chat "$BOB" "$B_NICK" "$ALICE" bob alice "systemd restarted it"
tcp_close "$ALICE"
tcp_close "$BOB"
