package units

import (
	"context"
	"errors"
	"strings"

	godbus "github.com/godbus/dbus/v5"
)

// Sentinel errors; test for them with errors.Is. The message of the wrapping
// error is systemd's (or D-Bus's) own.
var (
	// ErrNoSuchUnit: the unit is not loaded (D-Bus NoSuchUnit, or a unit whose
	// LoadState is not-found; NoUnitForPID for UnitByPID). For Stop it means
	// "already stopped".
	ErrNoSuchUnit = errors.New("no such unit")
	// ErrUnitExists: a unit of that name is loaded (D-Bus UnitExists), i.e. it
	// runs or is being started or stopped.
	ErrUnitExists = errors.New("unit exists")
	// ErrNoBus: systemd cannot be reached over D-Bus: no bus address, the bus
	// refused the connection, systemd does not answer, or the connection was
	// lost. Dial again.
	ErrNoBus = errors.New("systemd is not reachable over D-Bus")
	// ErrInvalid: a Spec, runtime name or pid that cannot name a unit.
	ErrInvalid = errors.New("invalid argument")
	// ErrWatchClosed is Watch.Err after Watch.Close.
	ErrWatchClosed = errors.New("watch closed")
)

// JobResult is the result of a systemd job, as in JobRemoved.
type JobResult = string

// JobResult values.
const (
	JobDone       JobResult = "done"
	JobCanceled   JobResult = "canceled"
	JobTimeout    JobResult = "timeout"
	JobFailed     JobResult = "failed"
	JobDependency JobResult = "dependency"
	JobSkipped    JobResult = "skipped"
)

// JobError is returned by Start and Stop when the job ends in a result other
// than "done". Status is the unit's state right after the job (zero if it
// could not be read), so the message carries systemd's own account, e.g.
// "start socketley-x.service: job failed (unit result: exit-code, exited with
// status 203/EXEC)".
type JobError struct {
	Unit   string    // socketley-NAME.service
	Job    string    // job type: "start" or "stop"
	Result JobResult // failed, canceled, timeout, dependency, skipped
	Status Status
}

// Error returns "JOB UNIT: job RESULT (unit result: R, exited with status N)".
func (e *JobError) Error() string {
	var b strings.Builder
	b.WriteString(e.Job + " " + e.Unit + ": job " + e.Result)
	var details []string
	if r := e.Status.Result; r != "" && r != ResultSuccess {
		details = append(details, "unit result: "+r)
	}
	if x := describeExit(e.Status.ExecMainCode, e.Status.ExecMainStatus, true); x != "" {
		details = append(details, x)
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}

// wrapped is an error whose message is msg (and cause's), that errors.Is
// matches against a sentinel and against cause.
type wrapped struct {
	msg      string
	sentinel error
	cause    error
}

func (e *wrapped) Error() string {
	switch {
	case e.cause == nil:
		return e.msg
	case e.msg == "":
		return e.cause.Error()
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *wrapped) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

// noBus wraps cause (may be nil) as an ErrNoBus with message msg.
func noBus(msg string, cause error) error {
	return &wrapped{msg: msg, sentinel: ErrNoBus, cause: cause}
}

// D-Bus error names that map to sentinels.
const (
	errNameNoSuchUnit   = "org.freedesktop.systemd1.NoSuchUnit"
	errNameNoUnitForPID = "org.freedesktop.systemd1.NoUnitForPID"
	errNameUnitExists   = "org.freedesktop.systemd1.UnitExists"
)

// mapErr maps a D-Bus error to its sentinel, keeping D-Bus's message.
// Other errors pass through unchanged.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var de godbus.Error
	if pde := (*godbus.Error)(nil); errors.As(err, &pde) && pde != nil {
		de = *pde
	} else if !errors.As(err, &de) {
		if errors.Is(err, godbus.ErrClosed) {
			return noBus("", err)
		}
		return err
	}
	switch de.Name {
	case errNameNoSuchUnit, errNameNoUnitForPID:
		return &wrapped{sentinel: ErrNoSuchUnit, cause: err}
	case errNameUnitExists:
		return &wrapped{sentinel: ErrUnitExists, cause: err}
	case "org.freedesktop.DBus.Error.ServiceUnknown",
		"org.freedesktop.DBus.Error.NameHasNoOwner",
		"org.freedesktop.DBus.Error.Disconnected":
		return noBus("", err)
	}
	return err
}

// isCtxErr reports whether err comes from a context (deadline or cancel).
func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
