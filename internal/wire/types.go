package wire

import (
	"slices"
	"strings"
	"time"
)

// NameRule describes valid runtime names.
const NameRule = "names are 1-64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"

// CheckName checks a runtime name: 1–64 characters of [A-Za-z0-9._-],
// starting with a letter or digit, so that it maps to a valid unit name
// socketley-NAME.service. The error (class invalid) says what is wrong and
// states the rule.
func CheckName(name string) error {
	if name == "" {
		return Errorf(ErrInvalid, "empty runtime name; %s", NameRule)
	}
	if len(name) > 64 {
		return Errorf(ErrInvalid, "runtime name %q is %d characters long; %s", name, len(name), NameRule)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || r == '.' || r == '_' || r == '-'
		}
		if !ok {
			return Errorf(ErrInvalid, "invalid runtime name %q; %s", name, NameRule)
		}
	}
	return nil
}

// UnitName returns the systemd unit of the runtime name:
// socketley-NAME.service. It does not check name.
func UnitName(name string) string { return "socketley-" + name + ".service" }

// SyslogIdentifier returns the SyslogIdentifier= of the runtime's unit,
// socketley-NAME, which tags every line the program writes in the journal.
func SyslogIdentifier(name string) string { return "socketley-" + name }

// Commands understood by the daemon, in both request forms.
const (
	CmdAdd     = "add"
	CmdUpgrade = "upgrade"
	CmdSet     = "set"
	CmdStart   = "start"
	CmdStop    = "stop"
	CmdRestart = "restart"
	CmdRemove  = "remove"
	CmdList    = "ls"
	CmdPS      = "ps"
	CmdShow    = "show"
	CmdAttach  = "attach"
	CmdStats   = "stats"
	CmdVersion = "version"
)

// Request is the JSON request form, sent as one line starting with '{'.
type Request struct {
	// Cmd is one of the Cmd* constants.
	Cmd string `json:"cmd"`
	// Names are runtime names or glob patterns (start, stop, restart, remove, show).
	Names []string `json:"names,omitempty"`
	// Add describes the runtime for CmdAdd.
	Add *AddSpec `json:"add,omitempty"`
	// Set describes the change for CmdSet (JSON form only).
	Set *SetSpec `json:"set,omitempty"`
	// Attach describes the attach for CmdAttach.
	Attach *AttachSpec `json:"attach,omitempty"`
	// Wait makes add/start/restart return only once the runtime is running.
	Wait bool `json:"wait,omitempty"`
	// Timeout bounds Wait; zero means the daemon's default (10 s).
	Timeout Duration `json:"timeout,omitempty"`
	// Version is the client's version, so the daemon can log a mismatch.
	Version string `json:"version,omitempty"`
	// Path is the new executable of CmdUpgrade (absolute).
	Path string `json:"path,omitempty"`
	// Follow keeps a CmdEvents connection open: after the reply, each new
	// event comes as one more reply frame (docs/protocol.md).
	Follow bool `json:"follow,omitempty"`
	// Since makes CmdEvents list the events from this time on, read back
	// from the journal when the daemon's memory does not reach that far.
	Since time.Time `json:"since,omitzero"`
	// Mine makes CmdList list only the caller's own managed runtimes (for
	// root, every managed runtime): no attached processes, no orphan units.
	// The daemon picks them by the peer credentials it sees, which a client
	// reaching it over ssh (socketley -H) cannot know.
	Mine bool `json:"mine,omitempty"`
	// Check makes CmdAdd only check Add as add would (the file, the
	// settings, the listen addresses, the caller's rights, the name) and
	// change nothing. The name may also be that of a runtime the caller
	// could replace (apply checks creates and replacements alike): the
	// addresses that runtime listens on are not probed.
	Check bool `json:"check,omitempty"`
	// Replace makes CmdAdd change the managed runtime of that name into
	// Add in place, for its owner or root: its restart count, history and
	// events stay (socketley apply's replace). It is stopped and started
	// again under the new settings (left stopped without Add.Start); a new
	// unit systemd refuses to start gives the old settings back. Wait and
	// Timeout do not apply.
	Replace bool `json:"replace,omitempty"`
}

// Credential is one secret of a managed runtime (add --credential ID:PATH,
// systemd's LoadCredential=): systemd copies the file at Path into
// $CREDENTIALS_DIRECTORY/ID at every start of the unit.
type Credential struct {
	ID   string `json:"id"`
	Path string `json:"path"` // absolute; the client resolves it against its cwd
}

// AddSpec is what a user asks for when registering a managed runtime.
type AddSpec struct {
	Name    string        `json:"name"`
	Path    string        `json:"path"` // absolute; the client resolves it against its cwd
	Args    []string      `json:"args,omitempty"`
	Env     []string      `json:"env,omitempty"` // K=V
	WorkDir string        `json:"workdir,omitempty"`
	Restart RestartPolicy `json:"restart,omitempty"` // "" = DefaultRestart

	// Credentials are the unit's LoadCredential= (add --credential): files
	// systemd copies into $CREDENTIALS_DIRECTORY at every start.
	Credentials []Credential `json:"credentials,omitempty"`
	// EnvFiles are the unit's EnvironmentFile= (add --env-file): absolute
	// paths of KEY=VALUE files systemd reads at every start of the unit.
	EnvFiles []string `json:"env_files,omitempty"`
	// Harden applies socketley's sandboxing preset to the unit (add
	// --harden; docs/harden.md lists every property).
	Harden bool `json:"harden,omitempty"`
	// RestartSec is systemd's RestartSec= for a restart after a run longer
	// than RestartReset: 0 (the default) restarts at once.
	RestartSec Duration `json:"restart_sec,omitempty"`
	// RestartMaxDelay caps the crash backoff (0 = the daemon's default, 30 s).
	RestartMaxDelay Duration `json:"restart_max_delay,omitempty"`
	// RestartReset is how long a run must last for the backoff to start
	// over (0 = the daemon's default, 10 s).
	RestartReset Duration `json:"restart_reset,omitempty"`
	// MaxRestarts is how many consecutive failed runs are restarted before
	// the daemon gives up (0 = never give up).
	MaxRestarts int    `json:"max_restarts,omitempty"`
	Start       bool   `json:"start,omitempty"`
	RunAs       string `json:"run_as,omitempty"` // system mode, root only
	// ExpectAttach marks the runtime as one that attaches (add --attach).
	ExpectAttach  bool     `json:"expect_attach,omitempty"`
	AttachTimeout Duration `json:"attach_timeout,omitempty"`
	// HealthFails is the number of consecutive unhealthy ticks before a restart;
	// nil means the default (3), 0 disables.
	HealthFails *int `json:"health_fails,omitempty"`
	// StopTimeout is the unit's TimeoutStopSec=: how long a stop waits
	// after SIGTERM before SIGKILL (0 = the daemon's default, 10 s).
	StopTimeout Duration `json:"stop_timeout,omitempty"`
	// Listen are the addresses (PORT, IPv4:PORT, [IPv6]:PORT) of the
	// runtime's socket unit (add --listen): systemd holds them and passes
	// them to the program (LISTEN_FDS).
	Listen []string `json:"listen,omitempty"`
	// Limits are the unit's resource limits (add --memory-max, --cpu-quota
	// …), in systemd's syntax; Check puts them in canonical form and
	// ParseLimits gives their values.
	Limits LimitArgs `json:"limits,omitzero"`
	// Properties are other unit settings (add -p/--property), KEY=VALUE
	// from the allow-list of PropertyRules; Check puts them in canonical
	// form, sorted by key.
	Properties []string `json:"properties,omitempty"`
}

// SetSpec is a change of a registered managed runtime (socketley set).
type SetSpec struct {
	// Name is one runtime name (no pattern).
	Name string `json:"name"`
	// Limits are the limits to change, in systemd's syntax; those not
	// given stay as they are.
	Limits LimitArgs `json:"limits,omitzero"`
	// Properties are unit settings to change (set -p KEY=VALUE), from the
	// allow-list of PropertyRules; "KEY=" removes KEY (back to systemd's
	// default). The others stay as they are.
	Properties []string `json:"properties,omitempty"`
	// Harden, when not nil, turns the sandboxing preset on or off (set
	// --harden, --harden=false); it takes effect at the next start.
	Harden *bool `json:"harden,omitempty"`
	// Restart restarts the runtime after the change, so that what cannot
	// change on a running process (--nofile, most properties, --harden)
	// takes effect now.
	Restart bool `json:"restart,omitempty"`
}

// Check validates a set request and puts its limits in canonical form.
// Errors are of class invalid and name the flag.
func (s *SetSpec) Check() error {
	if err := CheckName(s.Name); err != nil {
		return err
	}
	if s.Limits.IsZero() && len(s.Properties) == 0 && s.Harden == nil {
		return Errorf(ErrInvalid, "nothing to change: give at least one of --memory-max, --memory-high, --cpu-quota, --cpu-weight, --tasks-max, --nofile, --harden, -p KEY=VALUE")
	}
	_, args, err := ParseLimits(s.Limits)
	if err != nil {
		return err
	}
	s.Limits = args
	// "KEY=" removes a setting: the key must still be one of the list. A
	// key given twice keeps its last value, a removal included.
	last := map[string]string{}
	for _, kv := range s.Properties {
		k, v, ok := strings.Cut(kv, "=")
		if ok && v == "" {
			if _, allowed := PropertyRuleOf(k); !allowed {
				if _, err := CheckProperty(k + "=x"); err != nil {
					return err
				}
			}
			last[k] = k + "="
			continue
		}
		c, err := CheckProperty(kv)
		if err != nil {
			return err
		}
		k, _, _ = strings.Cut(c, "=")
		last[k] = c
	}
	if len(last) > MaxProperties {
		return Errorf(ErrInvalid, "-p/--property: %d settings; at most %d", len(last), MaxProperties)
	}
	s.Properties = nil
	for _, kv := range last {
		s.Properties = append(s.Properties, kv)
	}
	slices.Sort(s.Properties)
	return nil
}

// AttachSpec is an attach request.
type AttachSpec struct {
	Type    string `json:"type"` // server, client, proxy, cache
	Name    string `json:"name"`
	Port    int    `json:"port"`
	PID     int    `json:"pid"`
	Managed bool   `json:"managed,omitempty"`
}

// Runtime is one registry entry as reported by ls, ps and show. Field names
// are stable: scripts read them with -o json.
type Runtime struct {
	Name    string `json:"name"`
	Unit    string `json:"unit"`
	Managed bool   `json:"managed"`          // started by socketley as a unit
	Orphan  bool   `json:"orphan,omitempty"` // a socketley-* unit with no entry
	Status  Status `json:"status"`
	// Mode is how the runtime runs: unit, attach or orphan (ModeOf(Managed, Orphan)).
	Mode    Mode   `json:"mode,omitempty"`
	Desired string `json:"desired,omitempty"`
	Reason  string `json:"reason,omitempty"` // why failed/unhealthy, in words
	// Failed is set only in the reply of a command that failed for this
	// runtime (of several it acted on): the error, in words, with the
	// class in FailedClass. Clients use it to tell which ones failed.
	Failed      string     `json:"failed,omitempty"`
	FailedClass ErrorClass `json:"failed_class,omitempty"`
	// Unchanged is set only in the reply of a command that left this
	// runtime as it was (start of a runtime that already runs), so that a
	// client tells it apart without reading the message.
	Unchanged bool `json:"unchanged,omitempty"`

	Type string `json:"type,omitempty"` // attached type, "" when never attached
	Port int    `json:"port,omitempty"`
	// Listen are the addresses systemd holds for the runtime (add --listen).
	Listen []string `json:"listen,omitempty"`

	PID      int `json:"pid,omitempty"`
	Restarts int `json:"restarts"`
	// HealthRestarts counts the restarts the daemon's health check made
	// (attach overdue, port refused); they are included in Restarts too.
	// It survives daemon restarts.
	HealthRestarts int `json:"health_restarts,omitempty"`
	// Failures is the number of consecutive failed runs the crash backoff
	// counts (0 when the runtime has been up for its reset period), and
	// NextRestart when the backoff starts it again (zero when not waiting).
	Failures    int       `json:"failures,omitempty"`
	NextRestart time.Time `json:"next_restart,omitzero"`
	Since       time.Time `json:"since,omitzero"` // when the current process became active
	LastExit    string    `json:"last_exit,omitempty"`
	AttachPID   int       `json:"attach_pid,omitempty"`
	AttachedAt  time.Time `json:"attached_at,omitzero"`

	ActiveState string `json:"active_state,omitempty"`
	SubState    string `json:"sub_state,omitempty"`

	Path            string        `json:"path,omitempty"`
	Args            []string      `json:"args,omitempty"`
	Env             []string      `json:"env,omitempty"`
	WorkDir         string        `json:"workdir,omitempty"`
	Restart         RestartPolicy `json:"restart,omitempty"`
	RestartSec      Duration      `json:"restart_sec,omitempty"`
	RestartMaxDelay Duration      `json:"restart_max_delay,omitempty"`
	RestartReset    Duration      `json:"restart_reset,omitempty"`
	MaxRestarts     int           `json:"max_restarts,omitempty"`
	StopTimeout     Duration      `json:"stop_timeout,omitempty"` // SIGTERM → SIGKILL (managed; default filled in)
	User            string        `json:"user,omitempty"`
	OwnerUID        int           `json:"owner_uid"`
	Created         time.Time     `json:"created,omitzero"`
	// Redacted is set when Args and Env were withheld: the caller is
	// neither root nor the runtime's owner (an orphan unit: not root).
	Redacted bool `json:"redacted,omitempty"`
	// Credentials name the secret files loaded at every start of a managed
	// runtime (add --credential): IDs and paths, never the contents.
	Credentials []Credential `json:"credentials,omitempty"`
	// EnvFiles are the environment files systemd reads at every start of
	// a managed runtime (add --env-file): paths, never the contents.
	EnvFiles []string `json:"env_files,omitempty"`
	// Harden is set when the runtime's unit gets the sandboxing preset
	// (add --harden, docs/harden.md).
	Harden bool `json:"harden,omitempty"`
	// Limits are the resource limits of a managed runtime, in systemd's
	// syntax (omitted when none is set). They are those of its next
	// start; the live ones were applied to the running unit too (set).
	Limits LimitArgs `json:"limits,omitzero"`
	// Properties are the other unit settings of a managed runtime (add
	// -p/--property), canonical KEY=VALUE sorted by key.
	Properties []string `json:"properties,omitempty"`
	// ExpectAttach, AttachTimeout and HealthFails are the attach and
	// health settings of a managed runtime (add --attach,
	// --attach-timeout, --health-fails; AttachTimeout 0 and HealthFails
	// nil are the defaults, 10s and 3).
	ExpectAttach  bool     `json:"expect_attach,omitempty"`
	AttachTimeout Duration `json:"attach_timeout,omitempty"`
	HealthFails   *int     `json:"health_fails,omitempty"`
	// Usage is what the runtime's processes use, sampled by the daemon
	// once per health tick (nil when nothing runs or nothing was sampled
	// yet).
	Usage *Usage `json:"usage,omitempty"`
}

// Usage sources: where the figures of a Usage come from.
const (
	// UsageCgroup: the unit's cgroup accounting (memory.current,
	// cpu.stat, pids.current), what systemctl status shows.
	UsageCgroup = "cgroup"
	// UsageProc: summed over /proc/PID of every process in the unit's
	// cgroup.procs, where the cgroup controllers are not available.
	UsageProc = "proc"
)

// Usage is a sample of what a runtime's processes use.
type Usage struct {
	// CPUPercent is the CPU time used per wall-clock time since the
	// previous sample, in percent of one CPU (200 = two whole CPUs);
	// 0 on the first sample of a process.
	CPUPercent float64 `json:"cpu_percent"`
	// CPUUsec is the CPU time (user + system) the runtime's processes
	// have used, in microseconds: with UsageCgroup since the unit
	// started, with UsageProc of the processes alive now.
	CPUUsec uint64 `json:"cpu_usec"`
	// MemoryBytes is the memory in use: the cgroup's memory.current
	// (page cache included) or the sum of the processes' resident sets.
	MemoryBytes uint64 `json:"memory_bytes"`
	// Tasks is the number of processes and threads.
	Tasks int `json:"tasks"`
	// Source is UsageCgroup or UsageProc.
	Source string `json:"source"`
	// At is when the sample was taken.
	At time.Time `json:"at"`
}

// Result is the JSON reply payload for mutating commands and errors.
type Result struct {
	// Error is set on failure (the reply code is then non-zero).
	Error string `json:"error,omitempty"`
	// Class is the kind of the failure (set with Error).
	Class ErrorClass `json:"class,omitempty"`
	// Runtimes holds ls/ps/show output, and the affected runtimes otherwise.
	Runtimes []Runtime `json:"runtimes,omitempty"`
	// Message is a human-readable summary.
	Message string `json:"message,omitempty"`
	// Version is the daemon's version (CmdVersion).
	Version *VersionInfo `json:"version,omitempty"`
	// Events are the events of CmdEvents, oldest first.
	Events []Event `json:"events,omitempty"`
	// Why is the reply of CmdWhy.
	Why *Why `json:"why,omitempty"`
}

// VersionInfo describes a build.
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
}

// Duration is a time.Duration that encodes as a Go duration string in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
