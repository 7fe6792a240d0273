package manager

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// fakeSystemd is an in-memory service manager for pure handler tests. Units
// "run" with made-up pids; nothing is executed.
type fakeSystemd struct {
	mu       sync.Mutex
	units    map[string]units.Status
	specs    map[string]units.Spec
	nextPID  int
	startErr error
	// startErrFor, when set, fails the starts of the specs it returns an
	// error for (systemd refusing one unit).
	startErrFor func(spec units.Spec) error
	// stopErr, when set, fails Stop (a stop job that failed, or the
	// daemon dying before it) and leaves the unit running.
	stopErr error
	calls   []string
	// refreshed lists the Refresh calls (kept apart from calls, whose
	// order the tests check).
	refreshed []string
	changed   chan struct{}
	done      chan struct{}
	// Hooks for tests that synchronise on what the daemon asked of
	// systemd. Set them before the manager runs concurrently; they are
	// called without f.mu held.
	onStart  func(st units.Status) // after a unit was started
	onStatus func(name string)     // before Status reads a unit
	// startWait, when set, runs before a start and its error is Start's,
	// while the unit starts all the same: systemd runs a job whose wait
	// the caller gave up (a deadline, a daemon shutdown).
	startWait func(ctx context.Context) error
	// sockets holds the listen addresses of the active socket units;
	// socketErr, when set, fails StartSocket (an address in use).
	sockets   map[string][]string
	socketErr error
	// setErr, when set, fails SetLimits (systemd refused the change).
	setErr error
	// exits are what Exits returns next (see queueExit).
	exits map[string][]units.Status
}

// Exits returns and forgets the exits queued with queueExit.
func (f *fakeSystemd) Exits() map[string][]units.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.exits
	f.exits = nil
	return out
}

// queueExit makes the next Exits report st for name: an exit the cache
// never showed.
func (f *fakeSystemd) queueExit(name string, st units.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exits == nil {
		f.exits = map[string][]units.Status{}
	}
	f.exits[name] = append(f.exits[name], st)
}

func newFake() *fakeSystemd {
	return &fakeSystemd{units: map[string]units.Status{}, specs: map[string]units.Spec{}, nextPID: 1000,
		sockets: map[string][]string{}, changed: make(chan struct{}, 1), done: make(chan struct{})}
}

var (
	_ Systemd = (*fakeSystemd)(nil)
	_ Watcher = (*fakeSystemd)(nil)
)

func (f *fakeSystemd) record(s string) { f.calls = append(f.calls, s) }

func (f *fakeSystemd) Start(ctx context.Context, spec units.Spec) error {
	var waitErr error
	if f.startWait != nil {
		waitErr = f.startWait(ctx)
	}
	st, err := f.start(spec)
	if err == nil && f.onStart != nil {
		f.onStart(st)
	}
	if err == nil {
		err = waitErr
	}
	return err
}

func (f *fakeSystemd) start(spec units.Spec) (units.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start " + spec.Name)
	if f.startErr != nil {
		return units.Status{}, f.startErr
	}
	if f.startErrFor != nil {
		if err := f.startErrFor(spec); err != nil {
			return units.Status{}, err
		}
	}
	// units.Conn.Start clears a failed or inactive leftover and retries.
	if st, ok := f.units[spec.Name]; ok && st.ActiveState != "inactive" && st.ActiveState != "failed" {
		return units.Status{}, fmt.Errorf("start %s: %w", units.Name(spec.Name), units.ErrUnitExists)
	}
	f.nextPID++
	now := time.Now()
	st := units.Status{Unit: units.Name(spec.Name), Name: spec.Name, LoadState: "loaded",
		ActiveState: "active", SubState: "running", MainPID: f.nextPID, ActiveEnter: now, ExecMainStart: now,
		ExecStart: append([]string{spec.Path}, spec.Args...), RestartSteps: spec.RestartSteps}
	f.units[spec.Name] = st
	f.specs[spec.Name] = spec
	return st, nil
}

func (f *fakeSystemd) Stop(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop " + name)
	if f.stopErr != nil {
		return f.stopErr
	}
	st, ok := f.units[name]
	if !ok {
		return fmt.Errorf("stop %s: %w", units.Name(name), units.ErrNoSuchUnit)
	}
	if _, held := f.sockets[name]; held {
		// A socket keeps its service loaded (inactive).
		st.ActiveState, st.SubState, st.MainPID = units.ActiveInactive, units.SubDead, 0
		f.units[name] = st
		return nil
	}
	delete(f.units, name)
	return nil
}

// StartSocket is units.Conn.StartSocket: the socket is active at once; a
// service that is not loaded is loaded (inactive) from spec.
func (f *fakeSystemd) StartSocket(_ context.Context, spec units.Spec, listen []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sockets[spec.Name]; ok {
		return nil
	}
	f.record("start-socket " + spec.Name)
	if f.socketErr != nil {
		return f.socketErr
	}
	st, ok := f.units[spec.Name]
	if ok && isUp(st) {
		return fmt.Errorf("start %s: %w", units.SocketName(spec.Name), units.ErrUnitExists)
	}
	if !ok || st.ActiveState == units.ActiveFailed {
		f.units[spec.Name] = units.Status{Unit: units.Name(spec.Name), Name: spec.Name, LoadState: "loaded",
			ActiveState: units.ActiveInactive, SubState: units.SubDead,
			ExecStart: append([]string{spec.Path}, spec.Args...), RestartSteps: spec.RestartSteps}
		f.specs[spec.Name] = spec
	}
	f.sockets[spec.Name] = append([]string(nil), listen...)
	return nil
}

// StartLoaded starts the loaded service with its spec.
func (f *fakeSystemd) StartLoaded(_ context.Context, name string) error {
	f.mu.Lock()
	f.record("start-loaded " + name)
	st, ok := f.units[name]
	if !ok {
		f.mu.Unlock()
		return fmt.Errorf("start %s: %w", units.Name(name), units.ErrNoSuchUnit)
	}
	if isUp(st) {
		f.mu.Unlock()
		return nil
	}
	if f.startErr != nil {
		err := f.startErr
		f.mu.Unlock()
		return err
	}
	f.nextPID++
	now := time.Now()
	st.ActiveState, st.SubState, st.MainPID, st.ActiveEnter, st.ExecMainStart = units.ActiveActive, units.SubRunning, f.nextPID, now, now
	f.units[name] = st
	hook := f.onStart
	f.mu.Unlock()
	if hook != nil {
		hook(st)
	}
	return nil
}

// StopSocket closes the socket; an inactive service it kept is unloaded.
func (f *fakeSystemd) StopSocket(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sockets[name]; !ok {
		return nil
	}
	f.record("stop-socket " + name)
	delete(f.sockets, name)
	if st, ok := f.units[name]; ok && st.ActiveState == units.ActiveInactive {
		delete(f.units, name)
	}
	return nil
}

func (f *fakeSystemd) SocketActive(_ context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.sockets[name]
	return ok, nil
}

// socket returns the listen addresses of name's active socket (nil when none).
func (f *fakeSystemd) socket(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sockets[name]
}

func (f *fakeSystemd) ResetFailed(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.units[name]
	switch {
	case !ok:
		return units.ErrNoSuchUnit
	case st.ActiveState == "failed":
		if _, held := f.sockets[name]; held {
			// A socket keeps its service loaded.
			st.ActiveState, st.SubState = units.ActiveInactive, units.SubDead
			f.units[name] = st
			break
		}
		delete(f.units, name)
	default:
		// systemd resets the restart count of a unit that is up and
		// leaves it running.
		st.NRestarts = 0
		f.units[name] = st
	}
	return nil
}

func (f *fakeSystemd) Status(_ context.Context, name string) (units.Status, error) {
	if f.onStatus != nil {
		f.onStatus(name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.units[name]
	if !ok {
		return units.Status{}, units.ErrNoSuchUnit
	}
	return st, nil
}

func (f *fakeSystemd) UnitByPID(_ context.Context, pid int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.units {
		if st.MainPID == pid {
			return st.Unit, nil
		}
	}
	return "", fmt.Errorf("unit of pid %d: %w", pid, units.ErrNoSuchUnit)
}

func (f *fakeSystemd) Watch(context.Context) (Watcher, error) { return f, nil }
func (f *fakeSystemd) Close() error                           { return nil }

// ManagerVersion reports Debian 12's systemd; tests of the native backoff
// set Manager.native themselves.
func (f *fakeSystemd) ManagerVersion() (int, error) { return 252, nil }

// SetLimits is units.Conn.SetLimits: the cgroup limits of a loaded unit
// change (kept in live), NOFILE is refused; setErr, when set, fails it.
func (f *fakeSystemd) SetLimits(_ context.Context, name string, l wire.Limits, props []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if live := liveOnly(props); len(live) > 0 {
		f.record("set-limits " + name + " " + l.String() + " " + strings.Join(live, " "))
	} else {
		f.record("set-limits " + name + " " + l.String())
	}
	if l.NOFILE != 0 {
		return fmt.Errorf("set limits of %s: %w: LimitNOFILE", units.Name(name), units.ErrInvalid)
	}
	if f.setErr != nil {
		return f.setErr
	}
	if _, ok := f.units[name]; !ok {
		return fmt.Errorf("set limits of %s: %w", units.Name(name), units.ErrNoSuchUnit)
	}
	spec := f.specs[name]
	spec.Limits = spec.Limits.With(l)
	spec.Properties = wire.MergeProperties(spec.Properties, liveOnly(props))
	f.specs[name] = spec
	return nil
}

// DefaultLimits is the manager's DefaultTasksMax and DefaultLimitNOFILE
// (Debian 12's system manager on a machine with pid_max 32768).
func (f *fakeSystemd) DefaultLimits() (wire.Limits, error) {
	return wire.Limits{TasksMax: 4915, NOFILE: 524288}, nil
}

func (f *fakeSystemd) Snapshot() map[string]units.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]units.Status, len(f.units))
	for k, v := range f.units {
		out[k] = v
	}
	return out
}

// Refresh returns the unit as the fake has it (the fake's view is always fresh).
func (f *fakeSystemd) Refresh(_ context.Context, name string) (units.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshed = append(f.refreshed, name)
	st, ok := f.units[name]
	if !ok {
		return units.Status{}, fmt.Errorf("refresh %s: %w", units.Name(name), units.ErrNoSuchUnit)
	}
	return st, nil
}

func (f *fakeSystemd) Changed() <-chan struct{}     { return f.changed }
func (f *fakeSystemd) Done() <-chan struct{}        { return f.done }
func (f *fakeSystemd) Resync(context.Context) error { return nil }

// set replaces a unit's status (simulating systemd).
func (f *fakeSystemd) set(st units.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units[st.Name] = st
}

// at returns the named entry (nil if there is none), for tests to read.
func (r *Registry) at(name string) *Entry {
	e, _ := r.get(name)
	return e
}

// mod returns a private copy of the named entry, put in its place, for
// tests to change inside update; it panics if there is none.
func (r *Registry) mod(name string) *Entry {
	e, ok := r.edit(name)
	if !ok {
		panic("no entry " + name)
	}
	return e
}

// loadForTest loads s (a new state directory: an empty registry) and closes
// it when the test ends.
func loadForTest(t testing.TB, s *Store) *Registry {
	t.Helper()
	reg, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return reg
}

// liveOnly keeps the settings systemd changes on a loaded unit.
func liveOnly(props []string) []string {
	var live []string
	for _, kv := range props {
		k, _, _ := strings.Cut(kv, "=")
		if r, ok := wire.PropertyRuleOf(k); ok && r.Live {
			live = append(live, kv)
		}
	}
	return live
}
