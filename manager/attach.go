package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

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
// Unmanaged: a new entry bound to the pid (and its start time). The pid must
// be the caller's own, or its parent running as the same user (what
// `socketley attach` run from a script sends); root may name any process.
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
	if err := mayAttachPID(caller, a.PID); err != nil {
		return nil, err
	}
	start, err := procStartTime(a.PID)
	if err != nil {
		return nil, errorf(ErrInvalid, "attach: no process with pid %d", a.PID)
	}
	err = m.update(func(r *Registry) error {
		if old, ok := r.entries[a.Name]; ok {
			switch {
			case old.Managed:
				return errorf(ErrExists, "runtime already exists: %s (a managed runtime: only a process inside %s may attach to it, with --managed)", a.Name, units.Name(a.Name))
			case old.PID == a.PID && old.StartTime == start:
				// The same process attaches again (new port or type).
			case sameProcess(old.PID, old.StartTime):
				return errorf(ErrExists, "runtime already exists: %s (attached by pid %d, which is still running)", a.Name, old.PID)
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
	m.mu.Lock()
	if o := m.obs[a.Name]; o != nil {
		*o = observed{}
	}
	m.mu.Unlock()
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
		if uids, err := procUIDs(pid); err == nil && !slices.ContainsFunc(uids, func(u int) bool { return u != caller.UID }) {
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
		cur, ok := r.entries[a.Name]
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

// signalAttached sends sig to the process of an attached entry, but only if
// it is still the process that attached (pid and start time). A pidfd pins
// the process between that check and the signal, so a pid reused meanwhile
// is never signalled. A process that is gone is ErrNotFound.
func signalAttached(e *Entry, sig unix.Signal) error {
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
		if err := unix.Kill(e.PID, sig); err != nil {
			return fmt.Errorf("signal pid %d: %w", e.PID, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("signal pid %d: pidfd_open: %w", e.PID, err)
	}
	defer unix.Close(fd)
	// The pidfd refers to whatever held the pid when it was opened; if the
	// pid still has the recorded start time now, that was our process.
	if !sameProcess(e.PID, e.StartTime) {
		return gone
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return gone
		}
		return fmt.Errorf("signal pid %d: %w", e.PID, err)
	}
	return nil
}

// procParent returns the parent pid of pid (field 4 of /proc/PID/stat).
func procParent(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.Atoi(string(f[1]))
}

// procUIDs returns the real, effective, saved and filesystem uids of pid.
func procUIDs(pid int) ([]int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		var out []int
		for _, f := range bytes.Fields(rest) {
			u, err := strconv.Atoi(string(f))
			if err != nil {
				return nil, fmt.Errorf("parse /proc/%d/status: %w", pid, err)
			}
			out = append(out, u)
		}
		if len(out) == 0 {
			break
		}
		return out, nil
	}
	return nil, fmt.Errorf("parse /proc/%d/status: no Uid line", pid)
}
