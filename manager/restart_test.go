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

func TestBackoffDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		n    int
		max  time.Duration
		want time.Duration
	}{
		{0, 30 * time.Second, 0},
		{1, 30 * time.Second, 0},
		{2, 30 * time.Second, 100 * ms},
		{3, 30 * time.Second, 200 * ms},
		{4, 30 * time.Second, 400 * ms},
		{10, 30 * time.Second, 25600 * ms},
		{11, 30 * time.Second, 30 * time.Second},
		{1000, 30 * time.Second, 30 * time.Second},
		{5, time.Second, 800 * ms},
		{6, time.Second, time.Second},
		{2, 50 * ms, 50 * ms},
	}
	for _, tt := range tests {
		if got := backoffDelay(tt.n, tt.max); got != tt.want {
			t.Errorf("backoffDelay(%d, %s) = %s, want %s", tt.n, tt.max, got, tt.want)
		}
	}
}

func TestFailure(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		e         Entry
		nrestarts int
		fails     int
		delay     time.Duration
		gaveUp    bool
	}{
		{"first failure: at once", Entry{}, 0, 1, 0, false},
		{"second: 100ms", Entry{Backoff: &Backoff{Failures: 1}}, 0, 2, 100 * time.Millisecond, false},
		{"fifth: 800ms", Entry{Backoff: &Backoff{Failures: 4}}, 0, 5, 800 * time.Millisecond, false},
		{"capped by the entry", Entry{RestartMaxDelay: wire.Duration(time.Second), Backoff: &Backoff{Failures: 20}}, 0, 21, time.Second, false},
		{"systemd restarted it after a long run: second in a row", Entry{Backoff: &Backoff{Failures: 9}}, 1, 2, 100 * time.Millisecond, false},
		{"systemd restarted it twice: still second in a row", Entry{}, 2, 2, 100 * time.Millisecond, false},
		{"max restarts not reached", Entry{MaxRestarts: 3, Backoff: &Backoff{Failures: 2}}, 0, 3, 200 * time.Millisecond, false},
		{"max restarts reached: give up", Entry{MaxRestarts: 3, Backoff: &Backoff{Failures: 3}}, 0, 4, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			d := failure(&e, now, tt.nrestarts)
			b := e.Backoff
			if b.Failures != tt.fails || b.GaveUp != tt.gaveUp {
				t.Fatalf("failures %d gave up %v, want %d %v", b.Failures, b.GaveUp, tt.fails, tt.gaveUp)
			}
			if tt.gaveUp {
				if !b.NextAt.IsZero() {
					t.Fatalf("gave up but a start is scheduled at %v", b.NextAt)
				}
				return
			}
			if d != tt.delay || !b.NextAt.Equal(now.Add(tt.delay)) {
				t.Fatalf("delay %s next %v, want %s", d, b.NextAt, tt.delay)
			}
		})
	}
}

// failUnit makes the fake's unit of name failed, as systemd leaves it when the
// start limit refuses the automatic restart.
func failUnit(t *testing.T, f *fakeSystemd, name string, code, status int) {
	t.Helper()
	st, ok := f.Snapshot()[name]
	if !ok {
		t.Fatalf("no unit %s to fail", name)
	}
	// NRestarts counts the refused restart too; units reports the result
	// as start-limit-hit.
	st.ActiveState, st.SubState, st.MainPID, st.NRestarts = units.ActiveFailed, units.SubFailed, 0, st.NRestarts+1
	st.Result, st.ExecMainCode, st.ExecMainStatus = units.ResultStartLimitHit, code, status
	f.set(st)
}

// supervised runs one supervise pass and waits for the starts it launched.
func supervised(m *Manager) time.Time {
	next := m.supervise(context.Background())
	m.heals.Wait()
	return next
}

func TestSuperviseBackoff(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	ctx := t.Context()
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true, MaxRestarts: 3}, false, 0); err != nil {
		t.Fatal(err)
	}
	if spec := f.specs["web"]; spec.StartLimitBurst != 1 || spec.StartLimitInterval != DefaultRestartReset || spec.RestartSec != 0 {
		t.Fatalf("unit start limit: burst %d interval %s restart-sec %s, want 1, %s, 0",
			spec.StartLimitBurst, spec.StartLimitInterval, spec.RestartSec, DefaultRestartReset)
	}
	pid := m.view("web").PID

	// First failure: started again at once.
	failUnit(t, f, "web", units.CodeExited, 3)
	if next := supervised(m); !next.IsZero() {
		t.Fatalf("first failure scheduled a delayed start at %v; want at once", next)
	}
	v := m.view("web")
	if v.Status != wire.StatusRunning || v.PID == pid || v.PID == 0 || v.Failures != 1 || v.Restarts != 1 || v.LastExit != "exit code 3" {
		t.Fatalf("after the first failure: %+v", v)
	}

	// Second failure: 100 ms later, not before.
	failUnit(t, f, "web", units.CodeKilled, 9)
	before := time.Now()
	next := supervised(m)
	after := time.Now()
	// The daemon reads its clock between before and after, and adds 100 ms.
	if next.Before(before.Add(100*time.Millisecond)) || next.After(after.Add(100*time.Millisecond)) {
		t.Fatalf("second failure: next start %s after the failure (within %s), want 100ms", next.Sub(before), after.Sub(before))
	}
	v = m.view("web")
	if v.Status != wire.StatusCrashLoop || v.Failures != 2 || v.NextRestart.IsZero() || !strings.Contains(v.Reason, "next start in") {
		t.Fatalf("waiting for the second start: %+v", v)
	}
	// Persisted: a daemon restarted now keeps the schedule.
	reg, err := m.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if b := reg.at("web").Backoff; b == nil || b.Failures != 2 || !b.NextAt.Equal(v.NextRestart) {
		t.Fatalf("persisted backoff = %+v, want failures 2 next %v", b, v.NextRestart)
	}
	if n := supervised(m); !n.Equal(next) || f.Snapshot()["web"].ActiveState != units.ActiveFailed {
		t.Fatal("a supervise pass before the due time started the unit")
	}
	makeDue(t, m, "web")
	supervised(m)
	if v = m.view("web"); v.Status != wire.StatusRunning || v.Restarts != 2 {
		t.Fatalf("after the due start: %+v", v)
	}

	// Third failure, then the fourth exceeds --max-restarts 3: give up.
	failUnit(t, f, "web", units.CodeExited, 1)
	supervised(m)
	makeDue(t, m, "web")
	supervised(m)
	failUnit(t, f, "web", units.CodeExited, 1)
	if next := supervised(m); !next.IsZero() {
		t.Fatalf("gave up but scheduled a start at %v", next)
	}
	v = m.view("web")
	if v.Status != wire.StatusFailed || !strings.Contains(v.Reason, "gave up after 4 failed runs") {
		t.Fatalf("after max restarts: %+v", v)
	}
	// An operator's start retries at once and clears the count.
	if _, err := m.start(ctx, me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if v = m.view("web"); v.Status != wire.StatusRunning || v.Failures != 0 {
		t.Fatalf("after socketley start: %+v", v)
	}
}

// makeDue moves name's pending backoff start to now.
func makeDue(t *testing.T, m *Manager, name string) {
	t.Helper()
	if err := m.update(func(r *Registry) error {
		r.mod(name).Backoff.NextAt = time.Now().Add(-time.Millisecond)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestBackoffStartAdoptsAUnitThatIsUp(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	failUnit(t, f, "web", units.CodeExited, 1)
	supervised(m) // first: at once
	failUnit(t, f, "web", units.CodeExited, 1)
	supervised(m) // second: pending
	// Meanwhile systemd shows it up again (started outside the backoff).
	st := f.Snapshot()["web"]
	st.ActiveState, st.SubState, st.MainPID = units.ActiveActive, units.SubRunning, 4242
	f.set(st)
	makeDue(t, m, "web")
	starts := strings.Count(strings.Join(f.calls, ","), "start web")
	supervised(m)
	if n := strings.Count(strings.Join(f.calls, ","), "start web"); n != starts {
		t.Fatalf("the due start started a unit that was up (%d starts, want %d)", n, starts)
	}
	e, _ := m.entry("web")
	if e.Backoff == nil || !e.Backoff.NextAt.IsZero() || m.view("web").PID != 4242 {
		t.Fatalf("backoff %+v, pid %d", e.Backoff, m.view("web").PID)
	}
}

func TestHealthRestartSharesTheBackoff(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	// Two health restarts: the first at once, the second after 100 ms.
	pid := m.view("web").PID
	m.heal(t.Context(), "web", pid, "port 7070 refused connections")
	v := m.view("web")
	if v.Status != wire.StatusRunning || v.PID == pid || v.Failures != 1 || v.Restarts != 1 {
		t.Fatalf("after the first health restart: %+v", v)
	}
	m.heal(t.Context(), "web", v.PID, "port 7070 refused connections")
	v = m.view("web")
	if v.Status != wire.StatusCrashLoop || v.PID != 0 || v.Failures != 2 || v.NextRestart.IsZero() {
		t.Fatalf("after the second health restart: %+v", v)
	}
	if _, ok := f.Snapshot()["web"]; ok {
		t.Fatal("the second health restart started the unit at once")
	}
	makeDue(t, m, "web")
	supervised(m)
	if v = m.view("web"); v.Status != wire.StatusRunning || v.PID == 0 {
		t.Fatalf("after the delayed start: %+v", v)
	}
}

func TestTickResetsTheBackoffAfterTheResetPeriod(t *testing.T) {
	m, _ := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.update(func(r *Registry) error { r.mod("web").Backoff = &Backoff{Failures: 5}; return nil }); err != nil {
		t.Fatal(err)
	}
	m.tick(t.Context()) // sees it running: the clock starts now
	if e, _ := m.entry("web"); e.Backoff == nil {
		t.Fatal("the first running tick reset the backoff; it must run for the reset period first")
	}
	// A tick that finds another process running (it crashed and came back
	// between two ticks) starts the clock again.
	m.mu.Lock()
	m.obsOf("web").runningSince = time.Now().Add(-DefaultRestartReset)
	m.obsOf("web").runningPID = 1
	m.mu.Unlock()
	m.tick(t.Context())
	if e, _ := m.entry("web"); e.Backoff == nil {
		t.Fatal("a new process reset the backoff at once; its own run must last the reset period")
	}
	m.mu.Lock()
	m.obsOf("web").runningSince = time.Now().Add(-DefaultRestartReset)
	m.mu.Unlock()
	m.tick(t.Context())
	if e, _ := m.entry("web"); e.Backoff != nil {
		t.Fatalf("running for the reset period kept the backoff: %+v", e.Backoff)
	}
	reg, err := m.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if reg.at("web").Backoff != nil {
		t.Fatal("the reset was not persisted")
	}
}

func TestReconcileKeepsTheBackoffSchedule(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	// A health restart in backoff left no unit; a reboot-like reconcile must
	// not start it before its time, nor a given-up one at all.
	next := time.Now().Add(time.Hour)
	if err := m.update(func(r *Registry) error {
		r.mod("web").Backoff = &Backoff{Failures: 3, NextAt: next}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	m.reconcile(t.Context())
	if _, ok := f.Snapshot()["web"]; ok {
		t.Fatal("reconcile started a runtime whose backoff start is an hour away")
	}
	if got := supervised(m); !got.Equal(next) {
		t.Fatalf("supervise: next %v, want the persisted %v", got, next)
	}
}

// TestBackoffHistoryHasOnlyStartsThatHappened: a backoff start that fails
// is not in the restart history; one that succeeds is, once, with the
// time of its restarted event.
func TestBackoffHistoryHasOnlyStartsThatHappened(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	failUnit(t, f, "web", units.CodeExited, 3)
	f.mu.Lock()
	f.startErr = errors.New("cannot execute")
	f.mu.Unlock()
	supervised(m)
	if e, _ := m.entry("web"); len(e.History) != 0 {
		t.Fatalf("a failed backoff start is in the history: %+v", e.History)
	}
	f.mu.Lock()
	f.startErr = nil
	f.mu.Unlock()
	makeDue(t, m, "web")
	supervised(m)
	e, _ := m.entry("web")
	if len(e.History) != 1 || e.History[0].Kind != wire.EventRestarted || !strings.Contains(e.History[0].Cause, "crash backoff") {
		t.Fatalf("history after the backoff start: %+v, want one restart", e.History)
	}
	evs, _ := m.events.recent(time.Time{}, func(ev wire.Event) bool { return ev.Kind == wire.EventRestarted })
	if len(evs) != 1 || !evs[0].Time.Equal(e.History[0].Time) {
		t.Fatalf("restarted events %+v; want one at the history's time %v", evs, e.History[0].Time)
	}
}
