package manager

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// The native restart backoff (systemd ≥ 254, docs/restart-policy.md).
//
// Where the manager has RestartSteps= and RestartMaxDelaySec=, systemd does
// the whole backoff itself, also while the daemon is down: every unit gets
// no start limit, RestartSec = the runtime's --restart-sec but at least
// 1 ms (systemd multiplies it: 0 would stay 0 for ever), RestartMaxDelaySec =
// --restart-max-delay and as many steps as doublings from one to the other,
// so the delays run 1 ms, 2 ms, 4 ms … up to the cap. The daemon only does
// what systemd has no setting for:
//   - the reset: once a run has lasted --restart-reset it resets the unit's
//     NRestarts (ResetFailedUnit, which leaves a running unit running), so
//     the next crash is restarted after RestartSec again;
//   - --max-restarts: when a unit has failed more than N runs in a row it
//     stops it and marks the entry given up, as on the daemon path;
//   - the view: crash-loop with the count and when the next start is due,
//     read from the unit (NRestarts, RestartUSecNext, StateChangeTimestamp).
// Health restarts stay the daemon's (stop, start after the shared backoff);
// their count adds to the unit's NRestarts.

// Restart backoff modes (Config.RestartBackoff).
const (
	// BackoffAuto uses systemd's own backoff where the manager has it
	// (units.NativeBackoffVersion), else the daemon's.
	BackoffAuto = "auto"
	// BackoffSystemd asks for systemd's backoff; on an older manager the
	// daemon logs why and uses its own.
	BackoffSystemd = "systemd"
	// BackoffDaemon always uses the daemon's backoff (start limit + delayed
	// starts), the only one on systemd < 254.
	BackoffDaemon = "daemon"
)

// nativeMinRestartSec is RestartSec under the native backoff when the
// runtime asks for 0: systemd's delay is RestartSec × (max/RestartSec)^(n/steps),
// which a RestartSec of 0 keeps at 0 whatever the steps (measured on 254).
const nativeMinRestartSec = time.Millisecond

// chooseBackoff decides, from the configured mode and the manager's
// version, whether units get systemd's native backoff; the reason is
// logged.
func chooseBackoff(mode string, version int, verr error) (native bool, why string) {
	has := verr == nil && version >= units.NativeBackoffVersion
	switch {
	case mode == BackoffDaemon:
		return false, "--restart-backoff daemon"
	case verr != nil:
		return false, fmt.Sprintf("systemd version unknown (%v): the daemon's backoff works on every version", verr)
	case has:
		return true, fmt.Sprintf("systemd %d has RestartSteps=", version)
	case mode == BackoffSystemd:
		return false, fmt.Sprintf("--restart-backoff systemd needs systemd ≥ %d, this is %d: using the daemon's backoff", units.NativeBackoffVersion, version)
	default:
		return false, fmt.Sprintf("systemd %d has no RestartSteps= (needs %d)", version, units.NativeBackoffVersion)
	}
}

// nativeRestart returns RestartSec, RestartSteps and RestartMaxDelaySec for
// a runtime with restart delay rs and backoff cap maxDelay: one step per
// doubling. When the cap is not above the delay the delay is (about) fixed:
// one step to the delay + 1 ms, so that the unit still has RestartSteps > 0,
// which is how the daemon tells a unit under systemd's backoff (nativeUnit).
func nativeRestart(rs, maxDelay time.Duration) (sec time.Duration, steps int, capDelay time.Duration) {
	sec = max(rs, nativeMinRestartSec)
	if maxDelay <= sec {
		return sec, 1, sec + time.Millisecond
	}
	return sec, int(math.Ceil(math.Log2(float64(maxDelay) / float64(sec)))), maxDelay
}

// nativeUnit reports whether st is a unit under systemd's own backoff.
func nativeUnit(st *units.Status) bool {
	return st != nil && st.RestartSteps > 0
}

// nativeFailures is the number of failed runs in a row of a runtime under
// systemd's backoff: the unit's automatic restarts since the last reset,
// one more while it waits for the next (auto-restart: systemd counts a
// restart in NRestarts when it queues its job, and then the state is
// auto-restart-queued), plus the health restarts counted in the entry.
//
// st must be one consistent reading (a GetAll): the watch applies the
// Service and the Unit interface's PropertiesChanged one after the other,
// and in between a new NRestarts can meet the old auto-restart state.
func nativeFailures(e *Entry, st units.Status) int {
	n := st.NRestarts
	if st.ActiveState == units.ActiveActivating && st.SubState == units.SubAutoRestart {
		n++
	}
	if e.Backoff != nil {
		n += e.Backoff.Failures
	}
	return n
}

// nativeView fills the backoff fields of a runtime view from a unit under
// systemd's backoff, and returns the crash-loop status and reason when the
// unit waits for a restart after more than one failed run.
func nativeView(r *wire.Runtime, e *Entry, st *units.Status, now time.Time) (status wire.Status, reason string, ok bool) {
	if !nativeUnit(st) || (e.Backoff != nil && e.Backoff.GaveUp) {
		return "", "", false
	}
	n := nativeFailures(e, *st)
	if n == 0 {
		return "", "", false
	}
	r.Failures = n
	if !st.Restarting || n < 2 {
		return "", "", false
	}
	next := st.StateChange.Add(st.RestartNext)
	if st.StateChange.IsZero() {
		next = now
	}
	r.NextRestart = next
	return wire.StatusCrashLoop, joinReason(fmt.Sprintf("%d failed runs in a row; systemd starts it again in %s",
		n, max(next.Sub(now), 0).Round(time.Millisecond)), lastExitReason(st)), true
}

// nativeGiveUps returns the runtimes under systemd's backoff that failed
// more runs in a row than their --max-restarts, and the given-up ones whose
// unit is up again (a daemon that died between persisting a give-up and
// stopping the unit); m.mu must be held (read).
func (m *Manager) nativeGiveUps(snap map[string]units.Status) []string {
	var out []string
	for e := range m.reg.all() {
		st, ok := snap[e.Name]
		if !ok || !nativeUnit(&st) || !e.Managed || e.Desired != DesiredRunning || m.starting[e.Name] || m.locks.busy(e.Name) {
			continue
		}
		if e.Backoff != nil && e.Backoff.GaveUp {
			if unitUp(st) {
				out = append(out, e.Name)
			}
			continue
		}
		if restarts(e) && e.MaxRestarts > 0 && nativeFailures(e, st) > e.MaxRestarts {
			out = append(out, e.Name)
		}
	}
	return out
}

// unitUp reports whether st is running, starting or waiting to restart.
func unitUp(st units.Status) bool {
	return st.ActiveState == units.ActiveActive || st.ActiveState == units.ActiveActivating ||
		st.ActiveState == units.ActiveReloading
}

// nativeGiveUp stops a runtime that exceeded --max-restarts under systemd's
// backoff and marks it given up, as the daemon's backoff does; for a
// runtime already marked given up it finishes the stop.
func (m *Manager) nativeGiveUp(ctx context.Context, name string) {
	acted := false
	defer func() { m.doneStarting(name, acted) }()
	unlock := m.locks.lock(name)
	defer unlock()
	e, ok := m.entry(name)
	sd, err := m.systemd()
	if !ok || err != nil {
		return
	}
	// The watch's snapshot nominated it; decide on one consistent reading.
	st, err := sd.Status(ctx, name)
	if err != nil || !nativeUnit(&st) {
		return
	}
	if e.Backoff != nil && e.Backoff.GaveUp {
		if !unitUp(st) {
			return
		}
		if err := m.stopListen(ctx, e); err != nil {
			m.log.Error("crash loop: finish an interrupted give-up: stop the socket; tried again at the next change", "name", name, "err", err)
			return
		}
		if err := m.stopUnit(ctx, name); err != nil {
			m.log.Error("crash loop: finish an interrupted give-up: stop; tried again at the next change", "name", name, "err", err)
			return
		}
		acted = true
		m.log.Warn("crash loop: finished an interrupted give-up (the unit was up again)", "name", name)
		return
	}
	if !restarts(e) || e.MaxRestarts <= 0 || nativeFailures(e, st) <= e.MaxRestarts {
		return
	}
	// The intent is persisted before the stop: noteExits then keeps the
	// crash's exit instead of the SIGTERM of this stop (systemd may have
	// started one more run already), and a daemon killed in between finds
	// the runtime given up and finishes the stop (nativeGiveUps).
	fails, prev := nativeFailures(e, st), e.Backoff
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.edit(name); ok {
			cur.Backoff = &Backoff{Failures: fails, GaveUp: true}
			if le := st.LastExit(); le != "" {
				cur.LastExit = le
			}
		}
		return nil
	}); err != nil {
		m.log.Error("crash loop: persist", "name", name, "err", err)
		return
	}
	// A listen runtime's socket first: it would start the service again.
	err = m.stopListen(ctx, e)
	if err == nil {
		err = m.stopUnit(ctx, name)
	}
	if err != nil {
		m.log.Error("crash loop: stop after max restarts; tried again at the next change", "name", name, "err", err)
		if err := m.update(func(r *Registry) error {
			if cur, ok := r.edit(name); ok {
				cur.Backoff = prev
			}
			return nil
		}); err != nil {
			m.log.Error("crash loop: persist", "name", name, "err", err)
		}
		return
	}
	acted = true
	m.log.Warn("crash loop: giving up (max restarts reached); socketley start retries", "name", name, "failures", fails)
	m.emit(wire.Event{Name: name, Kind: wire.EventGaveUp, OwnerUID: e.OwnerUID,
		Reason: fmt.Sprintf("gave up after %d failed runs in a row (--max-restarts %d)", fails, e.MaxRestarts)})
}

// nativeResets forgets the failed runs of runtimes under systemd's backoff
// that have been running for their reset period (pids: the main process the
// tick saw running): NRestarts goes into the entry's restart count and
// ResetFailedUnit sets the unit's to 0, so systemd's next delay is
// RestartSec again. Each runs under the runtime's lock (a busy runtime is
// left to a later tick) on a fresh reading, so a concurrent stop or restart,
// which folds NRestarts itself, is not counted twice.
func (m *Manager) nativeResets(ctx context.Context, pids map[string]int) {
	sd, err := m.systemd()
	if err != nil || len(pids) == 0 {
		return
	}
	for name, pid := range pids {
		unlock, ok := m.locks.tryLock(name)
		if !ok {
			continue
		}
		m.nativeReset(ctx, sd, name, pid)
		unlock()
	}
}

// nativeReset is nativeResets for one runtime; its lock is held.
func (m *Manager) nativeReset(ctx context.Context, sd Systemd, name string, pid int) {
	st, err := sd.Status(ctx, name)
	if err != nil || !nativeUnit(&st) || st.ActiveState != units.ActiveActive || st.MainPID != pid {
		return
	}
	e, ok := m.entry(name)
	if !ok || (st.NRestarts == 0 && (e.Backoff == nil || e.Backoff.Failures == 0)) {
		return
	}
	n := st.NRestarts
	if n > 0 {
		if err := sd.ResetFailed(ctx, name); err != nil {
			m.log.Error("crash backoff: reset", "name", name, "err", err)
			return
		}
	}
	if err := m.update(func(r *Registry) error {
		if e, ok := r.edit(name); ok {
			e.Restarts += n
			e.Backoff = nil
		}
		return nil
	}); err != nil {
		m.log.Error("crash backoff: reset: persist", "name", name, "err", err)
	}
	m.refresh(ctx, name)
	m.log.Info("crash backoff: reset (running for its reset period)", "name", name, "restarts", n)
}
