package sdk

import "github.com/socketley/socketley/internal/wire"

// The data types below are the daemon's own (its wire format), given here
// as aliases so that an SDK user never names an internal package. Their
// JSON encoding is the stable one of `socketley ls -o json` (docs/cli.md,
// "JSON fields"). The constants are the wire's own, each with its value in
// its comment's words; TestConstantsMatchTheWire fails when the wire gains a
// value the SDK does not name.

// Runtime is one registry entry as the daemon reports it: what List, PS and
// Show return, and the runtimes a command acted on. Its main fields: Name,
// Unit (socketley-NAME.service), Mode, Status, PID (0 when no process
// runs), Type and Port (as attached), Restarts, LastExit, Reason (why it is
// failed or unhealthy), and, in the reply of a command that failed for some
// of the runtimes it acted on, Failed (the error, in words) and FailedClass
// on those. go doc github.com/socketley/socketley/internal/wire.Runtime
// lists every field.
type Runtime = wire.Runtime

// AddSpec describes a managed runtime to register with Client.Add: Name,
// Path (a relative one is resolved against the caller's working directory),
// Args, Env (KEY=VALUE), WorkDir, Restart (the restart policy), Start (start
// it at once), ExpectAttach, Listen (the addresses systemd holds, as
// `socketley add --listen`), Credentials, StopTimeout and the crash-backoff
// settings; zero values mean the daemon's defaults, as for the flags of
// `socketley add` (docs/cli.md).
type AddSpec = wire.AddSpec

// Credential is one secret file of a managed runtime (AddSpec.Credentials,
// `socketley add --credential ID:PATH`, systemd's LoadCredential=): systemd
// copies the file at Path into $CREDENTIALS_DIRECTORY/ID at every start.
type Credential = wire.Credential

// LimitArgs are the resource limits of a managed runtime in systemd's own
// syntax (AddSpec.Limits, Runtime.Limits; `socketley add --memory-max 64M
// --cpu-quota 50%`): MemoryMax, MemoryHigh ("64M", "infinity"), CPUQuota
// ("50%"), CPUWeight ("1"–"10000"), TasksMax and NOFILE (a number or
// "infinity"); "" leaves systemd's default. docs/cli.md has the rules.
type LimitArgs = wire.LimitArgs

// Usage is what a runtime's processes use (Runtime.Usage, nil when nothing
// runs): CPUPercent (of one CPU since the daemon's previous sample),
// CPUUsec, MemoryBytes, Tasks, Source (UsageCgroup or UsageProc) and At,
// sampled by the daemon once per health tick.
type Usage = wire.Usage

// Usage sources (Usage.Source).
const (
	// UsageCgroup: the unit's cgroup accounting (memory.current, cpu.stat,
	// pids.current).
	UsageCgroup = wire.UsageCgroup
	// UsageProc: summed over /proc/PID of the runtime's processes, where
	// the cgroup controllers are not available (and for attached
	// processes).
	UsageProc = wire.UsageProc
)

// VersionInfo describes a build of socketley: Version, Commit, Date
// (Client.DaemonVersion).
type VersionInfo = wire.VersionInfo

// Duration is a time.Duration that encodes as "1.5s" in JSON; convert with
// sdk.Duration(d) and time.Duration(d).
type Duration = wire.Duration

// Status is a runtime's state (Runtime.Status, the STATUS column of ls).
// A daemon newer than this SDK may report a state it does not know:
// Status.Known tells; Status.Down reports failed, crash-loop, stopped and
// created.
type Status = wire.Status

// Runtime states.
const (
	// StatusCreated: registered, never started.
	StatusCreated = wire.StatusCreated
	// StatusStarting: waiting for the attach of a runtime added with
	// ExpectAttach.
	StatusStarting = wire.StatusStarting
	// StatusRunning: its process runs.
	StatusRunning = wire.StatusRunning
	// StatusUnhealthy: its process runs, but its attach is overdue or its
	// attached port refuses connections.
	StatusUnhealthy = wire.StatusUnhealthy
	// StatusRestarting: systemd is about to restart it.
	StatusRestarting = wire.StatusRestarting
	// StatusCrashLoop: crashing again and again; restarted with a growing
	// delay (Runtime.NextRestart says when).
	StatusCrashLoop = wire.StatusCrashLoop
	// StatusFailed: down after a failure (Runtime.LastExit says how it
	// ended), or given up on after AddSpec.MaxRestarts failed runs.
	StatusFailed = wire.StatusFailed
	// StatusStopping: its unit is being stopped (SIGTERM sent, not yet gone).
	StatusStopping = wire.StatusStopping
	// StatusStopped: stopped by a stop request.
	StatusStopped = wire.StatusStopped
	// StatusRemoving: a removal was recorded but has not finished.
	StatusRemoving = wire.StatusRemoving
	// StatusOrphan: a socketley-* unit with no registry entry.
	StatusOrphan = wire.StatusOrphan
	// StatusUnknown: the daemon has no entry of that name (any more).
	StatusUnknown = wire.StatusUnknown
)

// Mode is how a runtime runs (Runtime.Mode, the MODE column of ls).
type Mode = wire.Mode

// Modes of a runtime.
const (
	// ModeUnit: a managed runtime, run by systemd as a unit.
	ModeUnit = wire.ModeUnit
	// ModeAttach: a process that attached itself (Attach); socketley did
	// not start it.
	ModeAttach = wire.ModeAttach
	// ModeOrphan: a socketley-* unit with no registry entry.
	ModeOrphan = wire.ModeOrphan
)

// RestartPolicy is a managed runtime's restart policy (AddSpec.Restart,
// `socketley add --restart`), systemd's Restart=. The zero value in an
// AddSpec means DefaultRestart. A Runtime read from an orphan unit may
// carry another Restart= value of systemd's.
type RestartPolicy = wire.RestartPolicy

// Restart policies a runtime can be added with.
const (
	// RestartOnFailure restarts after a failure (non-zero exit, signal,
	// timeout, watchdog), not after a clean exit or a stop.
	RestartOnFailure = wire.RestartOnFailure
	// RestartAlways restarts after every exit, clean or not, but a stop.
	RestartAlways = wire.RestartAlways
	// RestartNo never restarts automatically.
	RestartNo = wire.RestartNo
	// DefaultRestart is the policy of a runtime added without one.
	DefaultRestart = RestartOnFailure
)

// ErrorClass is the kind of a failed request as the daemon classes it
// (ReplyError.Class, Runtime.FailedClass). Each class has a sentinel error
// (ErrInvalid, ErrNotFound, …) that errors.Is matches; ErrorClass.Code is
// the reply code (1 or 2) it comes with.
type ErrorClass = wire.ErrorClass

// Error classes; the sentinel of each is named after it (ClassNotFound:
// ErrNotFound).
const (
	// ClassInvalid: bad input (a malformed name, path, flag or request).
	ClassInvalid = wire.ClassInvalid
	// ClassNotFound: an unknown runtime, or a pattern that matches none.
	ClassNotFound = wire.ClassNotFound
	// ClassExists: the name is taken.
	ClassExists = wire.ClassExists
	// ClassDenied: the caller may not do this (another user's runtime).
	ClassDenied = wire.ClassDenied
	// ClassLimit: a limit is reached (runtimes per user).
	ClassLimit = wire.ClassLimit
	// ClassBusy: the runtime is in the middle of another operation.
	ClassBusy = wire.ClassBusy
	// ClassFailed: the runtime did not reach "running".
	ClassFailed = wire.ClassFailed
	// ClassUnavailable: the daemon cannot reach systemd.
	ClassUnavailable = wire.ClassUnavailable
	// ClassInternal: any other failure of the daemon.
	ClassInternal = wire.ClassInternal
)
