package sdk

import (
	"testing"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/wire"
)

// TestConstantsMatchTheWire: the constants sdk spells out (for its
// documentation) are the daemon's, and every Status, RestartPolicy the add
// command accepts and ErrorClass of the wire has its sdk constant.
func TestConstantsMatchTheWire(t *testing.T) {
	pairs := []struct{ sdk, wire any }{
		{StatusCreated, wire.StatusCreated}, {StatusStarting, wire.StatusStarting},
		{StatusRunning, wire.StatusRunning}, {StatusUnhealthy, wire.StatusUnhealthy},
		{StatusRestarting, wire.StatusRestarting}, {StatusCrashLoop, wire.StatusCrashLoop},
		{StatusFailed, wire.StatusFailed}, {StatusStopping, wire.StatusStopping}, {StatusStopped, wire.StatusStopped},
		{StatusRemoving, wire.StatusRemoving}, {StatusOrphan, wire.StatusOrphan},
		{StatusUnknown, wire.StatusUnknown},
		{ModeUnit, wire.ModeUnit}, {ModeAttach, wire.ModeAttach}, {ModeOrphan, wire.ModeOrphan},
		{RestartOnFailure, wire.RestartOnFailure}, {RestartAlways, wire.RestartAlways},
		{RestartNo, wire.RestartNo}, {DefaultRestart, wire.DefaultRestart},
		{ClassInvalid, wire.ClassInvalid}, {ClassNotFound, wire.ClassNotFound},
		{ClassExists, wire.ClassExists}, {ClassDenied, wire.ClassDenied},
		{ClassLimit, wire.ClassLimit}, {ClassBusy, wire.ClassBusy},
		{ClassFailed, wire.ClassFailed}, {ClassUnavailable, wire.ClassUnavailable},
		{ClassInternal, wire.ClassInternal},
		{DefaultTimeout, control.DefaultTimeout}, {DefaultStopTimeout, control.DefaultStopTimeout},
		{EnvSocket, "SOCKETLEY_SOCKET"},
	}
	for _, p := range pairs {
		if p.sdk != p.wire {
			t.Errorf("sdk has %v, the wire %v", p.sdk, p.wire)
		}
	}
	mine := map[any]bool{}
	for _, p := range pairs {
		mine[p.sdk] = true
	}
	for _, s := range wire.Statuses {
		if !mine[s] {
			t.Errorf("status %q has no sdk constant", s)
		}
	}
	for _, r := range wire.RestartPolicies {
		if !mine[r] {
			t.Errorf("restart policy %q has no sdk constant", r)
		}
	}
	for _, err := range []error{wire.ErrInvalid, wire.ErrNotFound, wire.ErrExists, wire.ErrDenied, wire.ErrLimit,
		wire.ErrBusy, wire.ErrFailed, wire.ErrUnavailable, wire.ErrInternal} {
		if c := wire.ClassOf(err); !mine[c] {
			t.Errorf("error class %q has no sdk constant", c)
		}
	}
}
