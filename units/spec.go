package units

import (
	"fmt"
	"slices"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/internal/wire"
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
	// Path and Args make the command: argv is Path followed by Args, passed
	// to the program literally. It is sent as ExecStartEx= with the
	// no-env-expand flag (the ":" prefix of systemd.service(5), systemd ≥
	// 243), so systemd expands no "$VAR" or "${VAR}" in it; specifiers ("%n")
	// are never expanded in a transient unit's command. The command is never
	// marked "-" (ignore failure), so a non-zero exit counts as a failure and
	// Restart= applies.
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
	// Restart is Restart= (any systemd.service(5) value); "" = "no".
	Restart wire.RestartPolicy
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
	// NoStartLimit sets StartLimitIntervalSec=0: no start rate limit at all
	// (automatic restarts are never refused). It excludes the two fields
	// above.
	NoStartLimit bool
	// RestartSteps and RestartMaxDelay are RestartSteps= and
	// RestartMaxDelaySec= (systemd ≥ 254, NativeBackoffVersion): the delay
	// of the n-th automatic restart grows from RestartSec to RestartMaxDelay
	// in RestartSteps steps (systemd 254 measured: RestartSec ×
	// (RestartMaxDelay/RestartSec)^(n/RestartSteps)), so RestartSec must be
	// > 0 and RestartMaxDelay larger. Set only when RestartSteps > 0; an
	// older manager refuses the unit (Start fails).
	RestartSteps    int
	RestartMaxDelay time.Duration
	// StopTimeout is TimeoutStopSec=: how long a stop waits after SIGTERM
	// before it sends SIGKILL to every process left in the unit's cgroup
	// (KillMode=control-group and SendSIGKILL=yes are set explicitly);
	// 0 = systemd's default (90 s). StopWait says how long a Stop may take.
	StopTimeout time.Duration
	// Credentials are LoadCredential= (systemd ≥ 247, also in a user
	// manager): at every start, before the program runs, systemd copies
	// each file into $CREDENTIALS_DIRECTORY/ID, readable only by the unit's
	// user. The manager reads Path with its own rights (root for the system
	// manager); a file it cannot read fails the start (status 243/CREDENTIALS).
	Credentials []Credential
	// EnvFiles are EnvironmentFile= (absolute paths): at every start the
	// manager reads each file, with its own rights (root for the system
	// manager), and adds its KEY=VALUE lines to the environment, after
	// Env (a key in both takes the file's value); a missing or unreadable
	// file fails the start (the "-" prefix, ignore-errors, is never set).
	EnvFiles []string
	// Harden adds the sandboxing preset (hardenProperties, docs/harden.md),
	// with WorkingDirectory writable.
	Harden bool
	// Limits are the unit's resource limits (zero fields: systemd's
	// defaults): MemoryMax=, MemoryHigh=, CPUQuota=, CPUWeight=, TasksMax=
	// and LimitNOFILE= (soft and hard). See limitProperties.
	Limits wire.Limits
	// Properties are the -p/--property settings (canonical KEY=VALUE of
	// wire.PropertyRules). They come after the preset of Harden, which they
	// override key by key (--harden -p MemoryDenyWriteExecute=no).
	Properties []string
}

// Credential is one LoadCredential= entry, D-Bus signature (ss): the
// credential's ID (its file name in $CREDENTIALS_DIRECTORY) and the
// absolute path of the file it is read from.
type Credential struct {
	ID   string
	Path string
}

// envFile is one EnvironmentFiles entry, D-Bus signature (sb): the path
// and whether a missing file is ignored (systemd's "-" prefix).
type envFile struct {
	Path         string
	IgnoreErrors bool
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
	if !spec.Restart.Systemd() {
		return nil, fmt.Errorf("%w: Restart=%s is not a systemd restart policy", ErrInvalid, spec.Restart)
	}
	for _, kv := range spec.Env {
		if err := wire.CheckEnvEntry(kv); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if spec.User != "" && scope != System {
		return nil, fmt.Errorf("%w: User=%s needs the system manager (scope %s)", ErrInvalid, spec.User, scope)
	}
	if spec.RestartSec < 0 || spec.StartLimitInterval < 0 || spec.StopTimeout < 0 || spec.StartLimitBurst < 0 ||
		spec.RestartSteps < 0 || spec.RestartMaxDelay < 0 {
		return nil, fmt.Errorf("%w: negative duration, burst or steps", ErrInvalid)
	}
	if spec.NoStartLimit && (spec.StartLimitBurst > 0 || spec.StartLimitInterval > 0) {
		return nil, fmt.Errorf("%w: NoStartLimit with a start limit", ErrInvalid)
	}
	if spec.RestartSteps > 0 && (spec.RestartSec < time.Microsecond || spec.RestartMaxDelay <= spec.RestartSec) {
		return nil, fmt.Errorf("%w: RestartSteps=%d needs 0 < RestartSec (%s) < RestartMaxDelaySec (%s)",
			ErrInvalid, spec.RestartSteps, spec.RestartSec, spec.RestartMaxDelay)
	}

	for _, c := range spec.Credentials {
		if err := wire.CheckCredentialID(c.ID); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if !strings.HasPrefix(c.Path, "/") {
			return nil, fmt.Errorf("%w: credential %s: path %q is not absolute", ErrInvalid, c.ID, c.Path)
		}
	}
	for _, p := range spec.EnvFiles {
		if err := wire.CheckEnvFile(p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}

	extra, err := extraProperties(spec.Properties)
	if err != nil {
		return nil, err
	}
	desc := spec.Description
	for _, p := range extra {
		if p.Name == "Description" {
			desc = p.Value.Value().(string)
		}
	}
	if desc == "" {
		desc = "socketley runtime " + spec.Name
	}
	argv := append([]string{spec.Path}, spec.Args...)
	props := []sdbus.Property{
		sdbus.PropDescription(desc),
		execStart(argv),
		// exec: the start job fails when the binary cannot be executed
		// (Result exit-code, status 203/EXEC) instead of succeeding at fork.
		prop("Type", "exec"),
		// inactive (the default, stated for clarity): a failed unit stays
		// loaded with its exit status until ResetFailed.
		prop("CollectMode", "inactive"),
		// The output of a process that exits at once may reach journald
		// after the process is gone, when journald can no longer tell its
		// unit from its cgroup (_SYSTEMD_UNIT and _SYSTEMD_USER_UNIT are
		// then missing); the identifier comes with the stream itself, so
		// SYSLOG_IDENTIFIER=socketley-NAME finds every line.
		prop("SyslogIdentifier", SyslogIdentifier(spec.Name)),
	}
	if spec.Env != nil {
		props = append(props, prop("Environment", append([]string(nil), spec.Env...)))
	}
	if len(spec.EnvFiles) > 0 {
		files := make([]envFile, 0, len(spec.EnvFiles))
		for _, p := range spec.EnvFiles {
			files = append(files, envFile{Path: p})
		}
		props = append(props, prop("EnvironmentFiles", files))
	}
	if spec.WorkingDirectory != "" {
		props = append(props, prop("WorkingDirectory", spec.WorkingDirectory))
	}
	if spec.User != "" {
		props = append(props, prop("User", spec.User))
	}
	if spec.Restart != "" {
		props = append(props, prop("Restart", string(spec.Restart)))
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
	if spec.NoStartLimit {
		props = append(props, prop("StartLimitIntervalUSec", uint64(0)))
	}
	if spec.RestartSteps > 0 {
		props = append(props, prop("RestartSteps", uint32(spec.RestartSteps)),
			prop("RestartMaxDelayUSec", usec(spec.RestartMaxDelay)))
	}
	if spec.StopTimeout > 0 {
		props = append(props, prop("TimeoutStopUSec", usec(spec.StopTimeout)))
	}
	if len(spec.Credentials) > 0 {
		props = append(props, prop("LoadCredential", append([]Credential(nil), spec.Credentials...)))
	}
	if spec.Harden {
		for _, p := range hardenProperties(spec.WorkingDirectory, scope) {
			if !slices.ContainsFunc(extra, func(x sdbus.Property) bool { return x.Name == p.Name }) {
				props = append(props, p)
			}
		}
	}
	for _, p := range extra {
		if p.Name != "Description" {
			props = append(props, p)
		}
	}
	props = append(props, limitProperties(spec.Limits)...)
	if spec.Limits.NOFILE != 0 {
		// A process's rlimit: set at exec, never on a running unit
		// (SetLimits leaves it out).
		props = append(props, prop("LimitNOFILE", spec.Limits.NOFILE), prop("LimitNOFILESoft", spec.Limits.NOFILE))
	}
	// Accounting on every unit, so that systemd keeps (and systemctl
	// status shows) memory, CPU and tasks where the controllers exist.
	props = append(props, prop("MemoryAccounting", true), prop("CPUAccounting", true), prop("TasksAccounting", true))
	// systemd's defaults, stated so that a stop always ends: SIGTERM to
	// every process of the cgroup, SIGKILL to what is left after the stop
	// timeout.
	props = append(props, prop("KillMode", "control-group"), prop("SendSIGKILL", true))
	return props, nil
}

// limitProperties returns the cgroup limits of l as unit properties, D-Bus
// signature t each (org.freedesktop.systemd1(5)): MemoryMax and MemoryHigh
// in bytes, CPUQuotaPerSecUSec in µs of CPU time per second (1% of one CPU
// is 10 ms), CPUWeight, TasksMax; infinity is UINT64_MAX, as systemd
// encodes it. These are the limits systemd changes on a running unit
// (SetLimits); LimitNOFILE is not among them.
func limitProperties(l wire.Limits) []sdbus.Property {
	var props []sdbus.Property
	if l.MemoryMax != 0 {
		props = append(props, prop("MemoryMax", l.MemoryMax))
	}
	if l.MemoryHigh != 0 {
		props = append(props, prop("MemoryHigh", l.MemoryHigh))
	}
	if l.CPUQuota != 0 {
		props = append(props, prop("CPUQuotaPerSecUSec", l.CPUQuota*uint64(10*time.Millisecond/time.Microsecond)))
	}
	if l.CPUWeight != 0 {
		props = append(props, prop("CPUWeight", l.CPUWeight))
	}
	if l.TasksMax != 0 {
		props = append(props, prop("TasksMax", l.TasksMax))
	}
	return props
}

// execCommandEx is one command of ExecStartEx=, D-Bus signature (sasas):
// path, argv, flags (systemd.service(5): "ignore-failure", "no-env-expand", …).
type execCommandEx struct {
	Path  string
	Argv  []string
	Flags []string
}

// execStart returns ExecStartEx= for argv, with no-env-expand: systemd then
// passes "$HOME", "${X}" and "$$" to the program as they are (plain
// ExecStart= would expand them). No "ignore-failure" flag: that would turn
// every failure into success.
func execStart(argv []string) sdbus.Property {
	return prop("ExecStartEx", []execCommandEx{{Path: argv[0], Argv: argv, Flags: []string{"no-env-expand"}}})
}

// StopWait is how long a Stop of a unit whose Spec had stopTimeout (0 =
// systemd's 90 s) can take in the worst case: the stop timeout after
// SIGTERM, then as long again after SIGKILL (systemd waits for the cgroup
// to empty, e.g. for a process in uninterruptible sleep), plus a margin
// for a busy manager. Give Stop a deadline at least this long, so that it
// returns when the processes are gone rather than while they are stopping.
func StopWait(stopTimeout time.Duration) time.Duration {
	if stopTimeout <= 0 {
		stopTimeout = 90 * time.Second
	}
	return 2*stopTimeout + 10*time.Second
}

func prop(name string, v any) sdbus.Property {
	return sdbus.Property{Name: name, Value: godbus.MakeVariant(v)}
}

func usec(d time.Duration) uint64 {
	return uint64(d / time.Microsecond)
}

// SyslogIdentifier is the SYSLOG_IDENTIFIER= of the output of the runtime
// name's unit: socketley-NAME.
func SyslogIdentifier(name string) string { return wire.SyslogIdentifier(name) }
