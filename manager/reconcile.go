package manager

import (
	"context"
	"errors"
	"sync"

	"github.com/socketley/socketley/units"
)

// reconcileWorkers bounds how many units reconcile starts or stops at once.
const reconcileWorkers = 8

// reconcile brings systemd in line with the registry, at daemon start and
// after a reconnect.
//
// NOTE assumptions:
//   - the watch snapshot is fresh (filled when the watch began: one listing,
//     then every unit read, pipelined);
//   - an active, activating, restarting or failed unit is the user's process
//     (or its visible failure): adopt it, never restart it; an adopted
//     unit gets the entry's cgroup limits again (a set that was saved but
//     not applied), a started one has them from its creation;
//   - a missing unit of a desired-running entry was lost with the manager (a
//     reboot drops transient units): start it;
//   - a desired-stopped entry must not run: stop its unit if one is up;
//   - an entry marked removed (a remove interrupted by a crash or a failed
//     write) is finished: its unit stopped, the entry dropped;
//   - an entry waiting in the crash backoff (or given up on) is left to
//     supervise, which keeps the persisted schedule;
//   - attached (unmanaged) entries whose process is gone are forgotten;
//   - socketley-* units with no entry are orphans: reported, never stopped;
//   - a runtime with --listen has its socket open while it should run (also
//     while it waits in the crash backoff) and closed otherwise; see
//     reconcileListen;
//   - a replace the daemon did not finish (Prev set) gets its old
//     settings back (see finishReplace);
//   - an upgrade the daemon did not finish (PrevPath set) is switched back
//     to the old executable, which is restarted if the unit is up: the new
//     one was never confirmed running (see finishUpgrade).
//
// Each entry is handled on its own; a failure is logged and marks only that
// entry (its STATUS shows it), never the whole reconcile.
func (m *Manager) reconcile(ctx context.Context) {
	snap := m.snapshot()
	m.mu.RLock()
	entries := make([]*Entry, 0, m.reg.len())
	for _, e := range m.reg.sorted() {
		entries = append(entries, e.clone())
	}
	for name, st := range snap {
		if !m.reg.has(name) && st.LoadState != "not-found" {
			m.log.Info("orphan unit: not in the registry, left alone", "name", name, "unit", st.Unit, "state", st.ActiveState)
		}
	}
	m.mu.RUnlock()

	var gone []string
	jobs := make(chan *Entry)
	var wg sync.WaitGroup
	for range reconcileWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				m.reconcileOne(ctx, e, snap)
			}
		}()
	}
	adopted := 0
	for _, e := range entries {
		if e.Desired == DesiredRemoved {
			// A remove that did not finish: finish it, never start it.
			jobs <- e
			continue
		}
		if !e.Managed {
			if !sameProcess(e.PID, e.StartTime) {
				gone = append(gone, e.Name)
			}
			continue
		}
		if e.PrevPath != "" || e.Prev != nil || len(e.Listen) > 0 {
			// An interrupted upgrade, or a socket to check: reconcileOne
			// decides the rest.
			jobs <- e
			continue
		}
		st, ok := snap[e.Name]
		loaded := ok && st.LoadState != "not-found"
		if e.Desired == DesiredRunning && loaded && (isUp(st) || st.Restarting || st.ActiveState == "failed") {
			adopted++
			if hasLive(e) {
				// Adopted by reconcileOne, which applies its limits again.
				jobs <- e
				continue
			}
			m.log.Debug("adopted", "name", e.Name, "unit", st.Unit, "pid", st.MainPID, "state", st.ActiveState)
			continue
		}
		if e.Desired == DesiredStopped && !(loaded && isUp(st)) {
			continue
		}
		if backoffOwns(e) {
			m.log.Info("reconcile: left to the crash backoff", "name", e.Name, "next", e.Backoff.NextAt, "gave_up", e.Backoff.GaveUp)
			continue
		}
		jobs <- e
	}
	close(jobs)
	wg.Wait()
	if len(gone) > 0 {
		if err := m.update(func(r *Registry) error {
			for _, n := range gone {
				r.del(n)
			}
			return nil
		}); err != nil {
			m.log.Error("forget exited attached processes", "err", err)
		}
	}
	m.log.Info("reconciled", "entries", len(entries), "adopted", adopted, "forgotten", len(gone))
}

// backoffOwns reports whether the crash backoff owns e: a pending start
// keeps its time (supervise starts it when due); a runtime given up on
// stays down.
func backoffOwns(e *Entry) bool {
	b := e.Backoff
	return e.Desired == DesiredRunning && b != nil && (b.GaveUp || !b.NextAt.IsZero())
}

// reconcileOne starts a missing desired-running unit, stops a running
// desired-stopped one, or finishes an interrupted remove.
func (m *Manager) reconcileOne(ctx context.Context, e *Entry, snap map[string]units.Status) {
	unlock := m.locks.lock(e.Name)
	defer unlock()
	log := m.log.With("name", e.Name, "unit", units.Name(e.Name))
	// The entry as it is now that its lock is held: a stop or an upgrade
	// may have changed it since the reconcile's list was taken.
	e, ok := m.entry(e.Name)
	if !ok {
		return
	}
	m.mu.RLock()
	upgrading := m.upgrading[e.Name]
	m.mu.RUnlock()
	if upgrading {
		// An upgrade of this daemon is waiting for the new process (it
		// released the lock): it confirms or switches back itself.
		log.Info("reconcile: an upgrade is under way; left to it")
		return
	}
	if e.Desired == DesiredRemoved {
		// On behalf of the owner, who asked for the removal.
		if _, err := m.finishRemove(ctx, Caller{UID: e.OwnerUID}, e); err != nil {
			log.Error("reconcile: finish an interrupted remove", "err", err)
			return
		}
		log.Info("reconcile: finished an interrupted remove")
		return
	}
	if e.PrevPath != "" {
		if !m.finishUpgrade(ctx, e) {
			return
		}
		e, _ = m.entry(e.Name)
		if e == nil {
			return
		}
	}
	if e.Prev != nil {
		if !m.finishReplace(ctx, e) {
			return
		}
		e, _ = m.entry(e.Name)
		if e == nil {
			return
		}
		// What the snapshot says of the unit is from before the stop.
		snap = m.snapshot()
	}
	// A listen runtime's socket first: open while it should run, closed
	// otherwise (before its service is stopped: it would start it again).
	m.reconcileListen(ctx, e)
	st, ok := snap[e.Name]
	loaded := ok && st.LoadState != units.LoadNotFound
	switch {
	case e.Desired == DesiredRunning && loaded && (isUp(st) || st.Restarting || st.ActiveState == units.ActiveFailed):
		log.Debug("adopted", "pid", st.MainPID, "state", st.ActiveState)
		m.reapplyLimits(ctx, e)
		return
	case e.Desired == DesiredStopped && !(loaded && isUp(st)):
		return
	case backoffOwns(e):
		log.Info("reconcile: left to the crash backoff", "next", e.Backoff.NextAt, "gave_up", e.Backoff.GaveUp)
		return
	}
	if e.Desired == DesiredStopped {
		if err := m.stopUnit(ctx, e.Name); err != nil {
			log.Error("reconcile: stop desired-stopped unit", "err", err)
			return
		}
		log.Info("reconcile: stopped (desired state is stopped)")
		return
	}
	// Ask systemd once more before starting: the snapshot is a cache, and a
	// unit it missed (e.g. read during a daemon-reload) must be adopted, not
	// started a second time.
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w != nil {
		if st, err := w.Refresh(ctx, e.Name); err == nil && st.LoadState != units.LoadNotFound &&
			(isUp(st) || st.Restarting || st.ActiveState == units.ActiveFailed) {
			log.Info("reconcile: adopted (confirmed with systemd)", "pid", st.MainPID, "state", st.ActiveState)
			m.reapplyLimits(ctx, e)
			return
		}
	}
	if err := m.startUnit(ctx, e); err != nil {
		if errors.Is(err, units.ErrUnitExists) {
			log.Info("reconcile: unit appeared meanwhile; adopted")
			return
		}
		log.Error("reconcile: start missing unit", "err", err)
		return
	}
	log.Info("reconcile: started missing unit", "was", snap[e.Name].ActiveState)
}

// reapplyLimits sets the cgroup limits of an adopted unit from its entry:
// a set whose change was saved but not applied (the daemon died between
// the two, or systemd refused it then) is carried out now. A unit that is
// started gets them at its creation; nofile waits for that.
func (m *Manager) reapplyLimits(ctx context.Context, e *Entry) {
	if !hasLive(e) {
		return
	}
	if _, err := m.applyLive(ctx, e); err != nil {
		m.log.Error("reconcile: apply limits", "name", e.Name, "limits", e.Limits.Live().String(), "err", err)
	}
}
