#!/usr/bin/env bash
# package-test.sh -- build the socketley .deb and .rpm, inspect them, then install, use,
# upgrade and purge them on this machine with a real systemd (make package-test).
#
#   1. make packages into a temp dir (+ a second .deb with a higher version for the upgrade)
#   2. inspect both: metadata, file lists, maintainer scripts (sh -n), man pages, completions;
#      the .rpm is also installed into a scratch --root and erased again (--noscripts)
#   3. dpkg -i on the host, where systemd is NOT running: group created, unit enabled offline,
#      nothing started
#   4. user-mode sandbox (systemd --user) with the packaged user unit: daemon active, a managed
#      runtime survives `systemctl --user restart socketley`
#   5. system-mode sandbox (scripts/systemd-sandbox.sh --system: systemd as PID 1 in
#      namespaces) whose unit set holds the installed /lib/systemd/system/socketley.service,
#      enabled as at boot.  Inside: daemon active (Type=notify), socket 0660 root:socketley; a
#      non-root member of group socketley adds and starts a managed example over
#      /run/socketley/socketley.sock and it runs as that user; a non-member is refused;
#      `systemctl stop/start`, a SIGKILL of the daemon (Restart=on-failure), `systemctl
#      restart` and an upgrade (`dpkg -i` of the higher version: postinst daemon-reload +
#      try-restart) all keep the managed unit's PID and the registry, and the CLI sees the new
#      daemon version; `socketley remove`; `dpkg --purge` leaves nothing.  Then the .rpm for
#      real (rpm -i/-e with its scriptlets, RPM db in the temp dir): preset, start, erase stops
#      the daemon but not a managed unit, no file left
#   6. on the host: nothing of either package is left (files, directories they created, the
#      enablement link, /var/lib/socketley, /run/socketley).  Group policy: the packages keep
#      the group "socketley" on purge/erase (see packaging/scripts/deb/postrm); this test
#      checks that, then deletes the group again if it did not exist before, and always
#      deletes its test user.
#
# Needs root, and a machine where systemd is not PID 1 (a CI VM or container): it installs the
# packages for real.  Leaves the machine as it found it, also when a check fails; a run that
# was killed is cleaned up by the next run (state in /var/tmp/socketley-package-test.state).
# Needs dpkg, rpm (Debian package rpm; .ci/run installs it), useradd, runuser, make, go.
# Prints "N passed, N failed" at the end.  Env: KEEP=1 keeps the temp dir; PKG_README=FILE
# (make variable) packages another file as README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SELF=$REPO/scripts/package-test.sh
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

PT_USER=sktest-pkg     # test user (created and deleted here)
PT_NAME=pkgtest        # managed runtime name
STATE=/var/tmp/socketley-package-test.state
UNIT_SRC=/lib/systemd/system/socketley.service
SOCKET_SRC=/lib/systemd/system/socketley.socket
WANTS_SOCKET=/etc/systemd/system/sockets.target.wants/socketley.socket

PASSED=0
ok() {
	PASSED=$((PASSED + 1))
	printf 'ok   %s\n' "$*"
	if [[ -n ${COUNT_FILE:-} ]]; then echo "$PASSED" >"$COUNT_FILE"; fi # inside a sandbox
}
bad() {
	printf 'FAIL %s\n' "$*" >&2
	if [[ -n ${DIAG:-} ]]; then echo "---- $DIAG" >&2; eval "$DIAG" >&2 2>&1 || true; fi
	exit 1
}
# check DESCRIPTION CMD... : CMD must succeed
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# wait_until SECONDS CMD... : poll CMD every 0.1 s
wait_until() {
	local n=$(($1 * 10)); shift
	while ((n-- > 0)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
# left_behind : print what exists of the paths the packages brought (files and the
# directories that did not exist before the install, $PT_DIR/new.paths) and of their state
left_behind() {
	local f
	while IFS= read -r f; do
		if [[ -e $f || -L $f ]]; then echo "$f"; fi
	done <"$PT_DIR/new.paths"
	for f in /var/lib/socketley /run/socketley /etc/systemd/system/multi-user.target.wants/socketley.service "$WANTS_SOCKET"; do
		if [[ -e $f || -L $f ]]; then echo "$f"; fi
	done
}
nothing_left() { # nothing_left WHAT
	local left
	left=$(left_behind)
	[[ -z $left ]] && return 0
	printf '  left behind by %s: %s\n' "$1" $left >&2
	return 1
}
export T0=${T0:-$(date +%s)}
section() { printf '== [%3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
# deb_present : dpkg knows socketley in any state but not-installed (also half-installed)
deb_present() {
	local st
	st=$(dpkg-query -W -f '${db:Status-Status}' socketley 2>/dev/null) || return 1
	[[ -n $st && $st != not-installed ]]
}
# hammer_start CMD... : run CMD over and over in the background (until hammer_stop), counting
# the runs and the failures; hammer_stop sets HAMMER_RUNS and HAMMER_FAILS
hammer_start() {
	rm -f "$PT_DIR/hammer.stop" "$PT_DIR/hammer.errs"
	(
		n=0 f=0
		while [[ ! -e $PT_DIR/hammer.stop ]]; do
			n=$((n + 1))
			"$@" >/dev/null 2>"$PT_DIR/hammer.err" || { f=$((f + 1)); cat "$PT_DIR/hammer.err" >>"$PT_DIR/hammer.errs"; }
		done
		echo "$n $f" >"$PT_DIR/hammer.out"
	) &
	HAMMER=$!
}
hammer_stop() {
	touch "$PT_DIR/hammer.stop"
	wait "$HAMMER"
	read -r HAMMER_RUNS HAMMER_FAILS <"$PT_DIR/hammer.out"
	if ((HAMMER_FAILS > 0)); then sed 's/^/     | /' "$PT_DIR/hammer.errs" | head -5; fi
}
has_all() { # has_all LISTFILE PATH... : every PATH is a line of LISTFILE
	local p rc=0
	for p in "${@:2}"; do grep -qxF -- "$p" "$1" || { echo "  missing: $p" >&2; rc=1; }; done
	return $rc
}

# ============================================================== inside the system sandbox
# Runs as the sandbox's COMMAND: systemd is PID 1 of this PID namespace, /run is private.
inside() {
	local sk=(runuser -u "$PT_USER" -- socketley --system) out pid dpid dpid2
	DIAG="journalctl -u socketley.service -u socketley-$PT_NAME.service -n 40 --no-pager"
	COUNT_FILE=$PT_DIR/inside.passed
	cd "$PT_DIR"
	unit_pid() { systemctl show -p MainPID --value "$1"; }

	check "sandbox: systemd is PID 1 and sees the packaged unit" \
		test "$(cat /proc/1/comm)" = systemd -a "$(systemctl show -p FragmentPath --value socketley.service)" != ""
	wait_until 15 systemctl is-active --quiet socketley.service || true
	check "systemctl is-active socketley (Type=notify, started with the boot target)" \
		systemctl is-active --quiet socketley.service
	check "socketley.socket is active (listening, started with sockets.target)" systemctl is-active --quiet socketley.socket
	check "socket /run/socketley/socketley.sock is 0660 root:socketley" \
		test "$(stat -c '%F %a %U:%G' /run/socketley/socketley.sock 2>&1)" = "socket 660 root:socketley"
	check "state directory /var/lib/socketley exists (StateDirectory=)" test -d /var/lib/socketley

	out=$("${sk[@]}" version 2>&1) || bad "socketley version as $PT_USER: $out"
	check "the CLI of member $PT_USER reaches the daemon ($PT_OLD_BIN_VERSION)" \
		grep -q "^daemon: socketley $PT_OLD_BIN_VERSION " <<<"$out"
	out=$(runuser -u nobody -- socketley --system ls 2>&1) && bad "nobody (not in group socketley) was let in: $out"
	check "a non-member is refused (permission on the socket or group check)" \
		grep -Eqi 'permission denied|not in group' <<<"$out"

	out=$(cd /tmp && "${sk[@]}" add "$PT_DIR/ex/$PT_NAME.sh" --name "$PT_NAME" -s 2>&1) ||
		bad "socketley add -s as $PT_USER: $out"
	ok "socketley add -s as $PT_USER: $out"
	wait_until 10 systemctl is-active --quiet "socketley-$PT_NAME.service" || true
	out=$(systemctl status --no-pager "socketley-$PT_NAME.service" 2>&1) || true
	printf '%s\n' "$out" | sed -n '1,4s/^/     | /p'
	check "systemctl status socketley-$PT_NAME: active (running)" grep -q 'Active: active (running)' <<<"$out"
	pid=$(unit_pid "socketley-$PT_NAME.service")
	check "socketley-$PT_NAME runs as User=$PT_USER (pid $pid)" \
		test "$(systemctl show -p User --value "socketley-$PT_NAME.service")" = "$PT_USER" -a \
		"$(stat -c %U "/proc/$pid")" = "$PT_USER"
	check "the runtime is registered in /var/lib/socketley (registry.json or its journal)" \
		sh -c "cat /var/lib/socketley/registry.json /var/lib/socketley/registry-*.log 2>/dev/null | grep -q \"\\\"$PT_NAME\\\"\""

	systemctl stop socketley.service || bad "systemctl stop socketley"
	check "stop: daemon inactive, socketley-$PT_NAME still running with PID $pid" \
		test "$(systemctl is-active socketley.service)" != active -a "$(unit_pid "socketley-$PT_NAME.service")" = "$pid"
	check "stop: socketley.socket keeps listening" systemctl is-active --quiet socketley.socket
	out=$("${sk[@]}" ls 2>&1) || bad "socketley ls while the daemon is stopped: $out"
	check "socket activation: ls while the daemon is stopped started it and was answered" \
		sh -c 'systemctl is-active --quiet socketley.service && printf "%s\n" "$2" | grep -q "$1"' _ "$PT_NAME" "$out"
	systemctl start socketley.service || bad "systemctl start socketley"
	check "start: daemon active again, socketley-$PT_NAME kept PID $pid" \
		test "$(systemctl is-active socketley.service)" = active -a "$(unit_pid "socketley-$PT_NAME.service")" = "$pid"

	dpid=$(unit_pid socketley.service)
	systemctl kill -s KILL socketley.service || bad "systemctl kill socketley"
	wait_until 15 sh -c "systemctl is-active --quiet socketley.service && test \"\$(systemctl show -p MainPID --value socketley.service)\" != $dpid" || true
	check "crash (SIGKILL): Restart=on-failure brought the daemon back (pid $dpid -> $(unit_pid socketley.service))" \
		test "$(systemctl is-active socketley.service)" = active -a "$(unit_pid socketley.service)" != "$dpid"
	check "crash: socketley-$PT_NAME kept its PID $pid" test "$(unit_pid "socketley-$PT_NAME.service")" = "$pid"

	dpid=$(unit_pid socketley.service)
	hammer_start "${sk[@]}" ls
	systemctl restart socketley.service || bad "systemctl restart socketley"
	systemctl restart socketley.service || bad "systemctl restart socketley"
	hammer_stop
	check "restart x2 under a loop of socketley ls: $HAMMER_RUNS runs, $HAMMER_FAILS failed (none refused)" test "$HAMMER_FAILS" = 0
	check "daemon restarted (pid $dpid -> $(unit_pid socketley.service)) and active" \
		test "$(systemctl is-active socketley.service)" = active -a "$(unit_pid socketley.service)" != "$dpid"
	check "restart: socketley-$PT_NAME kept its PID $pid" \
		test "$(unit_pid "socketley-$PT_NAME.service")" = "$pid"
	out=$("${sk[@]}" ls 2>&1) || bad "socketley ls after restart: $out"
	check "restart: the daemon re-adopted $PT_NAME (socketley ls)" grep -q "$PT_NAME" <<<"$out"

	section "metrics: SOCKETLEY_METRICS_LISTEN in /etc/default/socketley (EnvironmentFile=)"
	cp /etc/default/socketley "$PT_DIR/default.orig"
	echo 'SOCKETLEY_METRICS_LISTEN=127.0.0.1:9559' >>/etc/default/socketley
	systemctl restart socketley.service || bad "systemctl restart socketley (metrics)"
	scrape() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9559/metrics", timeout=5).read().decode())'; }
	wait_until 15 scrape || true
	out=$(scrape 2>&1) || out="scrape failed: $out"
	check "metrics: the daemon serves /metrics on 127.0.0.1:9559 and lists $PT_NAME as up" \
		grep -q "^socketley_runtime_up{name=\"$PT_NAME\",mode=\"unit\"} 1" <<<"$out"
	cp "$PT_DIR/default.orig" /etc/default/socketley
	systemctl restart socketley.service || bad "systemctl restart socketley (metrics off)"
	check "metrics: off again once the line is gone" sh -c '! python3 -c "import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:9559/metrics\", timeout=5)" 2>/dev/null'

	section "upgrade: dpkg -i of the higher version while systemd runs"
	dpid=$(unit_pid socketley.service)
	local sockt
	sockt=$(systemctl show -p ActiveEnterTimestampMonotonic --value socketley.socket)
	hammer_start "${sk[@]}" ls
	out=$(dpkg -i "$PT_UPGRADE_DEB" 2>&1) || { hammer_stop; bad "dpkg -i (upgrade): $out"; }
	hammer_stop
	check "upgrade under a loop of socketley ls: $HAMMER_RUNS runs, $HAMMER_FAILS failed (none refused)" test "$HAMMER_FAILS" = 0
	check "upgrade: socketley.socket was not restarted (its socket never closed)" \
		test "$(systemctl show -p ActiveEnterTimestampMonotonic --value socketley.socket)" = "$sockt" -a "$(systemctl is-active socketley.socket)" = active
	printf '%s\n' "$out" | sed 's/^/     | /'
	check "upgrade: dpkg reports version $PT_NEW_VERSION" \
		test "$(dpkg-query -W -f '${Version}' socketley)" = "$PT_NEW_VERSION"
	wait_until 10 systemctl is-active --quiet socketley.service || true
	dpid2=$(unit_pid socketley.service)
	check "upgrade: daemon was try-restarted (pid $dpid -> $dpid2) and is active" \
		test "$(systemctl is-active socketley.service)" = active -a "$dpid2" != "$dpid"
	check "upgrade: socketley-$PT_NAME kept its PID $pid" test "$(unit_pid "socketley-$PT_NAME.service")" = "$pid"
	out=$("${sk[@]}" version 2>&1) || bad "socketley version after upgrade: $out"
	check "upgrade: the daemon reports the new version $PT_NEW_BIN_VERSION" \
		grep -q "^daemon: socketley $PT_NEW_BIN_VERSION " <<<"$out"
	out=$("${sk[@]}" ls -o json 2>&1) || bad "socketley ls after upgrade: $out"
	check "upgrade: the registry survived ($PT_NAME listed)" grep -q "\"$PT_NAME\"" <<<"$out"

	section "dpkg -r (remove, not purge) and reinstall while systemd runs"
	out=$(dpkg -r socketley 2>&1) || bad "dpkg -r: $out"
	check "remove: daemon and socketley.socket stopped, socketley-$PT_NAME still running with PID $pid" \
		test "$(systemctl is-active socketley.service)" != active -a "$(systemctl is-active socketley.socket)" != active -a \
		"$(unit_pid "socketley-$PT_NAME.service")" = "$pid"
	check "remove: registry and enablement link kept" \
		test -f /var/lib/socketley/registry.json -a -L /etc/systemd/system/multi-user.target.wants/socketley.service
	out=$(dpkg -i "$PT_UPGRADE_DEB" 2>&1) || bad "dpkg -i (reinstall): $out"
	wait_until 10 systemctl is-active --quiet socketley.service || true
	check "reinstall: the daemon and socketley.socket run again" \
		sh -c 'systemctl is-active --quiet socketley.service && systemctl is-active --quiet socketley.socket'
	out=$("${sk[@]}" ls 2>&1) || bad "socketley ls after reinstall: $out"
	check "reinstall: $PT_NAME still registered and running" grep -q "$PT_NAME .*running" <<<"$out"
	check "reinstall: socketley-$PT_NAME kept its PID $pid" test "$(unit_pid "socketley-$PT_NAME.service")" = "$pid"

	section "socketley remove; dpkg --purge while systemd runs"
	out=$("${sk[@]}" remove "$PT_NAME" 2>&1) || bad "socketley remove: $out"
	wait_until 10 sh -c "! systemctl is-active --quiet socketley-$PT_NAME.service" || true
	check "socketley remove $PT_NAME stops its unit" \
		sh -c "! systemctl is-active --quiet socketley-$PT_NAME.service"
	out=$(dpkg --purge socketley 2>&1) || bad "dpkg --purge: $out"
	printf '%s\n' "$out" | sed 's/^/     | /'
	check "purge: socketley.service and socketley.socket are stopped and unloaded" \
		sh -c 'for u in socketley.service socketley.socket; do ! systemctl is-active --quiet $u && test "$(systemctl show -p LoadState --value $u)" != loaded || exit 1; done'
	check "purge: /run/socketley and /var/lib/socketley are gone" test ! -e /run/socketley -a ! -e /var/lib/socketley
	check "purge: dpkg left no file, directory or link of the package behind" nothing_left "dpkg --purge"

	# the .rpm for real, with its scriptlets (RPM db in the temp dir; Debian's rpm prints an
	# "use Alien" notice and then installs)
	section "rpm -i / rpm -e while systemd runs"
	local rpm=(rpm --dbpath "$PT_DIR/rpmdb" --nodeps)
	rpm --dbpath "$PT_DIR/rpmdb" --initdb
	out=$("${rpm[@]}" -i "$PT_RPM" 2>&1) || bad "rpm -i: $out"
	check "rpm -i (systemd running): /usr/bin/socketley installed, daemon not started (RPM convention)" \
		test -x /usr/bin/socketley -a "$(systemctl is-active socketley.service)" != active
	check "rpm -i: %post applied the preset (enablement links of the service and the socket)" \
		test -L /etc/systemd/system/multi-user.target.wants/socketley.service -a -L "$WANTS_SOCKET"
	systemctl start socketley.service || bad "systemctl start socketley (rpm)"
	check "rpm: systemctl start socketley -> active" systemctl is-active --quiet socketley.service
	out=$(socketley --system add "$PT_DIR/ex/$PT_NAME.sh" --name "$PT_NAME-rpm" -s 2>&1) || bad "socketley add (rpm): $out"
	pid=$(unit_pid "socketley-$PT_NAME-rpm.service")
	out=$("${rpm[@]}" -e socketley 2>&1) || bad "rpm -e: $out"
	check "rpm -e: %preun stopped and disabled the daemon and its socket" \
		test "$(systemctl is-active socketley.service)" != active -a "$(systemctl is-active socketley.socket)" != active -a \
		! -e /etc/systemd/system/multi-user.target.wants/socketley.service -a ! -e "$WANTS_SOCKET"
	check "rpm -e: the managed socketley-$PT_NAME-rpm keeps running (PID $pid)" \
		test "$(unit_pid "socketley-$PT_NAME-rpm.service")" = "$pid" -a "$pid" != 0
	systemctl stop "socketley-$PT_NAME-rpm.service"
	check "rpm -e keeps /var/lib/socketley (RPM has no purge)" test -d /var/lib/socketley
	rm -rf /var/lib/socketley
	# RPM does not own (so leaves) parents like /usr/share/licenses that a Debian host lacks
	local d
	while IFS= read -r d; do
		if [[ -d $d && ! -L $d ]] && rmdir "$d" 2>/dev/null; then echo "     | removed unowned directory $d (created by rpm -i)"; fi
	done <"$PT_DIR/new.paths"
	check "rpm -e: no file of the package left" nothing_left "rpm -e"
}

# Runs as COMMAND of a user-mode sandbox (systemd --user + session bus, as root).
inside_user() {
	local sk=(socketley --user) out pid dpid
	DIAG="journalctl --user-unit socketley.service --user-unit socketley-$PT_NAME.service -n 40 --no-pager"
	COUNT_FILE=$PT_DIR/inside-user.passed
	unit_pid() { systemctl --user show -p MainPID --value "$1"; }
	wait_until 15 systemctl --user is-active --quiet socketley.service || true
	check "user unit: systemctl --user is-active socketley" systemctl --user is-active --quiet socketley.service
	check "user unit: socketley.socket is active" systemctl --user is-active --quiet socketley.socket
	check "user unit: socket \$XDG_RUNTIME_DIR/socketley/socketley.sock is 0600" \
		test "$(stat -c '%F %a' "$XDG_RUNTIME_DIR/socketley/socketley.sock" 2>&1)" = "socket 600"
	out=$("${sk[@]}" add "$PT_DIR/ex/$PT_NAME.sh" --name "$PT_NAME" -s 2>&1) || bad "user unit: socketley --user add -s: $out"
	wait_until 10 systemctl --user is-active --quiet "socketley-$PT_NAME.service" || true
	pid=$(unit_pid "socketley-$PT_NAME.service")
	check "user unit: managed socketley-$PT_NAME runs (pid $pid)" systemctl --user is-active --quiet "socketley-$PT_NAME.service"
	dpid=$(unit_pid socketley.service)
	systemctl --user restart socketley.service || bad "systemctl --user restart socketley"
	check "user unit: daemon restarted (pid $dpid -> $(unit_pid socketley.service)), socketley-$PT_NAME kept PID $pid" \
		test "$(systemctl --user is-active socketley.service)" = active -a "$(unit_pid socketley.service)" != "$dpid" -a \
		"$(unit_pid "socketley-$PT_NAME.service")" = "$pid"
	out=$("${sk[@]}" ls 2>&1) || bad "user unit: socketley --user ls: $out"
	check "user unit: the daemon re-adopted $PT_NAME" grep -q "$PT_NAME" <<<"$out"
	systemctl --user stop socketley.service || bad "systemctl --user stop socketley"
	out=$("${sk[@]}" ls 2>&1) || bad "user unit: socketley --user ls with the daemon stopped: $out"
	check "user unit: ls while the daemon is stopped started it through socketley.socket" \
		sh -c 'systemctl --user is-active --quiet socketley.service && test -n "$1"' _ "$(grep "$PT_NAME" <<<"$out")"
}

case ${1:-} in
--inside) inside; exit 0 ;;
--inside-user) inside_user; exit 0 ;;
esac

# ============================================================== outside
[[ $EUID == 0 ]] || { echo "package-test.sh: must run as root: it installs the .deb (dpkg -i), creates a test user and runs a system systemd in a sandbox" >&2; exit 1; }
[[ -d /run/systemd/system ]] && { echo "package-test.sh: systemd is running on this machine; this test installs the package for real and is meant for a throw-away machine or CI without systemd as PID 1" >&2; exit 1; }
for c in dpkg dpkg-deb useradd userdel groupdel runuser make go gzip; do
	command -v "$c" >/dev/null || { echo "package-test.sh: missing $c" >&2; exit 1; }
done
if ! command -v rpm >/dev/null; then
	echo "package-test.sh: missing rpm (needed to inspect, install and erase the .rpm): apt-get install rpm (.ci/run installs it)" >&2
	exit 1
fi

# --- undo what this test did (also what a killed earlier run left, from $STATE)
restore() {
	local created_group= created_state= created_user= tmp= line clean=1
	[[ -f $STATE ]] || return 0
	set +e
	while IFS= read -r line; do
		case $line in
		group) created_group=1 ;;
		state) created_state=1 ;;
		user) created_user=1 ;;
		tmp\ /tmp/socketley-pkgtest.*) tmp=${line#tmp } ;;
		esac
	done <"$STATE"
	if [[ -n $tmp && -d $tmp/rpmdb ]] && rpm --dbpath "$tmp/rpmdb" -q socketley >/dev/null 2>&1; then
		echo "package-test: cleanup: rpm -e socketley (test rpm db)" >&2
		systemctl --no-reload disable socketley.service >/dev/null 2>&1 # while the unit file is there
		rpm --dbpath "$tmp/rpmdb" -e --nodeps --noscripts socketley >/dev/null 2>&1 || clean=
	fi
	if deb_present; then
		echo "package-test: cleanup: dpkg --purge socketley" >&2
		# a run killed in the middle of dpkg leaves the package half-installed (reinstreq)
		dpkg --purge socketley >/dev/null 2>&1 || dpkg --purge --force-remove-reinstreq socketley >/dev/null 2>&1 ||
			{ echo "package-test: warning: dpkg --purge socketley failed; the next run tries again" >&2; clean=; }
	fi
	if [[ -n $clean ]]; then
		rm -f /etc/systemd/system/multi-user.target.wants/socketley.service "$WANTS_SOCKET"
		if [[ -n $created_user ]] && id "$PT_USER" >/dev/null 2>&1; then userdel "$PT_USER"; fi
		if [[ -n $created_group ]] && getent group socketley >/dev/null; then groupdel socketley; fi
		if [[ -n $created_state ]]; then rm -rf /var/lib/socketley; fi
		if [[ -n $tmp && -f $tmp/new.paths ]]; then # empty directories the packages created
			while IFS= read -r line; do
				if [[ -d $line && ! -L $line ]]; then rmdir "$line" 2>/dev/null; fi
			done <"$tmp/new.paths"
		fi
		if [[ -n $tmp && ${KEEP:-0} != 1 ]]; then rm -rf "$tmp"; fi
		rm -f "$STATE"
	fi
	set -e
	return 0
}
[[ -f $STATE ]] && { echo "package-test: cleaning up after an earlier, interrupted run" >&2; restore; }
scripts/systemd-sandbox.sh --gc 2>/dev/null || true

# refuse to touch what is not ours
if deb_present; then
	echo "package-test.sh: a socketley package is installed on this machine; not touching it" >&2; exit 1
fi
[[ -e /var/lib/socketley ]] && { echo "package-test.sh: /var/lib/socketley exists (a daemon's registry?); not touching it" >&2; exit 1; }
id "$PT_USER" >/dev/null 2>&1 && { echo "package-test.sh: user $PT_USER exists already; not touching it" >&2; exit 1; }

T=$(mktemp -d /tmp/socketley-pkgtest.XXXXXX)
chmod 0755 "$T"
finish() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	restore # removes $T too, unless KEEP=1 or the cleanup must be retried by the next run
	if [[ -d $T ]]; then echo "package-test: kept $T" >&2; fi
	printf '%d passed, %d failed\n' "$PASSED" "$((rc != 0))"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "tmp $T" >"$STATE"
getent group socketley >/dev/null || echo group >>"$STATE"
echo state >>"$STATE"

# ---------------------------------------------------------------- 1. build
section "build (make packages; an upgrade .deb with a higher version)"
make -s packages PKG_DIR="$T/pkg" >"$T/build.log" 2>&1 || { tail -n 30 "$T/build.log" >&2; bad "make packages"; }
DEB=$(echo "$T"/pkg/socketley_*.deb) RPM=$(echo "$T"/pkg/socketley-*.rpm)
check "make packages built one .deb and one .rpm" test -f "$DEB" -a -f "$RPM"
OLD_VERSION=$(dpkg-deb -f "$DEB" Version)
mkdir -p "$T/x" && dpkg-deb -x "$DEB" "$T/x"
PT_OLD_BIN_VERSION=$("$T/x/usr/bin/socketley" --version | awk '{print $2}')
PT_NEW_BIN_VERSION=$PT_OLD_BIN_VERSION-pkgtest
PKGV=${OLD_VERSION%-*}
make -s deb PKG_DIR="$T/up" PKG_VERSION="$PKGV+pkgtest" VERSION="$PT_NEW_BIN_VERSION" >>"$T/build.log" 2>&1 ||
	{ tail -n 30 "$T/build.log" >&2; bad "make deb (upgrade)"; }
PT_UPGRADE_DEB=$(echo "$T"/up/socketley_*.deb)
PT_NEW_VERSION=$(dpkg-deb -f "$PT_UPGRADE_DEB" Version)
check "upgrade .deb $PT_NEW_VERSION sorts after $OLD_VERSION" dpkg --compare-versions "$PT_NEW_VERSION" gt "$OLD_VERSION"

# ---------------------------------------------------------------- 2. inspect
section "inspect $(basename "$DEB") and $(basename "$RPM")"
files=(/usr/bin/socketley /usr/lib/systemd/user/socketley.service /usr/lib/systemd/user/socketley.socket /usr/lib/sysusers.d/socketley.conf
	/usr/share/man/man1/socketley.1.gz /usr/share/man/man1/socketley-daemon.1.gz /usr/share/man/man1/socketley-add.1.gz
	/usr/share/bash-completion/completions/socketley /usr/share/fish/vendor_completions.d/socketley.fish
	/usr/share/doc/socketley/README.md /etc/default/socketley /usr/share/socketley/prometheus/socketley-rules.yml)
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$T/deb.list"
check "deb: file list has binary, units, sysusers, man pages, completions, README, copyright, environment file, alert rules" \
	has_all "$T/deb.list" "${files[@]}" /lib/systemd/system/socketley.service "$SOCKET_SRC" \
	/usr/share/zsh/vendor-completions/_socketley /usr/share/doc/socketley/copyright
check "deb: metadata (Package socketley, Architecture $(dpkg --print-architecture), Version $OLD_VERSION)" \
	test "$(dpkg-deb -f "$DEB" Package Architecture | tr '\n' ' ')" = "Package: socketley Architecture: $(dpkg --print-architecture) "
dpkg-deb -e "$DEB" "$T/control"
check "deb: /etc/default/socketley is a conffile" grep -qx /etc/default/socketley "$T/control/conffiles"
check "deb: postinst, prerm and postrm present and valid sh" \
	sh -c 'for s in postinst prerm postrm; do test -x "$1/$s" && sh -n "$1/$s" || exit 1; done' _ "$T/control"
check "deb: maintainer scripts never pkill/killall" sh -c '! grep -Eq "pkill|killall" "$1"/postinst "$1"/prerm "$1"/postrm' _ "$T/control"
rpm -qlp "$RPM" 2>/dev/null >"$T/rpm.list"
check "rpm -qlp: binary, units, sysusers, man pages, completions, README, license" \
	has_all "$T/rpm.list" "${files[@]}" /usr/lib/systemd/system/socketley.service /usr/lib/systemd/system/socketley.socket \
	/usr/share/zsh/site-functions/_socketley /usr/share/licenses/socketley/LICENSE
check "rpm: metadata (socketley ${PKGV} release 1, Apache-2.0)" \
	test "$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{LICENSE}' "$RPM" 2>/dev/null)" = "socketley $PKGV 1 Apache-2.0"
rpm -qp --scripts "$RPM" 2>/dev/null >"$T/rpm.scripts"
check "rpm: %post, %preun and %postun scriptlets present" \
	sh -c 'grep -q "^postinstall scriptlet" "$1" && grep -q "^preuninstall scriptlet" "$1" && grep -q "^postuninstall scriptlet" "$1"' _ "$T/rpm.scripts"
check "deb: packaged binary prints its version ($PT_OLD_BIN_VERSION)" \
	grep -q "^socketley $PT_OLD_BIN_VERSION (commit " <<<"$("$T/x/usr/bin/socketley" --version)"
check "man pages are gzip'ed roff named after the commands" \
	sh -c 'zcat "$1"/usr/share/man/man1/socketley-add.1.gz | grep -q "^\.TH \"SOCKETLEY\" \"1\""' _ "$T/x"
if command -v groff >/dev/null; then
	check "man page socketley-daemon.1 renders without groff warnings" \
		sh -c '! zcat "$1"/usr/share/man/man1/socketley-daemon.1.gz | groff -man -Tutf8 -ww -z 2>&1 | grep .' _ "$T/x"
fi
check "bash completion parses (bash -n) and registers a completer" \
	sh -c 'bash -n "$1" && grep -q "complete .*socketley" "$1"' _ "$T/x/usr/share/bash-completion/completions/socketley"
mkdir -p "$T/rpmroot"
out=$(rpm --root "$T/rpmroot" --initdb 2>&1 && rpm -i --root "$T/rpmroot" --nodeps --noscripts "$RPM" 2>&1) ||
	bad "rpm -i into a scratch --root: $out"
check "rpm -i --root (scratch dir, --noscripts): installed binary runs" \
	sh -c '"$1"/usr/bin/socketley --version >/dev/null && rpm --root "$1" -q socketley >/dev/null 2>&1' _ "$T/rpmroot"
out=$(rpm -e --root "$T/rpmroot" --noscripts socketley 2>&1) || bad "rpm -e --root: $out"
# (parent directories such as /usr/share/man/man1 belong to other packages on a real system)
check "rpm -e --root removes every file and the directories it owns" \
	test -z "$(find "$T/rpmroot" ! -type d ! -path "$T/rpmroot/var/*" ! -path "$T/rpmroot/root/.rpmdb/*"; find "$T/rpmroot/usr/share/doc/socketley" "$T/rpmroot/usr/share/licenses/socketley" 2>/dev/null)"

# every path the packages bring, with its parents; those not there now must be gone at the end
awk 'NF' "$T/deb.list" "$T/rpm.list" | while IFS= read -r p; do
	while [[ -n $p && $p != / ]]; do echo "$p"; p=${p%/*}; done
done | sort -u | while IFS= read -r p; do [[ -e $p || -L $p ]] || echo "$p"; done | sort -r >"$T/new.paths"

# ---------------------------------------------------------------- 3. install offline
section "dpkg -i on the host (systemd not running: offline enable, no start)"
out=$(dpkg -i "$DEB" 2>&1) || bad "dpkg -i: $out"
printf '%s\n' "$out" | sed 's/^/     | /'
no_warning() { ! grep -qi warning <<<"$1"; }
check "dpkg -i without a running systemd: installed (ii)" test "$(dpkg-query -W -f '${db:Status-Abbrev}' socketley)" = "ii "
check "dpkg -i without a running systemd: no warning from the maintainer scripts" no_warning "$out"
check "group socketley exists (sysusers.d)" eval 'getent group socketley >/dev/null'
check "unit enabled offline (multi-user.target.wants link)" \
	test "$(readlink /etc/systemd/system/multi-user.target.wants/socketley.service)" = "$UNIT_SRC"
check "socket unit enabled offline (sockets.target.wants link)" test "$(readlink "$WANTS_SOCKET")" = "$SOCKET_SRC"
check "offline install started no daemon" test ! -e /run/socketley
if command -v systemd-analyze >/dev/null; then
	check "systemd-analyze verify: system units" sh -c '! SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$1" "$2" 2>&1 | grep -v "^$" | grep -q .' _ "$UNIT_SRC" "$SOCKET_SRC"
fi

# ---------------------------------------------------------------- 4. the system sandbox
echo user >>"$STATE"
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin -G socketley "$PT_USER"
check "test user $PT_USER is a member of socketley" sh -c 'id -nG "$1" | grep -qw socketley' _ "$PT_USER"
mkdir -p "$T/ex"
printf '#!/bin/sh\n# managed example for package-test.sh\nexec sleep 1000\n' >"$T/ex/$PT_NAME.sh"
chmod 0755 "$T/ex" "$T/ex/$PT_NAME.sh"

PT_RPM=$RPM
export PT_DIR=$T PT_USER PT_NAME PT_RPM PT_UPGRADE_DEB PT_NEW_VERSION PT_OLD_BIN_VERSION PT_NEW_BIN_VERSION
section "user sandbox: systemd --user with /usr/lib/systemd/user/socketley.service"
rc=0
scripts/systemd-sandbox.sh --journal --unit /usr/lib/systemd/user/socketley.service --unit /usr/lib/systemd/user/socketley.socket \
	--enable socketley.socket --enable socketley.service -- "$SELF" --inside-user || rc=$?
[[ -f $T/inside-user.passed ]] && PASSED=$((PASSED + $(<"$T/inside-user.passed")))
((rc == 0)) || bad "checks inside the user sandbox (exit $rc)"

section "system sandbox: systemd as PID 1 with $UNIT_SRC"
rc=0
scripts/systemd-sandbox.sh --system --journal --unit "$UNIT_SRC" --unit "$SOCKET_SRC" --enable socketley.socket --enable socketley.service -- "$SELF" --inside || rc=$?
[[ -f $T/inside.passed ]] && PASSED=$((PASSED + $(<"$T/inside.passed")))
if ((rc != 0)); then
	bad "checks inside the system sandbox (exit $rc)"
fi

# ---------------------------------------------------------------- 5. nothing left behind
section "after the sandbox"
check "dpkg: socketley is not installed any more" eval '! deb_present'
check "host: no file, directory or link of either package is left" nothing_left "the test"
check "group socketley kept on purge (package policy; removed by this test if it created it)" eval 'getent group socketley >/dev/null'
section "done"
