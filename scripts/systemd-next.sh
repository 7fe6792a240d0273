#!/usr/bin/env bash
# systemd-next.sh - fetch a newer systemd manager than the host's (Debian 12 ships 252) for
# tests, without installing it: the manager binary and its private libraries are unpacked
# into a cache directory and run by scripts/systemd-sandbox.sh in place of /lib/systemd/systemd.
#
# Usage: scripts/systemd-next.sh [-q]
#   Prints two shell assignments for the sandbox, e.g.
#     SDH_SYSTEMD=/var/cache/socketley-test/systemd-next/root/lib/systemd/systemd
#     SDH_SYSTEMD_LIBDIR=/var/cache/socketley-test/systemd-next/root/usr/lib/x86_64-linux-gnu/systemd
#   so that   eval "$(scripts/systemd-next.sh)"; export SDH_SYSTEMD SDH_SYSTEMD_LIBDIR
#   makes the next sandbox run that manager. Exit status 1 (with the reason on stderr) when it
#   cannot be fetched; -q: no progress messages.
#
# Source: Debian's bookworm-backports suite (systemd 254 at the time of writing), through apt
# with a private source list, list and cache directory: the host's apt configuration and
# package state are not changed, and apt checks the archive signature with the Debian archive
# keyring as for any install. Needs network access to deb.debian.org the first time; later
# runs reuse the cache (SYSTEMD_NEXT_CACHE, default /var/cache/socketley-test/systemd-next).
# Needs root (apt-get download as root, like the rest of the test harness).
set -euo pipefail

quiet=0
[[ ${1:-} == -q ]] && quiet=1
say() { ((quiet)) || printf 'systemd-next: %s\n' "$*" >&2; }
die() { printf 'systemd-next: %s\n' "$*" >&2; exit 1; }

D=${SYSTEMD_NEXT_CACHE:-/var/cache/socketley-test/systemd-next}
SUITE=${SYSTEMD_NEXT_SUITE:-bookworm-backports}
root=$D/root
bin=$root/lib/systemd/systemd
libdir=$root/usr/lib/x86_64-linux-gnu/systemd

if [[ ! -x $bin ]]; then
	[[ $(dpkg --print-architecture) == amd64 ]] || die "only amd64 is supported (this is $(dpkg --print-architecture))"
	mkdir -p "$D/lists/partial" "$D/cache/archives/partial" "$D/dl"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main" >"$D/sources.list"
	opts=(-q -o "Dir::Etc::SourceList=$D/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache" -o APT::Get::List-Cleanup=0
		-o APT::Sandbox::User=root)
	say "fetching systemd from $SUITE into $D"
	apt-get "${opts[@]}" update >"$D/apt.log" 2>&1 || die "apt-get update of $SUITE failed (network?): see $D/apt.log"
	rm -f "$D"/dl/*.deb
	(cd "$D/dl" && apt-get "${opts[@]}" download "systemd/$SUITE" "libsystemd-shared/$SUITE") >>"$D/apt.log" 2>&1 ||
		die "apt-get download failed: see $D/apt.log"
	rm -rf "$root.tmp"
	for f in "$D"/dl/*.deb; do dpkg-deb -x "$f" "$root.tmp"; done
	rm -rf "$root"
	mv "$root.tmp" "$root"
fi
v=$(LD_LIBRARY_PATH=$libdir "$bin" --version 2>&1 | head -n1) || die "$bin does not run: $v"
say "$v"
printf 'SDH_SYSTEMD=%q\nSDH_SYSTEMD_LIBDIR=%q\n' "$bin" "$libdir"
