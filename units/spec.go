package units

import (
	"fmt"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Spec is everything Start needs to create a unit. Zero values leave
// systemd's defaults in place unless noted. Properties: systemd.service(5),
// systemd.exec(5), systemd.unit(5).
type Spec struct {
	// Name is the runtime name; the unit is Name(Name). Letters, digits and
	// "-_.:" only.
	Name string
	// Description is the unit's Description=; "" = "socketley runtime NAME".
	Description string
	// Path and Args make ExecStart=: argv is Path followed by Args. The
	// command is never marked "-" (ignore failure), so a non-zero exit counts
	// as a failure and Restart= applies.
	Path string
	Args []string
	// Env is Environment=, "KEY=VALUE" entries.
	Env []string
	// WorkingDirectory is WorkingDirectory= (absolute path); "" = not set
	// (the manager's default: / for the system manager, $HOME for a user's).
	WorkingDirectory string
	// User is User= (system scope only); "" = not set (root, or the user of a
	// user manager). Start rejects it in the user scope.
	User string
	// Restart is Restart=: RestartNo, RestartOnFailure, RestartAlways (or
	// another systemd.service(5) value); "" = "no".
	Restart string
	// RestartSec is RestartSec=, set whenever Restart is: 0 restarts at once
	// (systemd's own default, 100 ms, is never used).
	RestartSec time.Duration
	// StartLimitBurst and StartLimitInterval are StartLimitBurst= and
	// StartLimitIntervalSec=: more than Burst starts (automatic restarts
	// included) within Interval leave the unit failed with Result
	// start-limit-hit, which ends a crash loop. Each is set only when > 0
	// (systemd's default is 5 starts in 10 s).
	StartLimitBurst    int
	StartLimitInterval time.Duration
	// StopTimeout is TimeoutStopSec=: how long a stop waits after SIGTERM
	// before SIGKILL; 0 = systemd's default (90 s).
	StopTimeout time.Duration
}

// validRestart reports whether s is a Restart= value of systemd.service(5).
func validRestart(s string) bool {
	switch s {
	case "", RestartNo, RestartOnFailure, RestartAlways,
		"on-success", "on-abnormal", "on-abort", "on-watchdog":
		return true
	}
	return false
}

// properties returns the StartTransientUnit properties for spec in scope.
// It validates spec; errors wrap ErrInvalid.
func properties(spec Spec, scope Scope) ([]sdbus.Property, error) {
	if !validRuntime(spec.Name) {
		return nil, fmt.Errorf("%w: runtime name %q: use letters, digits and -_.: (at most %d characters)",
			ErrInvalid, spec.Name, maxUnitName-len(Name("")))
	}
	if spec.Path == "" {
		return nil, fmt.Errorf("%w: no executable path", ErrInvalid)
	}
	if !validRestart(spec.Restart) {
		return nil, fmt.Errorf("%w: Restart=%s is not a systemd restart policy", ErrInvalid, spec.Restart)
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalid, kv)
		}
	}
	if spec.User != "" && scope != System {
		return nil, fmt.Errorf("%w: User=%s needs the system manager (scope %s)", ErrInvalid, spec.User, scope)
	}
	if spec.RestartSec < 0 || spec.StartLimitInterval < 0 || spec.StopTimeout < 0 || spec.StartLimitBurst < 0 {
		return nil, fmt.Errorf("%w: negative duration or burst", ErrInvalid)
	}

	desc := spec.Description
	if desc == "" {
		desc = "socketley runtime " + spec.Name
	}
	argv := append([]string{spec.Path}, spec.Args...)
	props := []sdbus.Property{
		sdbus.PropDescription(desc),
		// false: not "-"-prefixed; true would turn every failure into success.
		sdbus.PropExecStart(argv, false),
		// exec: the start job fails when the binary cannot be executed
		// (Result exit-code, status 203/EXEC) instead of succeeding at fork.
		prop("Type", "exec"),
		// inactive (the default, stated for clarity): a failed unit stays
		// loaded with its exit status until ResetFailed.
		prop("CollectMode", "inactive"),
	}
	if spec.Env != nil {
		props = append(props, prop("Environment", append([]string(nil), spec.Env...)))
	}
	if spec.WorkingDirectory != "" {
		props = append(props, prop("WorkingDirectory", spec.WorkingDirectory))
	}
	if spec.User != "" {
		props = append(props, prop("User", spec.User))
	}
	if spec.Restart != "" {
		props = append(props, prop("Restart", spec.Restart))
	}
	if spec.Restart != "" || spec.RestartSec > 0 {
		props = append(props, prop("RestartUSec", usec(spec.RestartSec)))
	}
	if spec.StartLimitBurst > 0 {
		props = append(props, prop("StartLimitBurst", uint32(spec.StartLimitBurst)))
	}
	if spec.StartLimitInterval > 0 {
		props = append(props, prop("StartLimitIntervalUSec", usec(spec.StartLimitInterval)))
	}
	if spec.StopTimeout > 0 {
		props = append(props, prop("TimeoutStopUSec", usec(spec.StopTimeout)))
	}
	return props, nil
}

func prop(name string, v any) sdbus.Property {
	return sdbus.Property{Name: name, Value: godbus.MakeVariant(v)}
}

func usec(d time.Duration) uint64 {
	return uint64(d / time.Microsecond)
}
