# lib.sh - helpers shared by the managed-runtime scenarios (source it, do not run it).
#
# Environment:
#   SOCKETLEY        the socketley binary (default: bin/socketley from `make build`,
#                    else socketley on PATH)
#   SOCKETLEY_SOCKET the daemon's control socket (default: the CLI's usual resolution)
#   EXAMPLES_BIN     where the example binaries are built (default: bin/examples)
#   ECHO_PORT, CHAT_PORT, COUNTER_PORT
#                    ports of the examples (default 7070, 7072, 7071)
#
# Pauses for the reader only when stdin and stdout are terminals. Every check
# that fails ends the script with status 1; the runtime the script registered
# is stopped and removed on exit, whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
EXAMPLES_BIN=${EXAMPLES_BIN:-bin/examples}
ECHO_PORT=${ECHO_PORT:-7070}
CHAT_PORT=${CHAT_PORT:-7072}
COUNTER_PORT=${COUNTER_PORT:-7071}

if [[ -z ${SOCKETLEY:-} ]]; then
	if [[ -x bin/socketley ]]; then
		SOCKETLEY=$ROOT/bin/socketley
	elif command -v socketley >/dev/null; then
		SOCKETLEY=$(command -v socketley)
	else
		echo "no socketley binary: run 'make build' (or set SOCKETLEY=/path/to/socketley)" >&2
		exit 2
	fi
fi

# socketley runs the CLI; the scripts read as if it were on PATH.
socketley() { "$SOCKETLEY" "$@"; }

if [[ -t 1 ]]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'; else B='' G='' R='' D='' N=''; fi
interactive() { [[ -t 0 && -t 1 ]]; }

# step TEXT: a heading for the next part of the scenario.
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
# show CMD...: print the command, then run it (its status is returned).
show() { printf '%s$ %s%s\n' "$D" "$*" "$N"; "$@"; }
ok() { printf '%sok%s   %s\n' "$G" "$N" "$*"; }
fail() {
	printf '%sFAIL%s %s\n' "$R" "$N" "$*" >&2
	exit 1
}
pause() {
	if interactive; then read -rp "${D}   [Enter] to continue${N} " _ </dev/tty; fi
	return 0
}

# wait_until SECONDS WHAT CMD... : poll CMD every 0.1 s until it succeeds;
# fail the scenario with WHAT when SECONDS pass first.
wait_until() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "timed out after ${secs}s waiting until $what"
		sleep 0.1
	done
}

# --- the daemon and runtimes

# require_daemon: the daemon must answer, else explain how to start one.
require_daemon() {
	local err
	if ! err=$(socketley ls 2>&1 >/dev/null); then
		printf '%s\n' "$err" >&2
		fail "no socketley daemon answers; start one with 'socketley daemon --user', or run 'make demo' / 'make examples-test'"
	fi
}

# build_example NAME: go build examples/NAME into $EXAMPLES_BIN; prints the path.
build_example() {
	mkdir -p "$EXAMPLES_BIN"
	go build -o "$EXAMPLES_BIN/$1" "./examples/$1" || fail "go build ./examples/$1"
	printf '%s\n' "$EXAMPLES_BIN/$1"
}

# status NAME: the STATUS column of `socketley ls` for NAME (empty if unknown).
status() { socketley ls | awk -v n="$1" '$1 == n { print $5 }'; }

# pid_of NAME: the PID of NAME in `socketley ps` (its last column), or nothing.
pid_of() { socketley ps | awk -v n="$1" '$1 == n { print $NF }'; }

# new_pid NAME OLD: true once NAME is running with a PID other than OLD.
new_pid() {
	local st p
	read -r st p < <(socketley ps | awk -v n="$1" '$1 == n { print $4, $NF }')
	[[ ${st:-} == running && -n ${p:-} && $p != "$2" ]]
}

# claim NAME BINARY: make sure NAME is free. A leftover of an earlier, killed
# run of these scripts (same binary) is removed; anything else is left alone.
claim() {
	local out
	out=$(socketley show "$1" -o json 2>/dev/null) || return 0
	if grep -qF "\"path\": \"$(readlink -f "$2")\"" <<<"$out"; then
		echo "removing $1, left over from an earlier run"
		socketley remove "$1" >/dev/null
	else
		fail "a runtime named $1 already exists and is not this example; remove it first: socketley remove $1"
	fi
}

# cleanup_on_exit NAME: stop and remove NAME when the script exits. A script
# may define cleanup_hook, run after that.
CLEANUP_NAMES=()
cleanup_on_exit() { CLEANUP_NAMES+=("$1"); }
_cleanup() {
	local rc=$? n
	set +e # best effort: one failing command must not end the cleanup
	trap - EXIT
	trap '' INT TERM HUP PIPE # a second ^C (or a closed pipe) must not cut the cleanup short
	for n in "${CLEANUP_NAMES[@]}"; do
		socketley show "$n" >/dev/null 2>&1 || continue
		printf '%s-- cleanup: socketley stop %s; socketley remove %s%s\n' "$D" "$n" "$n" "$N"
		socketley stop "$n" >/dev/null 2>&1 || true
		socketley remove "$n" >/dev/null 2>&1 || echo "warning: could not remove $n" >&2
	done
	if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
trap 'exit 141' PIPE # e.g. piped into head: still clean up

# --- TCP through bash's /dev/tcp (no netcat needed)

# port_busy PORT: true when something accepts connections on PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# require_port_free PORT
require_port_free() {
	! port_busy "$1" || fail "port $1 is already in use; free it or choose another port (see examples/managed/lib.sh)"
}

# tcp_open VAR PORT: connect; store the file descriptor in VAR.
tcp_open() {
	local _tcp_fd # not "fd": printf -v must reach the caller's variable
	{ exec {_tcp_fd}<>"/dev/tcp/127.0.0.1/$2"; } 2>/dev/null || return 1
	printf -v "$1" '%s' "$_tcp_fd"
}

# tcp_close FD
tcp_close() {
	local _tcp_fd=$1
	[[ $_tcp_fd =~ ^[0-9]+$ ]] && exec {_tcp_fd}>&-
	return 0
}

# tcp_send FD LINE
tcp_send() { printf '%s\n' "$2" >&"$1"; }

# tcp_recv FD [TIMEOUT]: read one line into LINE; false on timeout or EOF.
tcp_recv() {
	LINE=
	IFS= read -r -t "${2:-3}" -u "$1" LINE || return 1
	LINE=${LINE%$'\r'}
}

# expect_line FD WANT WHO: the next line on FD must be WANT.
expect_line() {
	tcp_recv "$1" || fail "$3: no reply (wanted \"$2\")"
	[[ $LINE == "$2" ]] || fail "$3: got \"$LINE\", wanted \"$2\""
	ok "$3 got: $LINE"
}

# expect_nothing FD WHO [SECONDS]: nothing may arrive on FD for a while (0.5 s).
expect_nothing() {
	if tcp_recv "$1" "${3:-0.5}"; then fail "$2 got an unexpected line: \"$LINE\""; fi
	ok "$2 got nothing more"
}

# echo_answers PORT: one line sent through the echo service comes back intact.
echo_answers() {
	local fd token="ping-$RANDOM-$RANDOM" r=1
	tcp_open fd "$1" || return 1
	if tcp_send "$fd" "$token" 2>/dev/null && tcp_recv "$fd" 2 && [[ $LINE == "$token" ]]; then r=0; fi
	tcp_close "$fd"
	return "$r"
}

# check_echo PORT: show a round trip through the echo service and check it.
check_echo() {
	local fd msg
	msg="hello socketley ($(date +%T))"
	tcp_open fd "$1" || fail "cannot connect to 127.0.0.1:$1"
	printf '%s$ echo "%s" | <tcp 127.0.0.1:%s>%s\n' "$D" "$msg" "$1" "$N"
	tcp_send "$fd" "$msg"
	expect_line "$fd" "$msg" "echo reply"
	tcp_close "$fd"
}
