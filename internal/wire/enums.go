package wire

import "strings"

// Status is a runtime's state as ls, ps and show report it (the STATUS
// column, "status" in JSON). Decoding accepts any value, so that a client
// shows a state a newer daemon added; [Status.Known] tells them apart.
type Status string

// Runtime states shown in STATUS.
const (
	StatusCreated    Status = "created" // registered, never started
	StatusRunning    Status = "running"
	StatusStarting   Status = "starting"
	StatusUnhealthy  Status = "unhealthy"
	StatusRestarting Status = "restarting"
	StatusFailed     Status = "failed"
	StatusCrashLoop  Status = "crash-loop"
	StatusStopping   Status = "stopping" // its unit is being stopped
	StatusStopped    Status = "stopped"
	StatusRemoving   Status = "removing" // remove recorded but not finished (see docs/security.md)
	StatusOrphan     Status = "orphan"
	StatusUnknown    Status = "unknown"
)

// Statuses lists every status in the order the documentation gives them.
var Statuses = []Status{StatusCreated, StatusStarting, StatusRunning, StatusUnhealthy,
	StatusRestarting, StatusCrashLoop, StatusFailed, StatusStopping, StatusStopped, StatusRemoving,
	StatusOrphan, StatusUnknown}

// String returns the status as shown in STATUS.
func (s Status) String() string { return string(s) }

// Known reports whether s is one of the Status constants.
func (s Status) Known() bool { return oneOf(Statuses, s) }

// Down reports whether s means no process of the runtime runs by its
// daemon's choice or failure: failed, crash-loop, stopped or created.
func (s Status) Down() bool {
	return s == StatusFailed || s == StatusCrashLoop || s == StatusStopped || s == StatusCreated
}

// Mode is how a runtime is run ("mode" in JSON, the MODE column).
type Mode string

// Modes of a runtime.
const (
	// ModeUnit is a managed runtime: socketley runs it as a systemd unit.
	ModeUnit Mode = "unit"
	// ModeAttach is a process that attached itself; socketley did not start it.
	ModeAttach Mode = "attach"
	// ModeOrphan is a socketley-* unit with no registry entry.
	ModeOrphan Mode = "orphan"
)

// String returns the mode as shown in MODE.
func (m Mode) String() string { return string(m) }

// ModeOf returns the mode of a runtime from its managed and orphan flags.
func ModeOf(managed, orphan bool) Mode {
	switch {
	case orphan:
		return ModeOrphan
	case managed:
		return ModeUnit
	default:
		return ModeAttach
	}
}

// RestartPolicy is a managed runtime's restart policy (add --restart),
// passed to systemd as Restart= (systemd.service(5)). The zero value means
// "the default" in a request ([DefaultRestart]) and "not set" elsewhere.
type RestartPolicy string

// Restart policies socketley accepts.
const (
	// RestartOnFailure restarts after a failure (non-zero exit, signal,
	// timeout, watchdog), not after a clean exit. The default.
	RestartOnFailure RestartPolicy = "on-failure"
	// RestartAlways restarts after every exit, clean or not.
	RestartAlways RestartPolicy = "always"
	// RestartNo never restarts automatically.
	RestartNo RestartPolicy = "no"
)

// Other Restart= values of systemd.service(5). socketley does not offer
// them on add, but a unit may carry them and units reads them.
const (
	RestartOnSuccess  RestartPolicy = "on-success"
	RestartOnAbnormal RestartPolicy = "on-abnormal"
	RestartOnAbort    RestartPolicy = "on-abort"
	RestartOnWatchdog RestartPolicy = "on-watchdog"
)

// Systemd reports whether p is a Restart= value systemd accepts ("" counts:
// the property is then not set, which systemd reads as "no").
func (p RestartPolicy) Systemd() bool {
	return p == "" || oneOf(RestartPolicies, p) ||
		oneOf([]RestartPolicy{RestartOnSuccess, RestartOnAbnormal, RestartOnAbort, RestartOnWatchdog}, p)
}

// DefaultRestart is the policy of a runtime added without --restart.
const DefaultRestart = RestartOnFailure

// RestartPolicies lists the policies add --restart accepts.
var RestartPolicies = []RestartPolicy{RestartOnFailure, RestartAlways, RestartNo}

// String returns the policy as systemd spells it.
func (p RestartPolicy) String() string { return string(p) }

// Restarts reports whether the policy restarts a failed run.
func (p RestartPolicy) Restarts() bool { return p == RestartOnFailure || p == RestartAlways }

// ParseRestartPolicy checks a --restart value; "" gives [DefaultRestart].
// The error (class invalid) lists the accepted values. It is the one
// check of the rule: AddSpec.Check calls it, for the CLI, the daemon and
// the legacy parser's requests alike.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	if s == "" {
		return DefaultRestart, nil
	}
	p := RestartPolicy(s)
	if !oneOf(RestartPolicies, p) {
		return "", Errorf(ErrInvalid, "--restart %q: use %s", s, joinValues(RestartPolicies))
	}
	return p, nil
}

func oneOf[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func joinValues[T ~string](list []T) string {
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = string(v)
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}
