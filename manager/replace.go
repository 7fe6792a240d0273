package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// setSpec gives e the settings of s (what add registers), with runAs
// and the parsed limits; identity, ownership, state and history stay.
func (e *Entry) setSpec(s wire.AddSpec, runAs string, limits wire.Limits) {
	e.Path, e.Args, e.Env, e.WorkDir = s.Path, s.Args, s.Env, s.WorkDir
	e.Credentials, e.EnvFiles, e.Harden = s.Credentials, s.EnvFiles, s.Harden
	e.Restart, e.RestartSec, e.User = s.Restart, s.RestartSec, runAs
	e.RestartMaxDelay, e.RestartReset, e.MaxRestarts = s.RestartMaxDelay, s.RestartReset, s.MaxRestarts
	e.StopTimeout = s.StopTimeout
	if e.StopTimeout == 0 {
		e.StopTimeout = wire.Duration(DefaultStopTimeout) // persisted: see stopUnit
	}
	e.ExpectAttach, e.AttachTimeout, e.HealthFails = s.ExpectAttach, s.AttachTimeout, s.HealthFails
	e.Listen, e.Limits, e.Properties = s.Listen, limits, s.Properties
}

// replace answers add with Replace: the managed runtime s.Name becomes
// what s says, in place, for its owner or root. Its restart count, exit
// history, creation time and events stay, where a remove and an add would
// start them over. s gets every check of add first (the addresses the
// runtime holds are not probed: they are its own). Then the old unit is
// stopped (its socket too), the entry switched, and the new unit started
// unless s.Start is false. When systemd refuses the new unit (nothing was
// started: a property it rejects, an address taken meanwhile), the old
// settings come back and the old unit is started again as it was; the
// error says so.
func (m *Manager) replace(ctx context.Context, caller Caller, s wire.AddSpec) (*wire.Result, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	es, err := m.resolve(caller, []string{s.Name}, "replace")
	if err != nil {
		return nil, err
	}
	if !es[0].Managed {
		return nil, errorf(ErrInvalid, "%s is an attached process (pid %d), not a managed unit; socketley cannot replace it", s.Name, es[0].PID)
	}
	runAs, limits, err := m.checkSpec(caller, &s, es[0].Listen...)
	if err != nil {
		return nil, fmt.Errorf("replace %s: %w", s.Name, err)
	}
	name := s.Name
	unlock := m.locks.lock(name)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	e, ok := m.entry(name)
	switch {
	case !ok:
		return nil, errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
	case e.Desired == DesiredRemoved:
		return nil, errorf(ErrInvalid, "%s is being removed (run socketley remove %s again to finish); it cannot be replaced", name, name)
	case e.PrevPath != "":
		return nil, errorf(ErrBusy, "an upgrade of %s is under way (from %s); wait for its reply, then replace it", name, e.PrevPath)
	}
	old := e.clone()
	log := m.log.With("name", name, "unit", units.Name(name))

	// The old unit goes first, under its own stop timeout.
	if err := m.stopListen(ctx, old); err != nil {
		return nil, fmt.Errorf("replace %s: stop its socket (nothing was replaced): %w", name, err)
	}
	if err := m.stopUnit(ctx, name); err != nil {
		if old.Desired == DesiredRunning && len(old.Listen) > 0 {
			// Its socket listens again.
			if serr := m.startUnit(ctx, old); serr != nil {
				log.Error("replace: start the old unit again", "err", serr)
			}
		}
		return nil, fmt.Errorf("replace %s: stop the old unit (nothing was replaced): %w", name, err)
	}
	if err := m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		cur.setSpec(s, runAs, limits)
		cur.Desired, cur.Backoff = DesiredStopped, nil
		if s.Start {
			cur.Desired, cur.Started = DesiredRunning, true
		}
		return nil
	}); err != nil {
		return nil, m.restoreOld(ctx, log, old, fmt.Errorf("recording the new settings failed: %w", err))
	}
	if len(old.Listen) > 0 && len(s.Listen) == 0 {
		m.removeExeLink(name)
	}
	log.Info("replaced", "path", s.Path, "start", s.Start)
	if !s.Start {
		return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}, Message: "replaced " + name + " (stopped)"}, nil
	}
	ne, _ := m.entry(name)
	if err := m.startUnit(ctx, ne); err != nil {
		var serr *socketError
		if errors.Is(err, units.ErrInvalid) || errors.As(err, &serr) {
			// Nothing of the new one started: the old one comes back.
			m.dropListen(ctx, ne)
			return nil, m.restoreOld(ctx, log, old, fmt.Errorf("systemd refused the new unit: %w", err))
		}
		// It may have started, or be left to the backoff: the new
		// settings stay, as after add.
		res := &wire.Result{Runtimes: []wire.Runtime{m.view(name)}}
		unlock() // first: supervise skips a locked runtime
		locked = false
		m.poke()
		return res, fmt.Errorf("replace %s: replaced, but %w", name, m.explainStartErr(ne, err))
	}
	return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}, Message: "replaced " + name}, nil
}

// restoreOld gives the runtime its settings before a replace that failed
// (why) and starts it again if it was wanted running; the error says what
// became of it. The caller holds the runtime's lock.
func (m *Manager) restoreOld(ctx context.Context, log *slog.Logger, old *Entry, why error) error {
	name := old.Name
	log.Warn("replace: failed; the old settings come back", "err", why)
	state := "not started again (it was stopped)"
	if err := m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		keep := *cur // the counters and history of the stop
		*cur = *old.clone()
		cur.Restarts, cur.HealthRestarts, cur.LastExit, cur.Exit, cur.Backoff = keep.Restarts, keep.HealthRestarts, keep.LastExit, keep.Exit, nil
		cur.History = slices.Clone(keep.History)
		return nil
	}); err != nil {
		return &msgError{err: errorf(ErrFailed, "replace failed"), msg: fmt.Sprintf("replace %s: %v; restoring the old settings failed too (%v): socketley show %s says what it is now", name, why, err, name)}
	}
	if old.Desired == DesiredRunning {
		e, _ := m.entry(name)
		state = "running again"
		if err := m.startUnit(ctx, e); err != nil {
			state = fmt.Sprintf("which did not start: %v", err)
			m.poke()
		}
	}
	return &msgError{err: errorf(ErrFailed, "replace failed"), msg: fmt.Sprintf("replace %s: %v; the old settings are back, %s", name, why, state)}
}
