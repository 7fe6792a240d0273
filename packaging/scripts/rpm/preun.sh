#!/bin/sh
# socketley .rpm %preun ($1: 0 = erase, 1+ = upgrade). On erase: disable and
# stop the daemon (socketley.service only; managed runtimes keep running).
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable socketley.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl stop socketley.service || :
	fi
fi
exit 0
