package manager

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// closedWithin waits for ch to be closed; reaching testWait means it never was.
func closedWithin(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testWait):
		t.Fatalf("%s: no change was published", what)
	}
}

// TestChangesBroadcast: every source of a view change closes the channel
// that waiters hold: a registry update, a health tick, the unit watch (as
// relayed by the daemon's loop), an attach.
func TestChangesBroadcast(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()

	ch := m.changes()
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "a", Path: exe(t, t.TempDir(), "a")}, false, 0); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, "registry update", ch)

	ch = m.changes()
	if m.changes() != ch {
		t.Fatal("two waiters without a change in between hold different channels")
	}
	m.tick(ctx)
	closedWithin(t, "health tick", ch)

	ch = m.changes()
	if _, err := m.attach(ctx, me(), attachSpec("b", child(t).Process.Pid)); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, "attach", ch)

	// The loop relays the watch's Changed (Tick an hour: no tick interferes).
	m.cfg.Tick = time.Hour
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.loop(lctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ch = m.changes()
	f.changed <- struct{}{}
	closedWithin(t, "unit watch", ch)
}

// TestWaitRunningWakesOnChange: a wait with nothing due (the attach timeout
// and the wait's own an hour away) ends when the view changes, because it
// is told, for each kind of change.
func TestWaitRunningWakesOnChange(t *testing.T) {
	wait := func(m *Manager, name string) chan error {
		done := make(chan error, 1)
		go func() { done <- m.waitRunning(t.Context(), name, time.Hour) }()
		return done
	}
	result := func(t *testing.T, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(testWait):
			t.Fatal("the wait did not end after the change")
		}
		return nil
	}
	start := func(t *testing.T, m *Manager, name string) {
		t.Helper()
		if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: name, Path: exe(t, t.TempDir(), name), Start: true,
			ExpectAttach: true, AttachTimeout: wire.Duration(time.Hour)}, false, 0); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("attach", func(t *testing.T) {
		m, f := newTestManager(t)
		start(t, m, "web")
		done := wait(m, "web")
		pid := f.Snapshot()["web"].MainPID
		if _, err := m.attach(t.Context(), Caller{PID: pid}, wire.AttachSpec{Type: "server", Name: "web", Port: 80, PID: pid, Managed: true}); err != nil {
			t.Fatal(err)
		}
		if err := result(t, done); err != nil {
			t.Fatalf("wait after the attach: %v", err)
		}
	})
	t.Run("unit failed", func(t *testing.T) {
		m, f := newTestManager(t)
		start(t, m, "crash")
		done := wait(m, "crash")
		st := f.Snapshot()["crash"]
		st.ActiveState, st.SubState, st.MainPID = "failed", "failed", 0
		st.Result, st.ExecMainCode, st.ExecMainStatus = "exit-code", units.CodeExited, 4
		f.set(st)
		m.changed() // what the loop does when the watch says it changed
		if err := result(t, done); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exit code 4") {
			t.Fatalf("wait after the unit failed: %v", err)
		}
	})
	t.Run("removed", func(t *testing.T) {
		m, _ := newTestManager(t)
		start(t, m, "gone")
		done := wait(m, "gone")
		if _, err := m.remove(t.Context(), me(), []string{"gone"}); err != nil {
			t.Fatal(err)
		}
		if err := result(t, done); !errors.Is(err, ErrNotFound) {
			t.Fatalf("wait after the removal: %v", err)
		}
	})
}

// TestWaitDue: the time at which only time changes what waitRunning
// decides: settleTime after the start of a process that does not attach,
// staleGrace after the beginning of the wait for a failure seen before the
// new process, the attach timeout after the start of one that should attach.
func TestWaitDue(t *testing.T) {
	begin := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	since := begin.Add(-time.Second)
	plain := &Entry{Name: "x", Managed: true}
	attaching := &Entry{Name: "x", Managed: true, ExpectAttach: true, AttachTimeout: wire.Duration(3 * time.Second)}
	tests := []struct {
		name   string
		e      *Entry
		r      wire.Runtime
		seenUp bool
		want   time.Time
	}{
		{"running, not attaching: settled at since+settleTime", plain,
			wire.Runtime{Status: wire.StatusRunning, ActiveState: "active", PID: 7, Since: since}, true, since.Add(settleTime)},
		{"running, not active yet: only a change", plain,
			wire.Runtime{Status: wire.StatusRunning, ActiveState: "activating", PID: 7, Since: since}, true, time.Time{}},
		{"running, attaching: returns at once, nothing due", attaching,
			wire.Runtime{Status: wire.StatusRunning, ActiveState: "active", PID: 7, Since: since}, true, time.Time{}},
		{"failed before the new process: believed after staleGrace", plain,
			wire.Runtime{Status: wire.StatusFailed}, false, begin.Add(staleGrace)},
		{"crash-loop before the new process", plain,
			wire.Runtime{Status: wire.StatusCrashLoop}, false, begin.Add(staleGrace)},
		{"failed after the new process: only a change", plain,
			wire.Runtime{Status: wire.StatusFailed}, true, time.Time{}},
		{"starting: the attach timeout", attaching,
			wire.Runtime{Status: wire.StatusStarting, PID: 7, Since: since}, true, since.Add(3 * time.Second)},
		{"starting without a process yet: only a change", attaching,
			wire.Runtime{Status: wire.StatusStarting}, false, time.Time{}},
		{"unhealthy, attached: only a tick", attaching,
			wire.Runtime{Status: wire.StatusUnhealthy, PID: 7, Since: since}, true, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := waitDue(tt.e, tt.r, begin, tt.seenUp); !got.Equal(tt.want) {
				t.Fatalf("waitDue = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTickLeavesOrphansAlone: a socketley unit without an entry (an orphan)
// is never decided on: no systemd call, no counters.
func TestTickLeavesOrphansAlone(t *testing.T) {
	m, f := newTestManager(t)
	f.set(units.Status{Unit: units.Name("ghost"), Name: "ghost", LoadState: "loaded", ActiveState: "failed", Result: "exit-code"})
	m.tick(t.Context())
	m.heals.Wait()
	if len(f.calls) != 0 {
		t.Fatalf("systemd calls for an orphan: %q", f.calls)
	}
	if _, ok := m.obs["ghost"]; ok {
		t.Fatal("the tick keeps counters for an orphan")
	}
}
