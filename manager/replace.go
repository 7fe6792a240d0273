package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

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

// checkAsOwner makes add's checks on s as the user uid would (its groups
// from the user database), with the user's own default run-as.
func (m *Manager) checkAsOwner(uid int, s wire.AddSpec, held []string) error {
	u, err := lookupUserID(strconv.Itoa(uid))
	if err != nil {
		return errorf(ErrInvalid, "uid %d has no user name (%v)", uid, err)
	}
	c := Caller{UID: uid}
	c.GID, _ = strconv.Atoi(u.Gid)
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.Atoi(id); err == nil {
				c.Groups = append(c.Groups, g)
			}
		}
	}
	s.RunAs = ""
	_, _, err = m.checkSpec(c, &s, held...)
	return err
}

// restoreSettings gives e back the settings (and owner and state) of prev,
// the entry before a replace, keeping what happened since: the restart
// count and history, the last exit, the attach report. Prev is cleared.
func (e *Entry) restoreSettings(prev *Entry) {
	keep := *e
	*e = *prev.clone()
	e.Prev, e.PrevPath, e.Backoff = nil, keep.PrevPath, nil
	e.Restarts, e.HealthRestarts, e.LastExit, e.Exit = keep.Restarts, keep.HealthRestarts, keep.LastExit, keep.Exit
	e.History = slices.Clone(keep.History)
	e.Type, e.Port, e.AttachPID, e.AttachedAt = keep.Type, keep.Port, keep.AttachPID, keep.AttachedAt
}

// replaceWait bounds the steps of a replace that must not be cut short by
// the request's end (the old unit coming back).
const replaceWait = DefaultWaitTimeout

// replace answers add with Replace: the managed runtime s.Name becomes
// what s says, in place, for its owner or root. Its restart count, exit
// history, creation time and events stay, where a remove and an add would
// start them over. s gets every check of add first (the addresses the
// runtime holds are not probed: they are its own); a refusal changes
// nothing. Then the old unit is stopped (its socket too), the entry
// switched, and the new unit started unless s.Start is false.
//
// Root replacing another user's runtime keeps that user as owner, and the
// unit runs as that user unless s.RunAs names another; then root owns the
// runtime from now on (as after remove and add), so that no user owns a
// unit running as someone else.
//
// When systemd refuses the new unit (nothing was started: a property it
// rejects, an address taken meanwhile), the old settings come back and the
// old unit is started again as it was; the error says so. The old settings
// are persisted with the new ones (Entry.Prev) until the new unit started:
// a daemon that dies in between restores them at its next start
// (finishReplace).
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
	owner := es[0].OwnerUID
	if caller.UID != owner {
		// Root on another user's runtime: it runs as that user, unless
		// root chose another one, who then is root's to answer for.
		ownerUser, err := m.runUser(Caller{UID: owner}, wire.AddSpec{})
		if err != nil {
			return nil, fmt.Errorf("replace %s: %w", s.Name, err)
		}
		switch {
		case s.RunAs == "":
			runAs = ownerUser
		case runAs != ownerUser:
			owner = caller.UID
		}
		if owner != caller.UID {
			// The owner keeps it, and may upgrade it or set it later:
			// what it runs with must be what the owner may give it
			// (files the owner can read, properties, addresses).
			if err := m.checkAsOwner(owner, s, es[0].Listen); err != nil {
				return nil, fmt.Errorf("replace %s: it stays uid %d's, who could not add it so: %w; "+
					"give run_as to take it over (then it is root's), or have its owner replace it", s.Name, owner, err)
			}
		}
	}
	name := s.Name
	lk := &heldLock{locks: &m.locks, name: name}
	lk.take()
	defer lk.release()
	e, ok := m.entry(name)
	switch {
	case !ok:
		return nil, errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
	case e.Desired == DesiredRemoved:
		return nil, errorf(ErrInvalid, "%s is being removed (run socketley remove %s again to finish); it cannot be replaced", name, name)
	case e.PrevPath != "":
		return nil, errorf(ErrBusy, "an upgrade of %s is under way (from %s); wait for its reply, then replace it", name, e.PrevPath)
	case e.OwnerUID != es[0].OwnerUID || !slices.Equal(e.Listen, es[0].Listen):
		return nil, errorf(ErrBusy, "%s changed while it was checked; run the replace again", name)
	}
	old := e.clone()
	old.Prev = nil // a stale one (a replace whose record failed) is not history
	log := m.log.With("name", name, "unit", units.Name(name))
	by := fmt.Sprintf("by uid %d", caller.UID)
	wasUp := m.view(name).PID > 0

	// The old unit goes first, under its own stop timeout.
	if err := m.stopListen(ctx, old); err != nil {
		return nil, fmt.Errorf("replace %s: stop its socket (nothing was replaced): %w", name, err)
	}
	if err := m.stopUnit(ctx, name); err != nil {
		msg := ""
		if old.Desired == DesiredRunning && len(old.Listen) > 0 {
			// Its socket listens again.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replaceWait)
			serr := m.startUnit(bctx, old)
			cancel()
			if serr != nil {
				log.Error("replace: start the old unit again", "err", serr)
				msg = fmt.Sprintf("; its socket could not be opened again (%v): socketley restart %s", serr, name)
			}
		}
		return nil, fmt.Errorf("replace %s: stop the old unit (nothing was replaced%s): %w", name, msg, err)
	}
	if wasUp {
		m.emitFor(m.view(name), wire.EventStopped, "socketley replace "+by+": stopped for its new settings")
	}
	if err := m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		cur.setSpec(s, runAs, limits)
		cur.OwnerUID, cur.Prev = owner, old.clone()
		cur.Desired, cur.Backoff = DesiredStopped, nil
		if s.Start {
			cur.Desired, cur.Started = DesiredRunning, true
		}
		return nil
	}); err != nil {
		// Nothing was recorded: the entry is the old one still.
		err := m.restoreOld(ctx, log, old, false, fmt.Errorf("recording the new settings failed (nothing was replaced): %w", err))
		lk.release() // first: supervise skips a locked runtime
		m.poke()
		return nil, err
	}
	if len(old.Listen) > 0 && len(s.Listen) == 0 {
		m.removeExeLink(name)
	}
	log.Info("replaced", "path", s.Path, "start", s.Start, "owner", owner, "user", runAs)
	ne, _ := m.entry(name)
	var startErr error
	if s.Start {
		startErr = m.startUnit(ctx, ne)
		var serr *socketError
		if startErr != nil && (errors.Is(startErr, units.ErrInvalid) || errors.As(startErr, &serr)) {
			// Nothing of the new one started: the old one comes back.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replaceWait)
			m.dropListen(dctx, ne)
			cancel()
			err := m.restoreOld(ctx, log, old, true, fmt.Errorf("systemd refused the new unit: %w", startErr))
			lk.release() // first: supervise skips a locked runtime
			m.poke()
			return nil, err
		}
	}
	// The new settings are in place: no way back from here.
	recordErr := m.update(func(r *Registry) error {
		if cur, ok := r.edit(name); ok {
			cur.Prev = nil
		}
		return nil
	})
	if recordErr != nil {
		log.Error("replace: record that the new unit started (a daemon that restarts before the next write restores the old settings)", "err", recordErr)
	}
	note := ""
	if owner != es[0].OwnerUID {
		note = fmt.Sprintf(" (it runs as %s, and belongs to uid %d now, no longer to uid %d)", runAs, owner, es[0].OwnerUID)
	}
	v := m.view(name)
	switch {
	case startErr != nil:
		// It may have started, or be left to the backoff: the new
		// settings stay, as after add.
		if v.PID > 0 {
			m.emitFor(v, wire.EventStarted, "socketley replace (new settings) "+by)
		}
		lk.release() // first: supervise skips a locked runtime
		m.poke()
		return &wire.Result{Runtimes: []wire.Runtime{v}}, fmt.Errorf("replace %s: replaced%s, but %w", name, note, m.explainStartErr(ne, startErr))
	case s.Start:
		m.emitFor(v, wire.EventStarted, "socketley replace (new settings) "+by)
	}
	res := &wire.Result{Runtimes: []wire.Runtime{v}, Message: "replaced " + name + note}
	if !s.Start {
		res.Message = "replaced " + name + " (stopped)" + note
	}
	if recordErr != nil {
		return res, fmt.Errorf("replace %s: replaced%s, but recording that it is done failed (%w): "+
			"should this daemon restart before its next write, it gives %s its old settings back", name, note, recordErr, name)
	}
	return res, nil
}

// restoreOld gives the runtime its settings before a replace that failed
// (why) back, when they were replaced in the registry (recorded), and
// starts it again if it was wanted running; the error (class failed) says
// what became of it. The caller holds the runtime's lock, and pokes the
// backoff once it has released it (a failed start is the backoff's).
func (m *Manager) restoreOld(ctx context.Context, log *slog.Logger, old *Entry, recorded bool, why error) error {
	name := old.Name
	log.Warn("replace: failed; the old settings come back", "err", why)
	// The request's context may be spent: this gets its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replaceWait+units.StopWait(MaxStopTimeout))
	defer cancel()
	fail := func(state string) error {
		return &msgError{err: errorf(ErrFailed, "replace failed"), msg: fmt.Sprintf("replace %s: %v; %s", name, why, state)}
	}
	if recorded {
		if err := m.update(func(r *Registry) error {
			cur, ok := r.edit(name)
			if !ok {
				return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
			}
			cur.restoreSettings(old)
			return nil
		}); err != nil {
			return fail(fmt.Sprintf("restoring the old settings failed too (%v); the daemon restores them at its next start: socketley show %s says what it is now", err, name))
		}
	}
	if old.Desired != DesiredRunning {
		return fail("the old settings are back (it stays stopped, as it was)")
	}
	e, _ := m.entry(name)
	if err := m.startUnit(ctx, e); err != nil {
		return fail(fmt.Sprintf("the old settings are back, but it did not start: %v", err))
	}
	m.emitFor(m.view(name), wire.EventStarted, "socketley replace failed: started again with its old settings")
	return fail("the old settings are back, running again")
}

// finishReplace restores the old settings of a replace the daemon did not
// finish (e.Prev set at its start: it died between switching the settings
// and starting the new unit): the new unit was never confirmed started.
// Later (a reconcile after a reconnect to systemd), e.Prev is a replace
// this daemon saw through whose record failed: it is cleared. Whatever unit
// runs under the new settings is stopped (its socket too); the usual
// reconcile then starts the old settings if it should run. It reports
// whether the reconcile should go on with the entry. The caller holds e's
// lock.
func (m *Manager) finishReplace(ctx context.Context, e *Entry) bool {
	log := m.log.With("name", e.Name, "unit", units.Name(e.Name))
	if m.booted.Load() {
		// This daemon made the replace and saw the new unit start (only
		// the record of it failed): the new settings stay.
		if err := m.update(func(r *Registry) error {
			if cur, ok := r.edit(e.Name); ok {
				cur.Prev = nil
			}
			return nil
		}); err != nil {
			log.Error("reconcile: record a finished replace", "err", err)
		}
		return true
	}
	log.Warn("reconcile: a replace was interrupted; restoring the settings from before it", "path", e.Prev.Path, "new", e.Path)
	if err := m.stopListen(ctx, e); err != nil {
		log.Error("reconcile: stop the socket of an interrupted replace", "err", err)
		return false
	}
	if err := m.stopUnit(ctx, e.Name); err != nil {
		log.Error("reconcile: stop the unit of an interrupted replace", "err", err)
		return false
	}
	if len(e.Listen) > 0 && len(e.Prev.Listen) == 0 {
		m.removeExeLink(e.Name)
	}
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.edit(e.Name); ok && cur.Prev != nil {
			cur.restoreSettings(cur.Prev)
		}
		return nil
	}); err != nil {
		log.Error("reconcile: restore the settings of an interrupted replace", "err", err)
		return false
	}
	return true
}
