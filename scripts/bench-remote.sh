#!/usr/bin/env bash
# bench-remote.sh - `make bench-remote`: socketley over -H ssh:// against a real OpenSSH sshd on
# 127.0.0.1, next to its yardstick measured in the same run: one bare ssh login (ssh HOST -- true).
# Per round: apply -f of N runtimes (create), ls, and apply --prune of an empty manifest
# (remove N); it prints the medians, their ratio to a bare login, and how many ssh logins each
# command made (counted in sshd's log: one per command and host, whatever N is).
# Needs root, openssh-server/-client, and a systemd user manager: make bench-remote runs it in
# scripts/systemd-sandbox.sh.
#
# Usage: scripts/bench-remote.sh [-n RUNTIMES] [-r ROUNDS] [-b SOCKETLEY_BINARY]
set -euo pipefail
N=10 ROUNDS=5 BIN=${BIN:-bin/socketley}
while getopts n:r:b: o; do
	case $o in
	n) N=$OPTARG ;; r) ROUNDS=$OPTARG ;; b) BIN=$OPTARG ;;
	*) echo "usage: $0 [-n RUNTIMES] [-r ROUNDS] [-b SOCKETLEY_BINARY]" >&2; exit 2 ;;
	esac
done
[[ $EUID == 0 ]] || { echo "bench-remote: run it as root (make bench-remote)" >&2; exit 2; }
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[[ -x $SSHD ]] && command -v ssh >/dev/null || { echo "bench-remote: needs sshd and ssh (apt-get install openssh-server openssh-client)" >&2; exit 2; }
[[ -x $BIN ]] || { echo "bench-remote: no $BIN: make build first, or give -b" >&2; exit 2; }
D=$(mktemp -d /tmp/bench-remote.XXXXXX)
chmod 755 "$D"
PIDS=()
cleanup() {
	# The runtimes of a round cut short go first (their program is in $D).
	[[ -S $D/s.sock && -f $D/empty.yaml ]] && "$D/bin/socketley" --socket "$D/s.sock" apply -f "$D/empty.yaml" --prune >/dev/null 2>&1
	for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
mkdir -p "$D/bin" "$D/state" /run/sshd
cp "$BIN" "$D/bin/socketley"
ssh-keygen -q -t ed25519 -N "" -f "$D/id"
ssh-keygen -q -t ed25519 -N "" -f "$D/host_key"
cp "$D/id.pub" "$D/authorized_keys"
chmod 600 "$D/authorized_keys"
PORT=$((20000 + RANDOM % 20000))
# A login on the "host" finds socketley and its daemon as a login there would.
printf '#!/bin/sh\nexport PATH=%s:$PATH SOCKETLEY_SOCKET=%s\nexec sh -c "$SSH_ORIGINAL_COMMAND"\n' "$D/bin" "$D/s.sock" >"$D/login"
chmod +x "$D/login"
cat >"$D/sshd_config" <<EOC
ListenAddress 127.0.0.1:$PORT
HostKey $D/host_key
PidFile none
AuthorizedKeysFile $D/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
ForceCommand $D/login
LogLevel VERBOSE
EOC
"$SSHD" -D -e -f "$D/sshd_config" 2>"$D/sshd.log" &
PIDS+=($!)
SSHOPTS=(-i "$D/id" -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile="$D/known_hosts" -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o LogLevel=ERROR)
printf '#!/bin/sh\nexec ssh %s "$@"\n' "${SSHOPTS[*]}" >"$D/ssh"
chmod +x "$D/ssh"
export SOCKETLEY_SSH=$D/ssh
"$D/bin/socketley" daemon --user --socket "$D/s.sock" --state-dir "$D/state" >"$D/daemon.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	[[ -S $D/s.sock ]] && grep -q "Server listening" "$D/sshd.log" && break
	sleep 0.1
done
grep -q "Server listening" "$D/sshd.log" || { echo "bench-remote: sshd did not start:" >&2; cat "$D/sshd.log" >&2; exit 2; }
[[ -S $D/s.sock ]] || { echo "bench-remote: the daemon did not start:" >&2; cat "$D/daemon.log" >&2; exit 2; }
printf '#!/bin/sh\nexec sleep 100000\n' >"$D/svc"
chmod +x "$D/svc"
{ echo "runtimes:"; for i in $(seq "$N"); do echo "  - {name: bench-remote-$i, path: $D/svc}"; done; } >"$D/m.yaml"
echo "runtimes: []" >"$D/empty.yaml"
H=(-H "ssh://root@127.0.0.1:$PORT")

ms() { echo $((($2 - $1) / 1000000)); }
logins() { grep -c "Accepted publickey" "$D/sshd.log" || true; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -a LOGIN CREATE LS PRUNE
for r in $(seq "$ROUNDS"); do
	t0=$(date +%s%N); ssh "${SSHOPTS[@]}" -p "$PORT" root@127.0.0.1 -- true; t1=$(date +%s%N)
	LOGIN+=("$(ms "$t0" "$t1")")
	l0=$(logins); t0=$(date +%s%N)
	"$D/bin/socketley" "${H[@]}" apply -f "$D/m.yaml" >/dev/null
	t1=$(date +%s%N); l1=$(logins)
	"$D/bin/socketley" "${H[@]}" ls >/dev/null
	t2=$(date +%s%N); l2=$(logins)
	"$D/bin/socketley" "${H[@]}" apply -f "$D/empty.yaml" --prune >/dev/null
	t3=$(date +%s%N); l3=$(logins)
	CREATE+=("$(ms "$t0" "$t1")") LS+=("$(ms "$t1" "$t2")") PRUNE+=("$(ms "$t2" "$t3")")
	echo "round $r: bare login ${LOGIN[-1]} ms, apply (create $N) ${CREATE[-1]} ms [$((l1 - l0)) login], ls ${LS[-1]} ms [$((l2 - l1))], apply --prune (remove $N) ${PRUNE[-1]} ms [$((l3 - l2))]"
done
lm=$(printf '%s\n' "${LOGIN[@]}" | median)
report() { # WHAT VALUES...
	local what=$1 m
	shift
	m=$(printf '%s\n' "$@" | median)
	printf '%-28s median %6s ms = %5.2fx one bare ssh login (median %s ms)\n' "$what" "$m" \
		"$(awk -v a="$m" -v b="$lm" 'BEGIN{print (b>0 ? a/b : 0)}')" "$lm"
}
report "apply, create $N" "${CREATE[@]}"
report "ls" "${LS[@]}"
report "apply --prune, remove $N" "${PRUNE[@]}"
