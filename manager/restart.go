package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// The restart policy (docs/restart-policy.md).
//
// systemd restarts a crashed runtime at once (Restart=, RestartSec= default 0)
// as long as the run that crashed lasted its reset period: every unit has
// StartLimitBurst=1 and StartLimitIntervalSec=reset, so a second start within
// the reset period is refused and the unit is left failed. The daemon takes
// over from there (the backoff): it counts consecutive failed runs in the
// entry, persisted, and starts the unit again after 0, 100 ms, 200 ms, …
// doubling up to the runtime's maximum delay (30 s by default), forever
// unless --max-restarts says otherwise. A health restart is a failed run
// too. The count starts over once the runtime has been running (healthy, and
// attached when it attaches) for its reset period. On systemd 252, which
// cannot change RestartUSec of a transient unit, this is the only way to get
// a growing delay. On systemd ≥ 254 units get systemd's own backoff instead
// (restart_native.go) unless the daemon runs with --restart-backoff daemon.

// Restart policy defaults.
const (
	// DefaultRestartSec is RestartSec= when add does not give one: at once.
	DefaultRestartSec = 0
	// DefaultRestartMaxDelay caps the backoff delay (wire's, which the CLI
	// shows as its flag's default).
	DefaultRestartMaxDelay = wire.DefaultRestartMaxDelay
	// DefaultRestartReset is how long a runtime must run before its backoff
	// starts over (and before systemd restarts it again by itself).
	DefaultRestartReset = wire.DefaultRestartReset
	// backoffBase is the delay after the second consecutive failed run; each
	// further one doubles it.
	backoffBase = 100 * time.Millisecond
)

// Backoff is the persisted crash backoff state of an entry.
type Backoff struct {
	// Failures counts consecutive failed runs (runs shorter than the reset
	// period, and health restarts), the latest included.
	Failures int `json:"failures"`
	// NextAt is when the daemon starts the runtime again; zero when no
	// start is pending.
	NextAt time.Time `json:"next_at,omitzero"`
	// GaveUp is set when MaxRestarts was reached: the runtime stays down
	// until socketley start or restart.
	GaveUp bool `json:"gave_up,omitempty"`
}

// backoffDelay is the delay before the start that follows the n-th
// consecutive failed run: 0 for the first, then 100 ms, 200 ms, 400 ms, …
// capped at maxDelay.
func backoffDelay(n int, maxDelay time.Duration) time.Duration {
	if n <= 1 {
		return 0
	}
	d := backoffBase
	for i := 2; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// restartMaxDelay returns e's backoff cap.
func restartMaxDelay(e *Entry) time.Duration {
	if d := time.Duration(e.RestartMaxDelay); d > 0 {
		return d
	}
	return DefaultRestartMaxDelay
}

// Stop timeout: TimeoutStopSec= of every unit (add --stop-timeout).
const (
	// DefaultStopTimeout is how long a stop waits after SIGTERM before
	// SIGKILL when add does not say.
	DefaultStopTimeout = wire.DefaultStopTimeout
	// MaxStopTimeout bounds --stop-timeout, so that a stop (which can take
	// twice the stop timeout, see units.StopWait) ends within the CLI's
	// request deadline.
	MaxStopTimeout = wire.MaxStopTimeout
)

// stopTimeout returns e's stop timeout.
func stopTimeout(e *Entry) time.Duration {
	if d := time.Duration(e.StopTimeout); d > 0 {
		return d
	}
	return DefaultStopTimeout
}

// restartReset returns e's reset period.
func restartReset(e *Entry) time.Duration {
	if d := time.Duration(e.RestartReset); d > 0 {
		return d
	}
	return DefaultRestartReset
}

// exitedListen reports whether st is the service of a listen runtime under
// the daemon's backoff that exited cleanly while its policy is
// Restart=always: such a service has Restart=no (see listen.go), so it is
// left inactive, and the backoff starts it as systemd's Restart=always
// would have.
func exitedListen(e *Entry, st units.Status) bool {
	return len(e.Listen) > 0 && e.Restart == wire.RestartAlways && e.Started && !nativeUnit(&st) &&
		st.ActiveState == units.ActiveInactive && st.LoadState != units.LoadNotFound
}

// restarts reports whether e's policy restarts it after a failure.
func restarts(e *Entry) bool {
	return e.Managed && (e.Restart.Restarts()) && e.Desired == DesiredRunning
}

// failure records one more failed run of e at now and decides what follows:
// the next start's time, or giving up. accepted is the number of automatic
// restarts systemd did for the unit that failed (acceptedRestarts): it does
// one only after a run of at least the reset period, so then this failure
// follows a long run, and is the second in a row (systemd's restart was the
// first). It returns the delay (meaningless when e gave up).
func failure(e *Entry, now time.Time, accepted int) time.Duration {
	b := e.Backoff
	if b == nil {
		b = &Backoff{}
		e.Backoff = b
	}
	if accepted > 0 {
		b.Failures = 1
	}
	b.Failures++
	if e.MaxRestarts > 0 && b.Failures > e.MaxRestarts {
		b.GaveUp, b.NextAt = true, time.Time{}
		return 0
	}
	d := backoffDelay(b.Failures, restartMaxDelay(e))
	b.NextAt = now.Add(d)
	return d
}

// acceptedRestarts is the number of automatic restarts systemd really did
// for a unit. NRestarts also counts the restart that the start limit
// refused, which is how a unit under a restart policy ends failed
// (units reports that Result as start-limit-hit).
func acceptedRestarts(st units.Status) int {
	if st.ActiveState == units.ActiveFailed && st.Result == units.ResultStartLimitHit && st.NRestarts > 0 {
		return st.NRestarts - 1
	}
	return st.NRestarts
}

// gaveUpReason words a runtime the daemon stopped restarting.
func gaveUpReason(e *Entry) string {
	return fmt.Sprintf("gave up after %d failed runs in a row (--max-restarts %d); fix it, then socketley start %s",
		e.Backoff.Failures, e.MaxRestarts, e.Name)
}

// supervise runs the backoff: it schedules a start for every runtime whose
// unit systemd gave up on (failed while it should run), starts those that
// are due, and returns when the next one is due (zero: none is pending).
// It runs on the daemon's loop goroutine.
func (m *Manager) supervise(ctx context.Context) time.Time {
	snap := m.snapshot()
	now := time.Now()
	type failed struct {
		name      string
		nrestarts int
		lastExit  string
	}
	var fresh []failed
	var due []string
	var next time.Time
	// The scan runs on every watch change: a read lock only.
	m.mu.RLock()
	for e := range m.reg.all() {
		if !restarts(e) || m.starting[e.Name] || (e.Backoff != nil && e.Backoff.GaveUp) {
			continue
		}
		if e.Backoff != nil && !e.Backoff.NextAt.IsZero() {
			if !e.Backoff.NextAt.After(now) {
				due = append(due, e.Name)
			} else if next.IsZero() || e.Backoff.NextAt.Before(next) {
				next = e.Backoff.NextAt
			}
			continue
		}
		st, ok := snap[e.Name]
		if !ok || (st.ActiveState != units.ActiveFailed && !exitedListen(e, st)) || m.locks.busy(e.Name) {
			continue
		}
		fresh = append(fresh, failed{e.Name, acceptedRestarts(st), st.LastExit()})
	}
	giveUps := m.nativeGiveUps(snap)
	m.mu.RUnlock()
	if len(due) > 0 || len(giveUps) > 0 {
		// Only this goroutine adds to starting, so the names are still free.
		m.mu.Lock()
		for _, n := range due {
			m.starting[n] = true
		}
		for _, n := range giveUps {
			m.starting[n] = true
		}
		m.mu.Unlock()
	}
	for _, name := range giveUps {
		m.heals.Add(1)
		go func() {
			defer m.heals.Done()
			m.nativeGiveUp(ctx, name)
		}()
	}

	if len(fresh) > 0 {
		type decision struct {
			name  string
			delay time.Duration
			gave  bool
			fails int
		}
		var ds []decision
		err := m.update(func(r *Registry) error {
			ds = ds[:0]
			for _, f := range fresh {
				e, ok := r.get(f.name)
				if !ok || !restarts(e) || (e.Backoff != nil && (e.Backoff.GaveUp || !e.Backoff.NextAt.IsZero())) {
					continue
				}
				e, _ = r.edit(f.name)
				if f.lastExit != "" {
					e.LastExit = f.lastExit
				}
				d := failure(e, now, f.nrestarts)
				ds = append(ds, decision{f.name, d, e.Backoff.GaveUp, e.Backoff.Failures})
			}
			return nil
		})
		if err != nil {
			m.log.Error("crash backoff: persist", "err", err)
		}
		for _, d := range ds {
			m.emitBackoff(d.name, d.gave, d.fails, d.delay)
			if d.gave {
				m.log.Warn("crash loop: giving up (max restarts reached); socketley start retries", "name", d.name, "failures", d.fails)
				m.closeGivenUpAsync(ctx, d.name)
				continue
			}
			m.log.Warn("crash loop: restarting after backoff", "name", d.name, "failures", d.fails, "delay", d.delay)
			if d.delay <= 0 {
				m.mu.Lock()
				if !m.starting[d.name] {
					m.starting[d.name] = true
					due = append(due, d.name)
				}
				m.mu.Unlock()
			} else if at := now.Add(d.delay); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	for _, name := range due {
		m.heals.Add(1)
		go func() {
			defer m.heals.Done()
			m.backoffStart(ctx, name)
		}()
	}
	return next
}

// doneStarting ends a job the supervisor launched for name (it put name in
// m.starting): the name is free again and, with poke, the supervisor looks
// once more at once (a job that failed leaves it to the next change or tick,
// so that a failing call is not retried in a tight loop).
func (m *Manager) doneStarting(name string, poke bool) {
	m.mu.Lock()
	delete(m.starting, name)
	m.mu.Unlock()
	if poke {
		m.poke()
	}
}

// backoffStart starts a runtime whose backoff delay is over. It confirms
// with systemd first: a unit that is up again (started by the user, say)
// only ends the wait.
func (m *Manager) backoffStart(ctx context.Context, name string) {
	defer m.doneStarting(name, true)
	unlock := m.locks.lock(name)
	defer unlock()
	e, ok := m.entry(name)
	if !ok || !restarts(e) || e.Backoff == nil || e.Backoff.NextAt.IsZero() || e.Backoff.GaveUp {
		return
	}
	log := m.log.With("name", name, "unit", units.Name(name))
	st, err := m.refreshStatus(ctx, name)
	if err == nil && (isUp(st) || st.Restarting) {
		log.Info("crash backoff: the unit is up again; no start needed", "pid", st.MainPID)
		m.clearNextStart(name)
		return
	}
	// The failed unit goes away with its NRestarts: keep them in the entry.
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.get(name); !ok || cur.Backoff == nil {
			return nil
		}
		cur, _ := r.edit(name)
		cur.Restarts += acceptedRestarts(st) + 1
		if le := st.LastExit(); le != "" {
			cur.LastExit = le
		}
		cur.Backoff.NextAt = time.Time{}
		return nil
	}); err != nil {
		log.Error("crash backoff: persist", "err", err)
		return
	}
	e, _ = m.entry(name)
	if sd, err := m.systemd(); err == nil {
		if err := sd.ResetFailed(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
			log.Debug("crash backoff: reset-failed", "err", err)
		}
	}
	if err := m.startUnit(ctx, e); err != nil {
		log.Error("crash backoff: start failed", "failures", e.Backoff.Failures, "err", err)
		// The start itself failed (the binary cannot be executed, say):
		// that is one more failed run.
		var d time.Duration
		var gave bool
		if uerr := m.update(func(r *Registry) error {
			if cur, ok := r.get(name); !ok || !restarts(cur) {
				return nil
			}
			cur, _ := r.edit(name)
			cur.LastExit = "start failed: " + err.Error()
			var je *units.JobError
			if errors.As(err, &je) && je.Status.LastExit() != "" {
				cur.LastExit = je.Status.LastExit() // exited during its start job
			}
			d = failure(cur, time.Now(), 0)
			gave = cur.Backoff.GaveUp
			return nil
		}); uerr != nil {
			log.Error("crash backoff: persist", "err", uerr)
		}
		if e, ok := m.entry(name); ok && e.Backoff != nil {
			m.emitBackoff(name, gave, e.Backoff.Failures, d)
		}
		if gave {
			log.Warn("crash loop: giving up (max restarts reached); socketley start retries")
			m.closeGivenUp(ctx, name)
		} else {
			log.Warn("crash loop: next start after backoff", "delay", d)
		}
		return
	}
	log.Info("crash backoff: started", "failures", e.Backoff.Failures)
	// The history has the restarts that happened: written once the start
	// succeeded, with the event's time.
	rec := backoffRecord(e)
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.edit(name); ok {
			cur.History = appendHistory(cur.History, rec)
		}
		return nil
	}); err != nil {
		log.Error("crash backoff: persist the restart history", "err", err)
	}
	pid := 0
	if st, ok := m.snapshot()[name]; ok {
		pid = st.MainPID
	}
	m.emit(wire.Event{Time: rec.Time, Name: name, Kind: wire.EventRestarted, Reason: rec.Cause, PID: pid, Restarts: e.Restarts, OwnerUID: e.OwnerUID})
}

// backoffRecord is the restart record of a start by the crash backoff.
func backoffRecord(e *Entry) wire.RestartRecord {
	cause := "restarted by the daemon's crash backoff"
	if e.Backoff != nil {
		cause += fmt.Sprintf(" (failed run %d in a row)", e.Backoff.Failures)
	}
	if e.LastExit != "" {
		cause += " after " + e.LastExit
	}
	return wire.RestartRecord{Time: time.Now().UTC(), Kind: wire.EventRestarted, Cause: cause}
}

// emitBackoff records a decision of the crash backoff about name: a wait
// before the next start (crash-loop), or giving up.
func (m *Manager) emitBackoff(name string, gave bool, fails int, delay time.Duration) {
	e, ok := m.entry(name)
	if !ok {
		return
	}
	if fails == 0 && e.Backoff != nil {
		fails = e.Backoff.Failures
	}
	if gave {
		m.emit(wire.Event{Name: name, Kind: wire.EventGaveUp, OwnerUID: e.OwnerUID,
			Reason: fmt.Sprintf("gave up after %d failed runs in a row (--max-restarts %d)", fails, e.MaxRestarts)})
		return
	}
	reason := fmt.Sprintf("failed run %d in a row; next start in %s", fails, delay.Round(time.Millisecond))
	if e.LastExit != "" {
		reason += "; last exit: " + e.LastExit
	}
	m.emit(wire.Event{Name: name, Kind: wire.EventCrashLoop, OwnerUID: e.OwnerUID, Reason: reason})
}

// refreshStatus asks systemd for name's unit through the watch (so the view
// is updated too); a zero Status with the error when it cannot.
func (m *Manager) refreshStatus(ctx context.Context, name string) (units.Status, error) {
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w == nil {
		return units.Status{}, errorf(ErrUnavailable, "not connected to systemd")
	}
	return w.Refresh(ctx, name)
}

// clearNextStart drops a pending backoff start of name (the count stays).
func (m *Manager) clearNextStart(name string) {
	if err := m.update(func(r *Registry) error {
		if e, ok := r.get(name); ok && e.Backoff != nil && !e.Backoff.NextAt.IsZero() {
			e, _ = r.edit(name)
			e.Backoff.NextAt = time.Time{}
		}
		return nil
	}); err != nil {
		m.log.Error("crash backoff: persist", "name", name, "err", err)
	}
}

// poke wakes the daemon's loop to run supervise again.
func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// resetBackoffs forgets the failure count of runtimes that have been running
// for their reset period; run from the health tick with the names and how
// long each has been running.
func (m *Manager) resetBackoffs(names []string) {
	if len(names) == 0 {
		return
	}
	if err := m.update(func(r *Registry) error {
		for _, n := range names {
			if e, ok := r.get(n); ok && e.Backoff != nil && e.Backoff.NextAt.IsZero() && !e.Backoff.GaveUp {
				e, _ = r.edit(n)
				e.Backoff = nil
			}
		}
		return nil
	}); err != nil {
		m.log.Error("crash backoff: reset", "err", err)
		return
	}
	for _, n := range names {
		m.log.Info("crash backoff: reset (running for its reset period)", "name", n)
	}
}

// backoffView fills the backoff fields of a runtime view.
func backoffView(r *wire.Runtime, e *Entry) {
	if e.Backoff == nil {
		return
	}
	r.Failures = e.Backoff.Failures
	r.NextRestart = e.Backoff.NextAt
}
