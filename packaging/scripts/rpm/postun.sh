#!/bin/sh
# socketley .rpm %postun ($1: 0 = erase, 1+ = upgrade). Reload systemd when it
# runs; on upgrade restart the daemon if it was running (try-restart), which
# leaves the managed runtimes running; socketley.socket keeps listening, so no
# connection is refused meanwhile. The registry /var/lib/socketley and the
# group are kept on erase (RPM has no purge; remove them by hand); the runtime
# directory /run/socketley that socketley.socket created goes, unless a live
# socket is still in it (a daemon started by hand).
if [ "$1" -eq 0 ] && [ ! -S /run/socketley/socketley.sock ]; then
	rm -rf /run/socketley
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart socketley.service || :
	fi
fi
exit 0
