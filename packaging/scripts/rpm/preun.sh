#!/bin/sh
# socketley .rpm %preun ($1: 0 = erase, 1+ = upgrade). On erase: disable and
# stop the daemon and its control socket (socketley.service and .socket only; managed runtimes keep running).
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable socketley.socket socketley.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl stop socketley.socket socketley.service || :
	fi
fi
exit 0
