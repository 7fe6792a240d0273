package manager

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

func TestChooseBackoff(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    string
		version int
		verr    error
		native  bool
		why     string
	}{
		{"auto on 254", BackoffAuto, 254, nil, true, "systemd 254 has RestartSteps="},
		{"auto on 257", BackoffAuto, 257, nil, true, "systemd 257"},
		{"auto on 252", BackoffAuto, 252, nil, false, "systemd 252 has no RestartSteps= (needs 254)"},
		{"systemd on 254", BackoffSystemd, 254, nil, true, "has RestartSteps="},
		{"systemd on 252 falls back", BackoffSystemd, 252, nil, false, "needs systemd ≥ 254, this is 252"},
		{"daemon on 254", BackoffDaemon, 254, nil, false, "--restart-backoff daemon"},
		{"unknown version", BackoffAuto, 0, errors.New("no Version property"), false, "systemd version unknown (no Version property)"},
		{"systemd, unknown version", BackoffSystemd, 0, errors.New("x"), false, "version unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			native, why := chooseBackoff(tc.mode, tc.version, tc.verr)
			if native != tc.native || !strings.Contains(why, tc.why) {
				t.Fatalf("chooseBackoff(%q, %d, %v) = %v, %q; want %v, …%q…", tc.mode, tc.version, tc.verr, native, why, tc.native, tc.why)
			}
		})
	}
}

func TestNativeRestart(t *testing.T) {
	for _, tc := range []struct {
		name         string
		rs, maxDelay time.Duration
		sec          time.Duration
		steps        int
		capDelay     time.Duration
	}{
		// 1 ms × 2^15 = 32.8 s ≥ 30 s: 15 doublings.
		{"defaults", 0, DefaultRestartMaxDelay, time.Millisecond, 15, DefaultRestartMaxDelay},
		{"one second to 30", time.Second, 30 * time.Second, time.Second, 5, 30 * time.Second},
		{"exact power of two", 100 * time.Millisecond, 800 * time.Millisecond, 100 * time.Millisecond, 3, 800 * time.Millisecond},
		// A fixed delay still gets one step, so the unit is told apart as
		// native (no start limit, so the daemon's path never sees it fail).
		{"cap below the delay: fixed", 30 * time.Second, 10 * time.Second, 30 * time.Second, 1, 30*time.Second + time.Millisecond},
		{"cap equal to the delay: fixed", time.Second, time.Second, time.Second, 1, time.Second + time.Millisecond},
		{"sub-millisecond delay raised", time.Microsecond, time.Second, time.Millisecond, 10, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec, steps, capDelay := nativeRestart(tc.rs, tc.maxDelay)
			if sec != tc.sec || steps != tc.steps || capDelay != tc.capDelay {
				t.Fatalf("nativeRestart(%s, %s) = %s, %d, %s; want %s, %d, %s", tc.rs, tc.maxDelay, sec, steps, capDelay, tc.sec, tc.steps, tc.capDelay)
			}
		})
	}
}

func TestNativeFailures(t *testing.T) {
	running := units.Status{ActiveState: units.ActiveActive, SubState: units.SubRunning, RestartSteps: 15}
	waiting := units.Status{ActiveState: units.ActiveActivating, SubState: units.SubAutoRestart, RestartSteps: 15}
	queued := units.Status{ActiveState: units.ActiveActivating, SubState: units.SubAutoRestartQueued, RestartSteps: 15}
	with := func(st units.Status, n int) units.Status { st.NRestarts = n; return st }
	for _, tc := range []struct {
		name   string
		st     units.Status
		health int
		want   int
	}{
		{"never failed", with(running, 0), 0, 0},
		{"running after 3 restarts", with(running, 3), 0, 3},
		// systemd counts a restart when it queues its job: in auto-restart
		// the failed run is not counted yet.
		{"waiting after the first crash", with(waiting, 0), 0, 1},
		{"waiting after the fourth crash", with(waiting, 3), 0, 4},
		{"restart queued (254): already counted", with(queued, 4), 0, 4},
		{"health restarts add", with(running, 2), 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Entry{Name: "x"}
			if tc.health > 0 {
				e.Backoff = &Backoff{Failures: tc.health}
			}
			if got := nativeFailures(e, tc.st); got != tc.want {
				t.Fatalf("nativeFailures = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestNativeView(t *testing.T) {
	now := time.Now()
	waiting := units.Status{ActiveState: units.ActiveActivating, SubState: units.SubAutoRestart, RestartSteps: 15,
		NRestarts: 4, StateChange: now.Add(-100 * time.Millisecond), RestartNext: 300 * time.Millisecond,
		ExecMainCode: units.CodeExited, ExecMainStatus: 7}
	waiting.Restarting = true
	first := waiting
	first.NRestarts = 0
	running := units.Status{ActiveState: units.ActiveActive, SubState: units.SubRunning, RestartSteps: 15, NRestarts: 4}
	daemonPath := waiting
	daemonPath.RestartSteps = 0
	for _, tc := range []struct {
		name     string
		st       units.Status
		e        Entry
		ok       bool
		failures int
	}{
		{"waiting after five crashes", waiting, Entry{}, true, 5},
		{"the first crash is no loop", first, Entry{}, false, 1},
		{"running: count only", running, Entry{}, false, 4},
		{"daemon's backoff: not native", daemonPath, Entry{}, false, 0},
		{"given up: the daemon's view", waiting, Entry{Backoff: &Backoff{GaveUp: true, Failures: 5}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r wire.Runtime
			st := tc.st
			status, reason, ok := nativeView(&r, &tc.e, &st, now)
			if ok != tc.ok || r.Failures != tc.failures {
				t.Fatalf("nativeView: ok %v failures %d, want %v %d (%q %q)", ok, r.Failures, tc.ok, tc.failures, status, reason)
			}
			if !ok {
				return
			}
			if status != wire.StatusCrashLoop || !strings.Contains(reason, "5 failed runs in a row; systemd starts it again in 200ms") ||
				!strings.Contains(reason, "exit code 7") {
				t.Fatalf("nativeView = %q, %q", status, reason)
			}
			if want := st.StateChange.Add(st.RestartNext); !r.NextRestart.Equal(want) {
				t.Fatalf("next restart %v, want %v", r.NextRestart, want)
			}
		})
	}
}

// nativeManager is a test manager whose units get systemd's own backoff.
func nativeManager(t *testing.T) (*Manager, *fakeSystemd) {
	t.Helper()
	m, f := newTestManager(t)
	m.native = true
	return m, f
}

func TestNativeSpec(t *testing.T) {
	m, f := nativeManager(t)
	bin := exe(t, t.TempDir(), "svc")
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		spec  wire.AddSpec
		sec   time.Duration
		steps int
		cap   time.Duration
	}{
		{"defaults", wire.AddSpec{Name: "a", Path: bin, Start: true}, time.Millisecond, 15, DefaultRestartMaxDelay},
		{"own delay and cap", wire.AddSpec{Name: "b", Path: bin, Start: true, RestartSec: wire.Duration(time.Second),
			RestartMaxDelay: wire.Duration(8 * time.Second)}, time.Second, 3, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.add(ctx, me(), tc.spec, false, 0); err != nil {
				t.Fatal(err)
			}
			s := f.specs[tc.spec.Name]
			if !s.NoStartLimit || s.StartLimitBurst != 0 || s.StartLimitInterval != 0 {
				t.Fatalf("start limit: none %v burst %d interval %s; want no start limit", s.NoStartLimit, s.StartLimitBurst, s.StartLimitInterval)
			}
			if s.RestartSec != tc.sec || s.RestartSteps != tc.steps || s.RestartMaxDelay != tc.cap {
				t.Fatalf("restart: %s, %d steps, cap %s; want %s, %d, %s", s.RestartSec, s.RestartSteps, s.RestartMaxDelay, tc.sec, tc.steps, tc.cap)
			}
		})
	}
	// A runtime added without -s, then started; and one stopped, then
	// started again: start builds the spec from the entry as it was before
	// it set Desired to running.
	native := func(name string) {
		t.Helper()
		if s := f.specs[name]; !s.NoStartLimit || s.RestartSteps == 0 || s.StartLimitBurst != 0 {
			t.Fatalf("%s: not under systemd's backoff: steps %d no-start-limit %v burst %d", name, s.RestartSteps, s.NoStartLimit, s.StartLimitBurst)
		}
	}
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "later", Path: bin}, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.start(ctx, me(), []string{"later"}, false, 0); err != nil {
		t.Fatal(err)
	}
	native("later")
	if _, err := m.stop(ctx, me(), []string{"later"}); err != nil {
		t.Fatal(err)
	}
	delete(f.specs, "later")
	if _, err := m.start(ctx, me(), []string{"later"}, false, 0); err != nil {
		t.Fatal(err)
	}
	native("later")
	// A fixed delay (--restart-sec at the cap) is still told apart as native.
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "fixed", Path: bin, Start: true, RestartSec: wire.Duration(30 * time.Second)}, false, 0); err != nil {
		t.Fatal(err)
	}
	native("fixed")
	// restart=no: no backoff to configure.
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "c", Path: bin, Start: true, Restart: "no"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if s := f.specs["c"]; s.RestartSteps != 0 || s.NoStartLimit {
		t.Fatalf("restart=no got the native backoff: %+v", s)
	}
}

func TestNativeGiveUp(t *testing.T) {
	m, f := nativeManager(t)
	bin := exe(t, t.TempDir(), "svc")
	ctx := t.Context()
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true, MaxRestarts: 3}, false, 0); err != nil {
		t.Fatal(err)
	}
	crash := func(n int, sub units.SubState) {
		t.Helper()
		st := f.Snapshot()["web"]
		st.ActiveState, st.SubState, st.MainPID, st.NRestarts = units.ActiveActivating, sub, 0, n
		st.ExecMainCode, st.ExecMainStatus, st.Restarting = units.CodeExited, 7, true
		f.set(st)
	}
	// Three failed runs are within --max-restarts 3.
	crash(2, units.SubAutoRestart)
	supervised(m)
	if _, ok := f.Snapshot()["web"]; !ok || m.view("web").Status != wire.StatusCrashLoop {
		t.Fatalf("3 failed runs: %+v", m.view("web"))
	}
	// The fourth: systemd already runs a fifth (NRestarts 4, up); the
	// daemon stops it and keeps the crash's exit, not its own SIGTERM.
	st := f.Snapshot()["web"]
	st.ActiveState, st.SubState, st.MainPID, st.NRestarts, st.Restarting = units.ActiveActive, units.SubRunning, 4321, 4, false
	st.ExecMainCode, st.ExecMainStatus = 0, 0
	f.set(st)
	m.noteExits(map[string]units.Status{"web": {ExecMainCode: units.CodeExited, ExecMainStatus: 7}})
	supervised(m)
	if _, ok := f.Snapshot()["web"]; ok {
		t.Fatal("the unit still exists after giving up")
	}
	// What systemd reports after the stop must not replace the crash's exit.
	m.noteExits(map[string]units.Status{"web": {ExecMainCode: units.CodeKilled, ExecMainStatus: 15}})
	v := m.view("web")
	if v.Status != wire.StatusFailed || !strings.Contains(v.Reason, "gave up after 4 failed runs in a row (--max-restarts 3)") || v.LastExit != "exit code 7" {
		t.Fatalf("after giving up: status %s reason %q last exit %q", v.Status, v.Reason, v.LastExit)
	}
	reg, err := m.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if b := reg.at("web").Backoff; b == nil || !b.GaveUp || b.Failures != 4 {
		t.Fatalf("persisted backoff %+v, want given up after 4", b)
	}
	// socketley start tries again with a clean count.
	if _, err := m.start(ctx, me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if v := m.view("web"); v.Status != wire.StatusRunning || v.Failures != 0 {
		t.Fatalf("after socketley start: %+v", v)
	}
}

func TestNativeGiveUpKeepsTryingAfterAFailedStop(t *testing.T) {
	m, f := nativeManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true, MaxRestarts: 1}, false, 0); err != nil {
		t.Fatal(err)
	}
	st := f.Snapshot()["web"]
	st.NRestarts = 2
	f.set(st)
	f.stopErr = errors.New("stop job failed")
	supervised(m)
	if e, _ := m.entry("web"); e.Backoff != nil && e.Backoff.GaveUp {
		t.Fatal("marked given up although the unit still runs")
	}
	f.stopErr = nil
	supervised(m)
	if e, _ := m.entry("web"); e.Backoff == nil || !e.Backoff.GaveUp {
		t.Fatalf("the next pass did not give up: %+v", e.Backoff)
	}
}

func TestNativeReset(t *testing.T) {
	m, f := nativeManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	st := f.Snapshot()["web"]
	st.NRestarts = 6
	f.set(st)
	m.tick(t.Context()) // the clock starts
	if n := f.Snapshot()["web"].NRestarts; n != 6 {
		t.Fatalf("the first tick reset NRestarts (%d); the run must last the reset period", n)
	}
	m.mu.Lock()
	m.obsOf("web").runningSince = time.Now().Add(-DefaultRestartReset)
	m.mu.Unlock()
	m.tick(t.Context())
	got := f.Snapshot()["web"]
	if got.NRestarts != 0 || got.ActiveState != units.ActiveActive || got.MainPID != st.MainPID {
		t.Fatalf("after the reset period: NRestarts %d, %s, pid %d; want 0, active, %d", got.NRestarts, got.ActiveState, got.MainPID, st.MainPID)
	}
	if v := m.view("web"); v.Restarts != 6 || v.Failures != 0 {
		t.Fatalf("after the reset: restarts %d failures %d, want 6 and 0", v.Restarts, v.Failures)
	}
}

// A daemon that died between persisting a give-up and stopping the unit
// finds the unit up again (systemd kept restarting it): it finishes the stop.
func TestNativeGiveUpFinishedAfterACrash(t *testing.T) {
	m, f := nativeManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true, MaxRestarts: 1}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.update(func(r *Registry) error {
		r.mod("web").Backoff = &Backoff{Failures: 2, GaveUp: true}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	supervised(m)
	if _, ok := f.Snapshot()["web"]; ok {
		t.Fatal("a given-up runtime's unit that was up again is still there")
	}
	if v := m.view("web"); v.Status != wire.StatusFailed {
		t.Fatalf("after finishing the give-up: %+v", v)
	}
}

// The reset is done on a fresh reading under the runtime's lock: a unit that
// is gone (a stop folded its NRestarts already) or runs another process than
// the tick saw is not reset, so no restart is counted twice.
func TestNativeResetNeedsTheSameProcess(t *testing.T) {
	m, f := nativeManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	st := f.Snapshot()["web"]
	st.NRestarts = 3
	f.set(st)
	m.nativeResets(t.Context(), map[string]int{"web": st.MainPID + 1})
	if e, _ := m.entry("web"); f.Snapshot()["web"].NRestarts != 3 || e.Restarts != 0 {
		t.Fatalf("reset of another process: NRestarts %d, entry restarts %d", f.Snapshot()["web"].NRestarts, e.Restarts)
	}
	unlock := m.locks.lock("web")
	m.nativeResets(t.Context(), map[string]int{"web": st.MainPID})
	unlock()
	if got := f.Snapshot()["web"].NRestarts; got != 3 {
		t.Fatal("reset while another operation held the runtime")
	}
	m.nativeResets(t.Context(), map[string]int{"web": st.MainPID})
	m.nativeResets(t.Context(), map[string]int{"web": st.MainPID})
	if got, v := f.Snapshot()["web"].NRestarts, m.view("web"); got != 0 || v.Restarts != 3 {
		t.Fatalf("after two resets: NRestarts %d, restarts %d; want 0 and 3 (counted once)", got, v.Restarts)
	}
}
