#!/bin/sh
# socketley .rpm %post ($1: 1 = install, 2+ = upgrade). POSIX sh; works with
# and without a running systemd. Creates the group, applies the preset on the
# first install (RPM convention: the distribution's presets decide whether the
# daemon is enabled; without a preset it is), reloads systemd when it runs.
# The daemon is (re)started by %postun on upgrade (never here, except once on
# an upgrade from a version without socketley.socket, to hand the socket over).
systemd_running() { [ -d /run/systemd/system ]; }

if command -v systemd-sysusers >/dev/null 2>&1 && [ -f /usr/lib/sysusers.d/socketley.conf ]; then
	systemd-sysusers socketley.conf || :
elif ! getent group socketley >/dev/null 2>&1; then
	groupadd --system socketley || :
fi
if [ "$1" -eq 1 ]; then
	systemctl --no-reload preset socketley.socket socketley.service >/dev/null 2>&1 || :
elif systemctl --quiet is-enabled socketley.service 2>/dev/null && ! systemctl --quiet is-enabled socketley.socket 2>/dev/null; then
	# upgrade from a version without socketley.socket
	systemctl --no-reload enable socketley.socket >/dev/null 2>&1 || :
fi
if systemd_running; then
	systemctl daemon-reload || :
	if [ "$1" -ge 2 ] && ! systemctl --quiet is-active socketley.socket && systemctl --quiet is-active socketley.service; then
		# upgrade from a version whose daemon bound the socket itself: stop it
		# (it removes its socket), let systemd take the socket, start it again
		systemctl stop socketley.service || :
		systemctl start socketley.socket socketley.service || :
	fi
fi
exit 0
