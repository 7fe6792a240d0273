package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/wire"
)

// The state names below are aliases of string, so that Status fields mix with
// plain strings (wire types, fakes); compare against the constants, never
// against literals.

// LoadState is a unit's LoadState property.
type LoadState = string

// LoadState values (org.freedesktop.systemd1(5)).
const (
	LoadLoaded     LoadState = "loaded"
	LoadNotFound   LoadState = "not-found"
	LoadBadSetting LoadState = "bad-setting"
	LoadError      LoadState = "error"
	LoadMasked     LoadState = "masked"
)

// ActiveState is a unit's ActiveState property.
type ActiveState = string

// ActiveState values. "maintenance" needs systemd ≥ 247.
const (
	ActiveActive       ActiveState = "active"
	ActiveReloading    ActiveState = "reloading"
	ActiveInactive     ActiveState = "inactive"
	ActiveFailed       ActiveState = "failed"
	ActiveActivating   ActiveState = "activating"
	ActiveDeactivating ActiveState = "deactivating"
	ActiveMaintenance  ActiveState = "maintenance"
)

// SubState is a service's SubState property; the common values are listed,
// systemd has more (start-pre, stop-sigterm, final-sigkill, …).
type SubState = string

// Common SubState values of a service.
const (
	SubDead        SubState = "dead"
	SubStart       SubState = "start"
	SubRunning     SubState = "running"
	SubExited      SubState = "exited"
	SubStopSIGTERM SubState = "stop-sigterm"
	SubFailed      SubState = "failed"
	SubAutoRestart SubState = "auto-restart"
	// SubAutoRestartQueued (systemd ≥ 254) follows auto-restart once the
	// restart job is queued; NRestarts already counts that restart.
	SubAutoRestartQueued SubState = "auto-restart-queued"
	// SubFailedBeforeAutoRestart and SubDeadBeforeAutoRestart (systemd ≥
	// 254, RestartSubStatesVersion) are the failed and inactive states a
	// service passes through on its way to an automatic restart; systemd
	// 252 says failed and dead there, as for a final stop.
	SubFailedBeforeAutoRestart SubState = "failed-before-auto-restart"
	SubDeadBeforeAutoRestart   SubState = "dead-before-auto-restart"
)

// ServiceResult is a service's Result property: why it last stopped or failed.
type ServiceResult = string

// ServiceResult values (systemd.exec(5), "$SERVICE_RESULT").
const (
	ResultSuccess       ServiceResult = "success"
	ResultProtocol      ServiceResult = "protocol"
	ResultTimeout       ServiceResult = "timeout"
	ResultExitCode      ServiceResult = "exit-code"
	ResultSignal        ServiceResult = "signal"
	ResultCoreDump      ServiceResult = "core-dump"
	ResultWatchdog      ServiceResult = "watchdog"
	ResultStartLimitHit ServiceResult = "start-limit-hit"
	ResultResources     ServiceResult = "resources"
	ResultOOMKill       ServiceResult = "oom-kill"
)

// How the main process ended, as in siginfo_t.si_code (Status.ExecMainCode).
const (
	CodeExited = 1 // CLD_EXITED: ExecMainStatus is the exit status
	CodeKilled = 2 // CLD_KILLED: ExecMainStatus is the signal
	CodeDumped = 3 // CLD_DUMPED: killed by ExecMainStatus, core dumped
)

// Status is systemd's view of one socketley unit, read from the
// org.freedesktop.systemd1.Unit and .Service interfaces.
type Status struct {
	Unit string // unit name, socketley-NAME.service
	Name string // runtime name, NAME

	LoadState   LoadState
	ActiveState ActiveState
	SubState    SubState
	// Result is the service result: success, exit-code, signal, core-dump,
	// timeout, start-limit-hit, … It keeps its value until the next start.
	// A failed unit whose automatic restart the start limit refused reads
	// start-limit-hit (systemd itself keeps the failure before it: measured
	// on 252.38 and 254.26, see derive).
	Result ServiceResult
	// Restart is the unit's Restart= policy ("no", "on-failure", …).
	Restart wire.RestartPolicy
	// RestartSec is the unit's RestartSec= (RestartUSec): how long systemd
	// waits before an automatic restart.
	RestartSec time.Duration

	MainPID   int // 0 when no main process runs
	NRestarts int // automatic restarts since the unit was started by a job

	// ExecMainCode and ExecMainStatus describe how the last main process
	// ended: CodeExited (1) with its exit status, CodeKilled (2) or
	// CodeDumped (3) with the signal number; 0 and 0 while it runs or before
	// it ran. systemd clears them when it starts a new main process, so after
	// an automatic restart they describe the new (running) process.
	ExecMainCode   int
	ExecMainStatus int

	ActiveEnter time.Time // ActiveEnterTimestamp; zero if never active
	// StateChange is StateChangeTimestamp: when ActiveState or SubState last
	// changed (for Restarting: when the wait for the restart began).
	StateChange time.Time
	// RestartNext is RestartUSecNext (systemd ≥ 254; 0 on older managers):
	// the delay of the next automatic restart, which grows with NRestarts
	// under RestartSteps=.
	RestartNext time.Duration
	// RestartSteps is RestartSteps= (systemd ≥ 254; 0 = a fixed delay).
	RestartSteps  int
	ExecMainStart time.Time // ExecMainStartTimestamp; zero if never started

	// ExecStart is the argv of the unit's first ExecStart= command (argv[0]
	// is normally the path).
	ExecStart []string

	// Restarting is true while systemd waits to restart the service after it
	// exited (ActiveState activating, SubState auto-restart). On the way
	// there systemd passes through failed (252: failed/failed, and
	// inactive/dead when the restart begins; ≥ 254:
	// failed/failed-before-auto-restart) within one event-loop turn: a
	// synchronous query never sees that, and a Watch does not publish it
	// (see Watch.settle), so a failed Status is a settled failure.
	Restarting bool
}

// LastExit describes how the last main process ended, in words: "" when
// nothing is recorded (never ran, or running), "exit code 3", "exit code
// 203/EXEC" (systemd's own codes are named), "signal KILL", or "signal SEGV
// (core dumped)".
func (s Status) LastExit() string {
	return describeExit(s.ExecMainCode, s.ExecMainStatus, false)
}

// describeExit words an exit. verbose selects the JobError phrasing
// ("exited with status 1", "killed by signal KILL").
func describeExit(code, status int, verbose bool) string {
	switch code {
	case 0:
		return ""
	case CodeExited:
		s := strconv.Itoa(status)
		if name := exitStatusName(status); name != "" {
			s += "/" + name
		}
		if verbose {
			return "exited with status " + s
		}
		return "exit code " + s
	case CodeKilled, CodeDumped:
		s := "signal " + signalName(status)
		if verbose {
			s = "killed by " + s
		}
		if code == CodeDumped {
			s += " (core dumped)"
		}
		return s
	}
	return "code " + strconv.Itoa(code) + " status " + strconv.Itoa(status)
}

// signalName returns "KILL" for 9, or the number for an unknown signal.
func signalName(sig int) string {
	if name := unix.SignalName(unix.Signal(sig)); name != "" {
		return strings.TrimPrefix(name, "SIG")
	}
	return strconv.Itoa(sig)
}

// exitStatusName names systemd's own exit statuses (200…244, set when the
// service manager could not set up or exec the process), as systemctl shows
// them ("203/EXEC"). Other statuses belong to the program and stay numbers.
func exitStatusName(status int) string {
	switch status {
	case 200:
		return "CHDIR"
	case 201:
		return "NICE"
	case 202:
		return "FDS"
	case 203:
		return "EXEC"
	case 204:
		return "MEMORY"
	case 205:
		return "LIMITS"
	case 206:
		return "OOM_ADJUST"
	case 207:
		return "SIGNAL_MASK"
	case 208:
		return "STDIN"
	case 209:
		return "STDOUT"
	case 210:
		return "CHROOT"
	case 211:
		return "IOPRIO"
	case 212:
		return "TIMERSLACK"
	case 213:
		return "SECUREBITS"
	case 214:
		return "SETSCHEDULER"
	case 215:
		return "CPUAFFINITY"
	case 216:
		return "GROUP"
	case 217:
		return "USER"
	case 218:
		return "CAPABILITIES"
	case 219:
		return "CGROUP"
	case 220:
		return "SETSID"
	case 221:
		return "CONFIRM"
	case 222:
		return "STDERR"
	case 224:
		return "PAM"
	case 225:
		return "NETWORK"
	case 226:
		return "NAMESPACE"
	case 227:
		return "NO_NEW_PRIVILEGES"
	case 228:
		return "SECCOMP"
	case 229:
		return "SELINUX_CONTEXT"
	case 230:
		return "PERSONALITY"
	case 231:
		return "APPARMOR_PROFILE"
	case 232:
		return "ADDRESS_FAMILIES"
	case 233:
		return "RUNTIME_DIRECTORY"
	case 235:
		return "CHOWN"
	case 236:
		return "SMACK_PROCESS_LABEL"
	case 237:
		return "KEYRING"
	case 238:
		return "STATE_DIRECTORY"
	case 239:
		return "CACHE_DIRECTORY"
	case 240:
		return "LOGS_DIRECTORY"
	case 241:
		return "CONFIGURATION_DIRECTORY"
	case 242:
		return "NUMA_POLICY"
	case 243:
		return "CREDENTIALS"
	case 244:
		return "BPF"
	}
	return ""
}

// derive sets the fields that are computed from others. It is idempotent.
//
// Restarting: activating/auto-restart (or auto-restart-queued, systemd ≥ 254,
// between the queueing of the restart job and its start). systemd 252 passes through failed
// (crash) or inactive (restart job) on the way, in the same event-loop turn:
// a GetAll never sees those, and a Watch settles over them.
//
// Result: when the start limit refuses an automatic restart, systemd keeps
// the result of the failure before it (exit-code, signal, …): measured on
// 252.38 and 254.26 (Result=exit-code, SubState failed after a refused
// restart), so this is not gated on the version. A failed unit whose
// Restart= policy would have restarted it for that result, and that has
// restarted before, was stopped by the start limit: its Result is reported
// as start-limit-hit.
func derive(s *Status) {
	s.Restarting = s.ActiveState == ActiveActivating && (s.SubState == SubAutoRestart || s.SubState == SubAutoRestartQueued)
	if s.ActiveState == ActiveFailed && s.Result != ResultStartLimitHit && s.NRestarts > 0 &&
		restartApplies(s.Restart, s.Result) {
		s.Result = ResultStartLimitHit
	}
}

// restartApplies reports whether Restart=policy restarts a service that
// ended with result (service_shall_restart in systemd's service.c).
func restartApplies(policy wire.RestartPolicy, result ServiceResult) bool {
	switch policy {
	case wire.RestartAlways:
		return true
	case wire.RestartOnSuccess:
		return result == ResultSuccess
	case wire.RestartOnFailure:
		return result != ResultSuccess
	case wire.RestartOnAbnormal:
		return result != ResultSuccess && result != ResultExitCode
	case wire.RestartOnAbort:
		return result == ResultSignal || result == ResultCoreDump
	case wire.RestartOnWatchdog:
		return result == ResultWatchdog
	}
	return false
}

// knownProps are the properties a Status follows, in the order they are
// decoded; the first four are required.
var knownProps = []string{
	"Id", "LoadState", "ActiveState", "SubState",
	"Result", "Restart", "RestartUSec", "MainPID", "NRestarts", "ExecMainCode", "ExecMainStatus",
	"ActiveEnterTimestamp", "ExecMainStartTimestamp", "ExecStart",
	"StateChangeTimestamp", "RestartUSecNext", "RestartSteps",
}

// lookup returns the value of one property of a GetAll result, and whether
// it is present.
type lookup func(name string) (any, bool)

// mapLookup looks properties up in props.
func mapLookup(props map[string]any) lookup {
	return func(name string) (any, bool) {
		v, ok := props[name]
		return v, ok
	}
}

// decodeStatus builds a Status from the properties of one GetAll call (both
// interfaces). Id, LoadState, ActiveState and SubState are required; every
// other property may be missing (zero value). A value of the wrong D-Bus
// type is an error, never a panic.
func decodeStatus(props map[string]any) (Status, error) {
	return decodeLookup(mapLookup(props))
}

// decodeLookup is decodeStatus for properties found by get: only the
// properties a Status follows are looked at (a GetAll result has ~400).
func decodeLookup(get lookup) (Status, error) {
	var st Status
	var errs []error
	for i, name := range knownProps {
		v, ok := get(name)
		if !ok {
			if i < 4 {
				errs = append(errs, fmt.Errorf("property %s missing", name))
			}
			continue
		}
		if _, err := applyProp(&st, name, v); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Status{}, errors.Join(errs...)
	}
	name, ok := RuntimeName(st.Unit)
	if !ok {
		return Status{}, fmt.Errorf("unit %q is not a socketley unit", st.Unit)
	}
	st.Name = name
	derive(&st)
	return st, nil
}

// applyVariants stores every known property of the a{sv} of a
// PropertiesChanged signal into st. Unknown properties are ignored; a
// mistyped one is skipped and reported. It does not call derive.
func applyVariants(st *Status, props map[string]godbus.Variant) error {
	var errs []error
	for name, v := range props {
		if _, err := applyProp(st, name, v.Value()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tracked reports whether a Status field follows the property name; an
// invalidated tracked property makes a Watch refetch the unit. ExecStart is
// left out: it is invalidated on every change and a unit's command line
// does not change while it is loaded.
func tracked(name string) bool {
	var st Status
	known, _ := applyProp(&st, name, nil)
	return known && name != "ExecStart" && name != "Id"
}

// applyProp stores one property. known is false for a property Status does
// not follow; err is set when the value has the wrong type (st unchanged).
func applyProp(st *Status, name string, v any) (known bool, err error) {
	switch name {
	case "Id":
		return true, setString(&st.Unit, name, v)
	case "LoadState":
		return true, setString(&st.LoadState, name, v)
	case "ActiveState":
		return true, setString(&st.ActiveState, name, v)
	case "SubState":
		return true, setString(&st.SubState, name, v)
	case "Result":
		return true, setString(&st.Result, name, v)
	case "Restart":
		return true, setString(&st.Restart, name, v)
	case "RestartUSec":
		return true, setDuration(&st.RestartSec, name, v)
	case "MainPID":
		return true, setUint32(&st.MainPID, name, v)
	case "NRestarts":
		return true, setUint32(&st.NRestarts, name, v)
	case "ExecMainCode":
		return true, setInt32(&st.ExecMainCode, name, v)
	case "ExecMainStatus":
		return true, setInt32(&st.ExecMainStatus, name, v)
	case "ActiveEnterTimestamp":
		return true, setTimestamp(&st.ActiveEnter, name, v)
	case "ExecMainStartTimestamp":
		return true, setTimestamp(&st.ExecMainStart, name, v)
	case "StateChangeTimestamp":
		return true, setTimestamp(&st.StateChange, name, v)
	case "RestartUSecNext":
		return true, setDuration(&st.RestartNext, name, v)
	case "RestartSteps":
		return true, setUint32(&st.RestartSteps, name, v)
	case "ExecStart":
		if v == nil {
			return true, typeError(name, "a(sasbttttuii)", v)
		}
		argv, err := execArgv(v)
		if err != nil {
			return true, err
		}
		st.ExecStart = argv
		return true, nil
	}
	return false, nil
}

func typeError(name, want string, v any) error {
	return fmt.Errorf("property %s: got %T, want D-Bus %s", name, v, want)
}

func setString[T ~string](dst *T, name string, v any) error {
	s, ok := v.(string)
	if !ok {
		return typeError(name, "s", v)
	}
	*dst = T(own(s))
	return nil
}

// common holds the values of the state properties, so that a Status holds
// these constants instead of copies. It is built at the first use, not
// at the start of every CLI command.
var common = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		LoadLoaded, LoadNotFound, LoadBadSetting, LoadError, LoadMasked,
		ActiveActive, ActiveReloading, ActiveInactive, ActiveFailed, ActiveActivating, ActiveDeactivating, ActiveMaintenance,
		SubDead, SubStart, SubRunning, SubExited, SubStopSIGTERM, SubFailed, SubAutoRestart,
		"start-pre", "start-post", "reload", "stop", "stop-watchdog", "stop-sigkill", "stop-post",
		"final-watchdog", "final-sigterm", "final-sigkill", "cleaning", "condition",
		ResultSuccess, ResultProtocol, ResultTimeout, ResultExitCode, ResultSignal, ResultCoreDump,
		ResultWatchdog, ResultStartLimitHit, ResultResources, ResultOOMKill,
		"no", "on-failure", "always", "on-success", "on-abnormal", "on-abort", "on-watchdog",
	} {
		m[s] = s
	}
	return m
})

// own returns s in memory of its own. godbus decodes the strings of a
// message into shared 4 KB buffers: keeping one of them (a unit name, an
// argument) would keep its whole buffer, about 9 KB per cached unit. Common
// state values are returned as constants.
func own(s string) string {
	if c, ok := common()[s]; ok {
		return c
	}
	return strings.Clone(s)
}

func setUint32(dst *int, name string, v any) error {
	n, ok := v.(uint32)
	if !ok {
		return typeError(name, "u", v)
	}
	*dst = int(n)
	return nil
}

func setInt32(dst *int, name string, v any) error {
	n, ok := v.(int32)
	if !ok {
		return typeError(name, "i", v)
	}
	*dst = int(n)
	return nil
}

// setDuration reads a duration in usec; "infinity" (UINT64_MAX) is kept
// as the largest Duration.
func setDuration(dst *time.Duration, name string, v any) error {
	n, ok := v.(uint64)
	if !ok {
		return typeError(name, "t", v)
	}
	if n > uint64(1<<63-1)/uint64(time.Microsecond) {
		*dst = time.Duration(1<<63 - 1)
		return nil
	}
	*dst = time.Duration(n) * time.Microsecond
	return nil
}

// setTimestamp reads a usec-since-epoch timestamp; 0 means "never".
func setTimestamp(dst *time.Time, name string, v any) error {
	n, ok := v.(uint64)
	if !ok {
		return typeError(name, "t", v)
	}
	if n == 0 || n > 1<<62 {
		*dst = time.Time{}
		return nil
	}
	*dst = time.UnixMicro(int64(n))
	return nil
}

// execArgv reads the argv of the first command of an a(sasbttttuii)
// ExecStart value. godbus decodes an array of structs as [][]any.
func execArgv(v any) ([]string, error) {
	var cmds []any
	switch x := v.(type) {
	case [][]any:
		for _, c := range x {
			cmds = append(cmds, c)
		}
	case []any:
		cmds = x
	default:
		return nil, typeError("ExecStart", "a(sasbttttuii)", v)
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	fields, ok := cmds[0].([]any)
	if !ok || len(fields) < 2 {
		return nil, typeError("ExecStart", "a(sasbttttuii)", v)
	}
	path, ok1 := fields[0].(string)
	argv, ok2 := fields[1].([]string)
	if !ok1 || !ok2 {
		return nil, typeError("ExecStart", "a(sasbttttuii)", v)
	}
	if len(argv) == 0 {
		return []string{own(path)}, nil
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = own(a)
	}
	return out, nil
}
