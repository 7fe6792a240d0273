// Package manager is the socketley daemon: the registry of managed and
// attached runtimes, its persistence, the control socket, the boot reconcile
// and the 2 s health tick.
//
// Processes belong to systemd: every managed runtime NAME runs as the
// transient unit socketley-NAME.service, which systemd forks, restarts and
// stops. The daemon never forks a managed binary; it keeps what the user asked
// for (desired state, persisted) and what it observed (pid, attach, restarts,
// kept in memory), and reconciles the two.
//
// The daemon talks to systemd only through the [Systemd] interface, which the
// units package satisfies and tests fake.
package manager
