package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// checkLimits refuses limits that would give a non-root caller of the
// system daemon more than systemd gives any service by default: its
// systemd applies them as root, so without this check a caller could lift
// its own unit above what it could set for itself. Memory limits and a CPU
// quota only restrict and are anyone's; a CPU weight above the default
// (100) takes CPU time from other users' services; a tasks or open-files
// limit above the manager's DefaultTasksMax or DefaultLimitNOFILE (hard)
// lifts a cap. The user daemon's callers are the user (and root): their
// own manager applies the limits with their rights.
func (m *Manager) checkLimits(caller Caller, l wire.Limits) error {
	if m.cfg.Mode != paths.System || caller.root() {
		return nil
	}
	if l.CPUWeight > wire.DefaultCPUWeight {
		return errorf(ErrDenied, "--cpu-weight %d: only root may give a weight above %d (the default) with the system daemon: it takes CPU time from other services; give 1-%d",
			l.CPUWeight, wire.DefaultCPUWeight, wire.DefaultCPUWeight)
	}
	if l.TasksMax == 0 && l.NOFILE == 0 {
		return nil
	}
	sd, err := m.systemd()
	if err != nil {
		return err
	}
	def, err := sd.DefaultLimits()
	if err != nil {
		return fmt.Errorf("check --tasks-max and --nofile against the manager's defaults: %w", err)
	}
	if l.TasksMax > def.TasksMax {
		return errorf(ErrDenied, "--tasks-max %s: only root may go above the system manager's default, %s (DefaultTasksMax=); give at most that",
			l.Args().TasksMax, def.Args().TasksMax)
	}
	if l.NOFILE > def.NOFILE {
		return errorf(ErrDenied, "--nofile %s: only root may go above the system manager's hard limit, %s (DefaultLimitNOFILE=); give at most that",
			l.Args().NOFILE, def.Args().NOFILE)
	}
	return nil
}

// set changes the limits of one managed runtime (socketley set NAME):
// saved first (the registry is what every later unit of the runtime is
// made from), then the cgroup limits (memory, CPU, tasks) applied to its
// loaded unit at once, without a restart. --nofile cannot change on a
// running process: it takes effect when a new unit is made for the
// runtime (a restart; for a --listen runtime, whose socket keeps its
// service loaded, the next stop and start), or at once with s.Restart,
// which restarts the runtime (a --listen runtime with its socket, so
// connections are refused for that moment). The reply's message says,
// line by line, what took effect and what waits.
func (m *Manager) set(ctx context.Context, caller Caller, s wire.SetSpec) (*wire.Result, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	lim, _, err := wire.ParseLimits(s.Limits)
	if err != nil {
		return nil, err
	}
	name := s.Name
	es, err := m.resolve(caller, []string{name}, "set")
	if err != nil {
		return nil, err
	}
	if !es[0].Managed {
		return nil, errorf(ErrInvalid, "%s is an attached process (pid %d), not a managed unit; socketley sets limits only on the units it runs", name, es[0].PID)
	}
	if err := m.checkLimits(caller, lim); err != nil {
		return nil, err
	}
	unlock := m.locks.lock(name)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	e, ok := m.entry(name)
	if !ok {
		return nil, errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
	}
	if e.Desired == DesiredRemoved {
		return nil, errorf(ErrInvalid, "%s is being removed (run socketley remove %s again to finish); its limits cannot change", name, name)
	}
	err = m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		cur.Limits = cur.Limits.With(lim)
		if s.Restart && cur.Desired == DesiredRunning {
			cur.Backoff = nil // an operator's restart retries at once
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e, _ = m.entry(name)
	log := m.log.With("name", name, "unit", units.Name(name))
	log.Info("limits set", "limits", lim.String(), "now", e.Limits.String())

	var notes []string
	if s.Restart && e.Desired == DesiredRunning {
		if err := m.restartForLimits(ctx, e); err != nil {
			res := &wire.Result{Runtimes: []wire.Runtime{m.view(name)}}
			unlock() // first: supervise skips a locked runtime
			locked = false
			m.poke() // a failed start is the backoff's now
			return res, &msgError{err: err, msg: fmt.Sprintf("set %s: %s saved; the restart failed: %v", name, lim, err)}
		}
		v := m.view(name)
		notes = append(notes, fmt.Sprintf("%s: %s saved and in effect: restarted (pid %d)", name, lim, v.PID))
		if len(e.Listen) > 0 {
			notes = append(notes, fmt.Sprintf("%s: its socket was closed and opened again with it (the limits of a --listen runtime's service change only then)", name))
		}
		return &wire.Result{Runtimes: []wire.Runtime{v}, Message: strings.Join(notes, "\n")}, nil
	}

	live := lim.Live()
	if !live.IsZero() {
		applied, err := m.applyLive(ctx, e)
		switch {
		case err != nil:
			return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}},
				&msgError{err: err, msg: fmt.Sprintf("set %s: %s saved, but systemd did not apply it to the unit now: %v; it applies at the next start", name, live, err)}
		case applied:
			notes = append(notes, fmt.Sprintf("%s: %s applied now (no restart)", name, live))
		default:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it applies when %s starts (it has no unit now)", name, live, name))
		}
	}
	if lim.NOFILE != 0 {
		st, loaded := m.snapshot()[name]
		nofile := wire.Limits{NOFILE: lim.NOFILE}
		switch {
		case !loaded || st.LoadState == units.LoadNotFound:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it applies when %s starts", name, nofile, name))
		case len(e.Listen) > 0:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it takes effect once its socket is closed and opened again: socketley stop %s, then socketley start %s (or set --restart)",
				name, nofile, name, name))
		default:
			notes = append(notes, fmt.Sprintf("%s: %s saved; it takes effect at the next restart (socketley restart %s, or set --restart)", name, nofile, name))
		}
	}
	if s.Restart {
		notes = append(notes, fmt.Sprintf("%s: not restarted: it is %s (socketley start %s starts it with these limits)", name, e.Desired, name))
	}
	return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}, Message: strings.Join(notes, "\n")}, nil
}

// applyLive sets the cgroup limits of e on its loaded unit; applied is
// false when no unit is loaded (the next one is made with them).
func (m *Manager) applyLive(ctx context.Context, e *Entry) (applied bool, err error) {
	sd, err := m.systemd()
	if err != nil {
		return false, err
	}
	err = sd.SetLimits(ctx, e.Name, e.Limits.Live())
	if errors.Is(err, units.ErrNoSuchUnit) {
		return false, nil
	}
	return err == nil, err
}

// restartForLimits restarts e as restart does, so that a new unit is made
// with its limits; a --listen runtime's socket is closed and opened again
// too (it keeps its service, and so the service's properties, loaded).
func (m *Manager) restartForLimits(ctx context.Context, e *Entry) error {
	if err := m.stopListen(ctx, e); err != nil {
		return err
	}
	if err := m.stopUnit(ctx, e.Name); err != nil {
		return err
	}
	if err := m.startUnit(ctx, e); err != nil {
		return m.explainStartErr(e, err)
	}
	m.log.Info("restarted for its limits", "name", e.Name)
	return nil
}
