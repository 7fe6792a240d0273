package units

import (
	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// addressFamilies is RestrictAddressFamilies= and systemCallFilter is
// SystemCallFilter=, D-Bus signature (bas) each: whether the list is an
// allow-list, and the list.
type addressFamilies struct {
	Allow    bool
	Families []string
}

type systemCallFilter struct {
	Allow bool
	Calls []string
}

// epermErrno is SystemCallErrorNumber=EPERM: a system call outside the
// filter fails with EPERM instead of killing the process (Go's runtime
// tries setrlimit and sched_setaffinity, and copes with a refusal).
const epermErrno = int32(1)

// hardenProperties returns the sandboxing preset of add --harden as unit
// properties (names and D-Bus types of org.freedesktop.systemd1(5),
// systemd 252). docs/harden.md has the same table with the reason for each
// entry; keep the two in step. workDir, when given, stays writable under
// ProtectSystem=strict. ProtectKernelTunables= and ProtectKernelLogs= are
// the system manager's only: a user manager can set them up only inside a
// user namespace, and fails the start with 226/NAMESPACE where it cannot
// (the test sandbox's user manager does); a user's unit has no capability
// to write /proc/sys or read /dev/kmsg anyway.
func hardenProperties(workDir string, scope Scope) []sdbus.Property {
	props := []sdbus.Property{
		prop("NoNewPrivileges", true),
		prop("ProtectSystem", "strict"),
		prop("ProtectHome", "read-only"),
		prop("PrivateTmp", true),
		prop("PrivateDevices", true),
		prop("ProtectKernelModules", true),
		prop("ProtectControlGroups", true),
		prop("ProtectClock", true),
		prop("ProtectHostname", true),
		prop("ProtectProc", "invisible"),
		prop("ProcSubset", "pid"),
		prop("RestrictSUIDSGID", true),
		prop("LockPersonality", true),
		// The namespace types a process may create: none (systemd's
		// RestrictNamespaces=yes is the empty set, 0).
		prop("RestrictNamespaces", uint64(0)),
		prop("RestrictRealtime", true),
		prop("MemoryDenyWriteExecute", true),
		prop("RemoveIPC", true),
		prop("KeyringMode", "private"),
		prop("SystemCallArchitectures", []string{"native"}),
		// AF_UNIX: the program attaches to the daemon's control socket
		// (and logs through journald's); AF_INET/AF_INET6: it serves.
		prop("RestrictAddressFamilies", addressFamilies{Allow: true, Families: []string{"AF_UNIX", "AF_INET", "AF_INET6"}}),
		prop("SystemCallFilter", systemCallFilter{Allow: true, Calls: []string{"@system-service"}}),
		prop("SystemCallFilter", systemCallFilter{Allow: false, Calls: []string{"@privileged", "@resources"}}),
		prop("SystemCallErrorNumber", epermErrno),
		prop("CapabilityBoundingSet", uint64(0)),
		prop("AmbientCapabilities", uint64(0)),
		prop("UMask", uint32(0o077)),
	}
	if scope == System {
		props = append(props, prop("ProtectKernelTunables", true), prop("ProtectKernelLogs", true))
	} else {
		// The user's own uid only (a user manager implies it for the
		// sandboxing options anyway).
		props = append(props, prop("PrivateUsers", true))
	}
	if workDir != "" {
		props = append(props, prop("ReadWritePaths", []string{workDir}))
	}
	return props
}
