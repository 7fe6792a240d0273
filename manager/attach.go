package manager

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// attachTypes are the runtime types an attach may report.
var attachTypes = []string{"server", "client", "proxy", "cache"}

// attach records what a process reports about itself.
//
// Managed (--managed): the runtime must exist and be managed, and both the
// connecting process and the named pid must belong to its unit (checked with
// systemd, GetUnitByPID), so no process outside the unit can speak for it.
//
// Unmanaged: a new entry bound to the pid (and its start time); the pid must
// be the caller's own unless the caller is root.
func (m *Manager) attach(ctx context.Context, caller Caller, a wire.AttachSpec) (*wire.Result, error) {
	if !slices.Contains(attachTypes, a.Type) {
		return nil, errorf(ErrInvalid, "attach: unknown type %q (server, client, proxy or cache)", a.Type)
	}
	if err := ValidateName(a.Name); err != nil {
		return nil, err
	}
	if a.Port < 1 || a.Port > 65535 {
		return nil, errorf(ErrInvalid, "attach: port %d out of range 1-65535", a.Port)
	}
	if a.PID <= 0 {
		return nil, errorf(ErrInvalid, "attach: pid %d is not a process id", a.PID)
	}
	unlock := m.locks.lock(a.Name)
	defer unlock()
	now := time.Now().UTC()
	if a.Managed {
		return m.attachManaged(ctx, caller, a, now)
	}
	if a.PID != caller.PID && !caller.root() {
		return nil, errorf(ErrDenied, "attach: pid %d is not the calling process (pid %d); only root may attach another process", a.PID, caller.PID)
	}
	start, err := procStartTime(a.PID)
	if err != nil {
		return nil, errorf(ErrInvalid, "attach: no process with pid %d", a.PID)
	}
	err = m.update(func(r *Registry) error {
		if old, ok := r.entries[a.Name]; ok {
			switch {
			case old.Managed:
				return errorf(ErrExists, "runtime already exists: %s (a managed runtime; inside its unit, attach with --managed)", a.Name)
			case old.PID != a.PID && sameProcess(old.PID, old.StartTime):
				return errorf(ErrExists, "runtime already exists: %s (attached by pid %d)", a.Name, old.PID)
			case !caller.root() && old.OwnerUID != caller.UID && sameProcess(old.PID, old.StartTime):
				return errorf(ErrDenied, "attach: %s belongs to uid %d", a.Name, old.OwnerUID)
			}
		}
		r.entries[a.Name] = &Entry{
			Name: a.Name, Managed: false, Type: a.Type, Port: a.Port, PID: a.PID, StartTime: start,
			OwnerUID: caller.UID, Desired: DesiredRunning, Started: true, Created: now.Truncate(time.Second),
			AttachPID: a.PID, AttachedAt: now,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.log.Info("attached", "name", a.Name, "pid", a.PID, "port", a.Port, "type", a.Type, "uid", caller.UID)
	return &wire.Result{Runtimes: []wire.Runtime{m.view(a.Name)},
		Message: fmt.Sprintf("attached %s (%s, port %d, pid %d)", a.Name, a.Type, a.Port, a.PID)}, nil
}

func (m *Manager) attachManaged(ctx context.Context, caller Caller, a wire.AttachSpec, now time.Time) (*wire.Result, error) {
	e, ok := m.entry(a.Name)
	if !ok || !e.Managed {
		return nil, errorf(ErrNotFound, "attach --managed: no managed runtime %q (managed attach comes from a process started by socketley add)", a.Name)
	}
	sd, err := m.systemd()
	if err != nil {
		return nil, err
	}
	want := units.Name(a.Name)
	for _, pid := range slices.Compact([]int{caller.PID, a.PID}) {
		unit, err := sd.UnitByPID(ctx, pid)
		if err != nil || unit != want {
			in := unit
			if err != nil {
				in = "no unit"
			}
			return nil, errorf(ErrDenied, "attach --managed refused: pid %d is not part of %s (it is in %s)", pid, want, in)
		}
	}
	err = m.update(func(r *Registry) error {
		cur, ok := r.entries[a.Name]
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", a.Name)
		}
		cur.Type, cur.Port, cur.AttachPID, cur.AttachedAt = a.Type, a.Port, a.PID, now
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	o := m.obsOf(a.Name)
	o.portDown, o.unhealthyTicks = false, 0
	m.mu.Unlock()
	m.log.Info("attached", "name", a.Name, "pid", a.PID, "port", a.Port, "type", a.Type)
	return &wire.Result{Runtimes: []wire.Runtime{m.view(a.Name)},
		Message: fmt.Sprintf("attached %s (%s, port %d, pid %d)", a.Name, a.Type, a.Port, a.PID)}, nil
}
