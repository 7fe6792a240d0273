package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// upgrade switches the managed runtime names[0] to the executable path and
// restarts it (under its held socket, for a runtime with --listen, so that
// no connection is refused). It waits until the new process runs (attached,
// when the runtime attaches) within timeout; if it does not, the old path
// is restored and started again, and the error says why.
//
// Every step is persisted before it is acted on, so a daemon that dies
// meanwhile finds one consistent Path and, in PrevPath, the executable
// known to work:
//   - the switch: Path = new, PrevPath = old; then the restart, the wait;
//   - success: PrevPath = "";
//   - the switch back: Path = old (PrevPath stays old); then the restart;
//     then PrevPath = "".
//
// An entry found with PrevPath set at the next reconcile is switched back
// (finishUpgrade): the new executable was never confirmed running.
func (m *Manager) upgrade(ctx context.Context, caller Caller, names []string, path string, timeout time.Duration) (*wire.Result, error) {
	if len(names) != 1 || isPattern(names[0]) {
		return nil, errorf(ErrInvalid, "upgrade takes one runtime name (no patterns) and the new executable")
	}
	name := names[0]
	es, err := m.resolve(caller, names, "upgrade")
	if err != nil {
		return nil, err
	}
	if !es[0].Managed {
		return nil, errorf(ErrInvalid, "%s is an attached process (pid %d), not a managed unit; socketley cannot upgrade it", name, es[0].PID)
	}
	// The path checks of add (absolute, a regular file the caller may
	// execute), and the size limits with the runtime's arguments.
	check := wire.AddSpec{Name: name, Path: path, Args: es[0].Args, Env: es[0].Env, WorkDir: es[0].WorkDir}
	if err := m.validateAdd(caller, &check); err != nil {
		return nil, &msgError{err: err, msg: fmt.Sprintf("upgrade %s: %v", name, err)}
	}
	path = check.Path
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}

	lk := &heldLock{locks: &m.locks, name: name}
	lk.take()
	defer lk.release()
	e, ok := m.entry(name)
	if !ok {
		return nil, errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
	}
	if e.Desired == DesiredRemoved {
		return nil, errorf(ErrInvalid, "%s is being removed (run socketley remove %s again to finish); it cannot be upgraded", name, name)
	}
	if e.PrevPath != "" {
		return nil, errorf(ErrBusy, "an upgrade of %s is under way (from %s); wait for its reply, then upgrade again", name, e.PrevPath)
	}
	old := e.Path
	log := m.log.With("name", name, "unit", units.Name(name))
	m.mu.Lock()
	m.upgrading[name] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.upgrading, name)
		m.mu.Unlock()
	}()
	if err := m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		cur.Path, cur.PrevPath = path, old
		cur.Desired, cur.Started, cur.Backoff = DesiredRunning, true, nil // as restart: the operator's start
		return nil
	}); err != nil {
		return nil, fmt.Errorf("upgrade %s: record the switch (nothing was restarted): %w", name, err)
	}
	log.Info("upgrade: switched; restarting", "from", old, "to", path)
	if _, err := m.restartFor(ctx, name); err != nil {
		return m.switchBack(ctx, lk, old, path, fmt.Errorf("its start failed: %w", err))
	}
	// The attach of the new process takes the runtime's lock.
	lk.release()
	werr := m.waitRunning(ctx, name, timeout)
	lk.take()
	if werr != nil {
		return m.switchBack(ctx, lk, old, path, werr)
	}
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.get(name); ok && cur.Path == path && cur.PrevPath != "" {
			cur, _ = r.edit(name)
			cur.PrevPath = ""
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("upgrade %s: %s runs, but recording it failed (the daemon switches back to %s at its next start): %w", name, path, old, err)
	}
	log.Info("upgrade: running", "path", path)
	return &wire.Result{Runtimes: []wire.Runtime{m.view(name)}, Message: fmt.Sprintf("upgraded %s: %s -> %s", name, old, path)}, nil
}

// restartFor stops name's service and starts it again from the entry as
// it is now (a listen socket stays up; its exe link follows the entry's
// path first, so that a connection during the stop starts the new
// executable). stopped reports whether the old process is gone. The caller
// holds name's lock.
func (m *Manager) restartFor(ctx context.Context, name string) (stopped bool, err error) {
	e, ok := m.entry(name)
	if !ok {
		return false, errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
	}
	if len(e.Listen) > 0 {
		if err := m.setExeLink(name, e.Path); err != nil {
			return false, err
		}
	}
	if err := m.stopUnit(ctx, name); err != nil {
		return false, err
	}
	if e.Desired != DesiredRunning {
		return true, nil
	}
	return true, m.startUnit(ctx, e)
}

// switchBack restores old after the upgrade to failed did not come up
// (why), starts it again, and returns the reply: the runtime's view and
// the error that says what happened (ErrFailed). The caller holds the
// runtime's lock (lk); switchBack releases it while it waits for old to run.
func (m *Manager) switchBack(ctx context.Context, lk *heldLock, old, failed string, why error) (*wire.Result, error) {
	name := lk.name
	log := m.log.With("name", name, "unit", units.Name(name))
	log.Warn("upgrade: the new executable did not come up; switching back", "path", failed, "to", old, "err", why)
	// The request's context may be spent: the switch back gets its own.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*DefaultWaitTimeout+units.StopWait(MaxStopTimeout))
	defer cancel()
	fail := func(state string) (*wire.Result, error) {
		res := &wire.Result{}
		if _, ok := m.entry(name); ok {
			res.Runtimes = []wire.Runtime{m.view(name)}
		}
		return res, &msgError{err: errorf(ErrFailed, "upgrade failed"),
			msg: fmt.Sprintf("upgrade %s: %s did not come up: %v; %s; next: socketley logs %s shows its output", name, failed, why, state, name)}
	}
	if err := m.update(func(r *Registry) error {
		cur, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		cur.Path, cur.PrevPath, cur.Backoff = old, old, nil
		return nil
	}); errors.Is(err, ErrNotFound) {
		return fail("the runtime was removed meanwhile")
	} else if err != nil {
		return fail(fmt.Sprintf("switching back to %s failed (%v); the daemon switches back at its next start", old, err))
	}
	stopped, err := m.restartFor(bctx, name)
	if stopped {
		if uerr := m.update(func(r *Registry) error {
			if cur, ok := r.get(name); ok && cur.PrevPath != "" {
				cur, _ = r.edit(name)
				cur.PrevPath = ""
			}
			return nil
		}); uerr != nil {
			log.Error("upgrade: record the switch back", "err", uerr)
		}
	}
	if err != nil {
		m.poke() // a failed start is the backoff's now
		return fail(fmt.Sprintf("switched back to %s, which did not start: %v", old, err))
	}
	e, ok := m.entry(name)
	if !ok || e.Desired != DesiredRunning {
		return fail(fmt.Sprintf("switched back to %s (not started: the runtime was stopped meanwhile)", old))
	}
	lk.release()
	err = m.waitRunning(bctx, name, DefaultWaitTimeout)
	state := fmt.Sprintf("switched back to %s, running again", old)
	if err != nil {
		state = fmt.Sprintf("switched back to %s, which is not running either: %v", old, err)
	}
	log.Warn("upgrade: switched back", "path", old, "state", state)
	return fail(state)
}

// finishUpgrade switches back an upgrade that the daemon did not finish
// (e.PrevPath set: it died between the switch and the confirmation): the
// new executable was never confirmed running, so the old one, which was,
// comes back. A unit that is up is restarted under the old path (a listen
// runtime keeps its socket meanwhile), unless it is plainly running the old
// executable already. It reports whether the reconcile should go on with
// the entry as usual (nothing was restarted). The caller holds e's lock.
func (m *Manager) finishUpgrade(ctx context.Context, e *Entry) bool {
	log := m.log.With("name", e.Name, "unit", units.Name(e.Name))
	old := e.PrevPath
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.edit(e.Name); ok {
			cur.Path = old
		}
		return nil
	}); err != nil {
		log.Error("reconcile: switch back an interrupted upgrade", "err", err)
		return false
	}
	log.Warn("reconcile: an upgrade was interrupted; switching back to the executable that ran before", "path", old, "new", e.Path)
	m.syncExeLink(&Entry{Name: e.Name, Managed: true, Listen: e.Listen, Path: old, Desired: e.Desired})
	st, err := m.refreshStatus(ctx, e.Name)
	up := err == nil && (isUp(st) || st.Restarting)
	runsOld := len(e.Listen) == 0 && len(st.ExecStart) > 0 && st.ExecStart[0] == old
	restarted := false
	if up && !runsOld && e.Desired == DesiredRunning {
		stopped, err := m.restartFor(ctx, e.Name)
		if err != nil {
			log.Error("reconcile: restart after switching back an interrupted upgrade", "err", err)
		}
		if !stopped {
			// The new executable may still run: the switch back stays
			// recorded (PrevPath) for the next reconcile to finish.
			return false
		}
		restarted = true
	}
	if err := m.update(func(r *Registry) error {
		if cur, ok := r.get(e.Name); ok && cur.PrevPath != "" {
			cur, _ = r.edit(e.Name)
			cur.PrevPath = ""
		}
		return nil
	}); err != nil {
		log.Error("reconcile: record the switch back", "err", err)
		return false
	}
	return !restarted
}

// heldLock is a runtime's lock that an operation releases while it waits
// for the runtime (whose attach takes the lock) and takes again.
type heldLock struct {
	locks  *keyedMutex
	name   string
	unlock func()
}

// take locks the runtime unless it is already held.
func (h *heldLock) take() {
	if h.unlock == nil {
		h.unlock = h.locks.lock(h.name)
	}
}

// release unlocks the runtime if it is held.
func (h *heldLock) release() {
	if h.unlock != nil {
		h.unlock()
		h.unlock = nil
	}
}
