package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/proc"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// attach records what a process reports about itself.
//
// Managed (--managed): the runtime must exist and be managed, and both the
// connecting process and the named pid must belong to its unit (checked with
// systemd, GetUnitByPID), so no process outside the unit can speak for it.
//
// Unmanaged: a new entry bound to one process for its whole life: pid, start
// time and uids (real, effective, saved, filesystem), read together and
// pinned by a pidfd. The pid must be the caller's own, or its parent, and
// for a non-root caller run as the caller's uid (what `socketley attach` run
// from a script sends); root may name any process. signalAttached checks the
// binding again before every signal.
func (m *Manager) attach(ctx context.Context, caller Caller, a wire.AttachSpec) (*wire.Result, error) {
	if err := a.Check(); err != nil {
		return nil, err
	}
	unlock := m.locks.lock(a.Name)
	defer unlock()
	now := time.Now().UTC()
	if a.Managed {
		return m.attachManaged(ctx, caller, a, now)
	}
	if err := mayAttachPID(caller, a.PID); err != nil {
		return nil, err
	}
	start, uids, err := procIdentity(a.PID)
	if err != nil {
		return nil, errorf(ErrInvalid, "attach: no process with pid %d", a.PID)
	}
	// The pid was the caller's (or its parent's) when it connected; it is
	// bound to the caller only if it still runs as the caller: a process
	// that exited may have left its pid to another user's process.
	if !caller.root() && !allUID(uids, caller.UID) {
		return nil, errorf(ErrDenied, "attach refused: pid %d runs as uid %s, not as uid %d (has the process that connected exited?)", a.PID, uidList(uids), caller.UID)
	}
	err = m.update(func(r *Registry) error {
		if old, ok := r.get(a.Name); ok {
			switch {
			case old.Managed:
				return errorf(ErrExists, "runtime already exists: %s (a managed runtime: only a process inside %s may attach to it, with --managed)", a.Name, units.Name(a.Name))
			case old.PID == a.PID && old.StartTime == start:
				// The same process attaches again (new port or type).
			case sameProcess(old.PID, old.StartTime):
				return errorf(ErrExists, "runtime already exists: %s (attached by pid %d, which is still running)", a.Name, old.PID)
			}
		} else if err := m.checkOwned(caller, r, "attach"); err != nil {
			return err
		}
		r.put(&Entry{
			Name: a.Name, Managed: false, Type: a.Type, Port: a.Port, PID: a.PID, StartTime: start, UIDs: uids,
			OwnerUID: caller.UID, Desired: DesiredRunning, Started: true, Created: now.Truncate(time.Second),
			AttachPID: a.PID, AttachedAt: now,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if o := m.obs[a.Name]; o != nil {
		*o = observed{}
	}
	m.mu.Unlock()
	m.changed() // after update's: the view's probe state was cleared too
	m.log.Info("attached", "name", a.Name, "pid", a.PID, "port", a.Port, "type", a.Type, "uid", caller.UID)
	return &wire.Result{Runtimes: []wire.Runtime{m.view(a.Name)},
		Message: fmt.Sprintf("attached %s (%s, port %d, pid %d)", a.Name, a.Type, a.Port, a.PID)}, nil
}

// mayAttachPID decides whether caller may bind an unmanaged entry to pid:
// its own process, or its parent when that runs as the caller's user (real,
// effective and saved uid), so `socketley attach` from a shell script can
// attach the script. Root may attach any process.
func mayAttachPID(caller Caller, pid int) error {
	if caller.root() || pid == caller.PID {
		return nil
	}
	if ppid, err := procParent(caller.PID); err == nil && ppid == pid {
		if uids, err := proc.UIDs(pid); err == nil && !slices.ContainsFunc(uids, func(u int) bool { return u != caller.UID }) {
			return nil
		}
		return errorf(ErrDenied, "attach refused: pid %d (your parent) does not run as uid %d", pid, caller.UID)
	}
	return errorf(ErrDenied, "attach refused: pid %d is not the calling process (pid %d) or its parent; a process attaches itself (only root may attach another process)", pid, caller.PID)
}

// attachManaged re-attaches a managed runtime from inside its unit.
func (m *Manager) attachManaged(ctx context.Context, caller Caller, a wire.AttachSpec, now time.Time) (*wire.Result, error) {
	e, ok := m.entry(a.Name)
	if !ok || !e.Managed {
		return nil, errorf(ErrNotFound, "attach --managed: no managed runtime %q (a managed attach comes from a process that socketley add started; other processes attach without --managed)", a.Name)
	}
	sd, err := m.systemd()
	if err != nil {
		return nil, err
	}
	want := units.Name(a.Name)
	for _, pid := range slices.Compact([]int{caller.PID, a.PID}) {
		unit, err := sd.UnitByPID(ctx, pid)
		switch {
		case errors.Is(err, units.ErrNoSuchUnit) || errors.Is(err, units.ErrInvalid):
			return nil, errorf(ErrDenied, "attach --managed refused: pid %d is not part of %s (it belongs to no unit)", pid, want)
		case err != nil:
			return nil, fmt.Errorf("attach --managed %s: look up the unit of pid %d: %w", a.Name, pid, err)
		case unit != want:
			return nil, errorf(ErrDenied, "attach --managed refused: pid %d is not part of %s (it is in %s)", pid, want, unit)
		}
	}
	err = m.update(func(r *Registry) error {
		cur, ok := r.edit(a.Name)
		if !ok || !cur.Managed {
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
	m.changed() // after update's: the view's probe state was cleared too
	m.log.Info("attached", "name", a.Name, "unit", want, "pid", a.PID, "port", a.Port, "type", a.Type)
	msg := fmt.Sprintf("attached %s (%s, port %d, pid %d)", a.Name, a.Type, a.Port, a.PID)
	if st, ok := m.snapshot()[a.Name]; ok && st.MainPID > 0 && st.MainPID != a.PID {
		msg += fmt.Sprintf("; note: pid %d is not the main process of %s (pid %d), and the runtime counts as attached only when its main process attaches (exec the program from a wrapper script)", a.PID, want, st.MainPID)
	}
	return &wire.Result{Runtimes: []wire.Runtime{m.view(a.Name)}, Message: msg}, nil
}

// isDetach reports whether a remove of the attached (unmanaged) entry e
// comes from the attached process itself, directly or through a helper it
// runs (its child, such as `socketley remove` in a script): that is a
// detach, which forgets the entry and never signals anyone.
func isDetach(caller Caller, e *Entry) bool {
	if e.Managed || !sameProcess(e.PID, e.StartTime) {
		return false
	}
	if caller.PID == e.PID {
		return true
	}
	ppid, err := procParent(caller.PID)
	return err == nil && ppid == e.PID
}

// signalAttached sends sig, on behalf of caller, to the process of an
// attached entry, but only if it is still the process that attached: same
// pid, start time and uids (entries persisted before the uids were recorded
// have none to compare). Unless caller is root, the process must also run
// as the uid that attached it (every uid: real, effective, saved,
// filesystem), so the root daemon never signals for a user a process that
// this user could not. A pidfd pins the process between the checks and the
// signal, so a pid reused meanwhile is never signalled. A process that is
// gone is ErrNotFound; one whose uids do not match is ErrDenied.
func signalAttached(caller Caller, e *Entry, sig unix.Signal) error {
	gone := errorf(ErrNotFound, "attached process %d of %s is gone", e.PID, e.Name)
	fd, err := unix.PidfdOpen(e.PID, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return gone
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
		// No pidfd (kernel < 5.3, or seccomp): check, then kill.
		if !sameProcess(e.PID, e.StartTime) {
			return gone
		}
		if err := maySignal(caller, e); err != nil {
			return err
		}
		if err := unix.Kill(e.PID, sig); err != nil {
			return fmt.Errorf("signal pid %d: %w", e.PID, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("signal pid %d: pidfd_open: %w", e.PID, err)
	}
	defer unix.Close(fd)
	// The pidfd refers to whatever held the pid when it was opened; if the
	// pid still has the recorded start time now, that was our process, and
	// what /proc says of the pid from here on is about it (or, once it has
	// exited, the signal below fails with ESRCH).
	if !sameProcess(e.PID, e.StartTime) {
		return gone
	}
	if err := maySignal(caller, e); err != nil {
		return err
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return gone
		}
		return fmt.Errorf("signal pid %d: %w", e.PID, err)
	}
	return nil
}

// maySignal checks the uids of the live process of e (see signalAttached).
func maySignal(caller Caller, e *Entry) error {
	uids, err := proc.UIDs(e.PID)
	if err != nil {
		return errorf(ErrNotFound, "attached process %d of %s is gone", e.PID, e.Name)
	}
	if e.UIDs != nil && !slices.Equal(uids, e.UIDs) {
		return errorf(ErrDenied, "%s: pid %d now runs as uid %s, not as uid %s when it attached: not signalled (it is not the process that attached, or it changed its user)",
			e.Name, e.PID, uidList(uids), uidList(e.UIDs))
	}
	if !caller.root() && !allUID(uids, e.OwnerUID) {
		return errorf(ErrDenied, "%s: pid %d runs as uid %s, not as uid %d that attached it: not signalled (only root may)",
			e.Name, e.PID, uidList(uids), e.OwnerUID)
	}
	return nil
}

// procIdentity returns the start time and the uids of pid, read from /proc
// while a pidfd pins the process: if it is still alive after the reads, they
// were of that one process, not of one that took over its pid meanwhile.
func procIdentity(pid int) (uint64, []int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	pinned := err == nil
	switch {
	case pinned:
		defer unix.Close(fd)
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
		// No pidfd: the start time read before and after the uids tells.
	default:
		return 0, nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	start, err := procStartTime(pid)
	if err != nil {
		return 0, nil, err
	}
	uids, err := proc.UIDs(pid)
	if err != nil {
		return 0, nil, err
	}
	if pinned {
		if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
			return 0, nil, fmt.Errorf("pid %d: %w", pid, err)
		}
	} else if !sameProcess(pid, start) {
		return 0, nil, fmt.Errorf("pid %d exited", pid)
	}
	return start, uids, nil
}

// allUID reports whether every uid in uids is uid (and there is one).
func allUID(uids []int, uid int) bool {
	return len(uids) > 0 && !slices.ContainsFunc(uids, func(u int) bool { return u != uid })
}

// uidList formats uids as "1000" when they are all the same, else
// "1000/0/0/0" (real/effective/saved/filesystem).
func uidList(uids []int) string {
	if len(uids) > 0 && allUID(uids, uids[0]) {
		return strconv.Itoa(uids[0])
	}
	parts := make([]string, len(uids))
	for i, u := range uids {
		parts[i] = strconv.Itoa(u)
	}
	return strings.Join(parts, "/")
}

// procParent returns the parent pid of pid.
func procParent(pid int) (int, error) {
	st, err := proc.ReadStat(pid)
	return st.PPID, err
}
