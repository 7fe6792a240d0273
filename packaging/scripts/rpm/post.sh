#!/bin/sh
# socketley .rpm %post ($1: 1 = install, 2+ = upgrade). POSIX sh; works with
# and without a running systemd. Creates the group, applies the preset on the
# first install (RPM convention: the distribution's presets decide whether the
# daemon is enabled; without a preset it is), reloads systemd when it runs.
# The daemon is (re)started by %postun on upgrade, never here.
systemd_running() { [ -d /run/systemd/system ]; }

if command -v systemd-sysusers >/dev/null 2>&1 && [ -f /usr/lib/sysusers.d/socketley.conf ]; then
	systemd-sysusers socketley.conf || :
elif ! getent group socketley >/dev/null 2>&1; then
	groupadd --system socketley || :
fi
if [ "$1" -eq 1 ]; then
	systemctl --no-reload preset socketley.service >/dev/null 2>&1 || :
fi
if systemd_running; then
	systemctl daemon-reload || :
fi
exit 0
