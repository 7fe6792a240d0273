package manager

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

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
}

func newFake() *fakeSystemd {
	return &fakeSystemd{units: map[string]units.Status{}, specs: map[string]units.Spec{}, nextPID: 1000,
		changed: make(chan struct{}, 1), done: make(chan struct{})}
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
	if _, ok := f.units[name]; !ok {
		return fmt.Errorf("stop %s: %w", units.Name(name), units.ErrNoSuchUnit)
	}
	delete(f.units, name)
	return nil
}

func (f *fakeSystemd) ResetFailed(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.units[name]
	switch {
	case !ok:
		return units.ErrNoSuchUnit
	case st.ActiveState == "failed":
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
