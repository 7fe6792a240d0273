// Package units is socketley's only link to systemd: it starts, stops and
// watches the transient units socketley-NAME.service on the system manager or
// on a user manager, over D-Bus.
//
// A [Conn] (from [Dial]) runs jobs and queries with a deadline on every call
// (the caller's, or a default: 10 s for jobs, 3 s for queries). A [Watch] (from
// [Conn.Subscribe]) keeps a live cache of every socketley-* unit, fed by
// systemd's signals, so that a health check needs no D-Bus call per unit;
// [Watch.Refresh] reads one unit into it at once, after a job. Everything
// goes over the bus, except the Watch's initial fill, which reads the units
// over systemd's private socket (as systemctl does) when that socket belongs
// to the same systemd, because that is several times cheaper.
//
// Errors are wrapped with the operation and the unit ("start
// socketley-web.service: …"). D-Bus error names are mapped to [ErrNoSuchUnit],
// [ErrUnitExists] and [ErrNoBus]; a job that does not end in "done" is a
// [*JobError] carrying systemd's own account of the failure. The package never
// logs.
//
// It needs systemd 243 or later (Type=exec, and ExecStartEx= with the
// no-env-expand flag, which passes arguments literally); RestartSteps= and
// RestartMaxDelaySec= need 254 ([NativeBackoffVersion], [Conn.ManagerVersion]).
// Tested with 252 (Debian 12) and 254 (bookworm-backports).
//
// The unit properties are documented in systemd.unit(5), systemd.service(5)
// and org.freedesktop.systemd1(5):
// https://www.freedesktop.org/software/systemd/man/latest/org.freedesktop.systemd1.html
package units
