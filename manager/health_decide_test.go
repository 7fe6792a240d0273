package manager

import (
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// TestDecideHealth: every status a health tick can decide, the action that
// follows and the counters it leaves, including the edges of the attach
// timeout, the reset period, the crash-loop schedule and --health-fails.
func TestDecideHealth(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	zero, one := 0, 1
	managed := func(mod func(e *Entry)) *Entry {
		e := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Restart: "on-failure"}
		if mod != nil {
			mod(e)
		}
		return e
	}
	// attached: expects attach within 3 s; attached by pid 7 on port 80.
	attached := func(mod func(e *Entry)) *Entry {
		return managed(func(e *Entry) {
			e.ExpectAttach, e.AttachTimeout, e.Type, e.Port, e.AttachPID = true, wire.Duration(3*time.Second), "server", 80, 7
			if mod != nil {
				mod(e)
			}
		})
	}
	waiting := func(mod func(e *Entry)) *Entry { // expects attach, not attached yet
		return attached(func(e *Entry) {
			e.Type, e.Port, e.AttachPID = "", 0, 0
			if mod != nil {
				mod(e)
			}
		})
	}
	unit := func(state, sub string, pid int, started time.Duration) *units.Status {
		st := &units.Status{LoadState: "loaded", ActiveState: state, SubState: sub, MainPID: pid}
		if started > 0 {
			st.ExecMainStart = now.Add(-started)
		}
		return st
	}
	active := func(pid int, started time.Duration) *units.Status { return unit("active", "running", pid, started) }
	native := func(nrestarts int) *units.Status {
		st := active(7, time.Hour)
		st.RestartSteps, st.NRestarts = 15, nrestarts
		return st
	}
	failed := func(mod func(st *units.Status)) *units.Status {
		st := unit("failed", "failed", 0, 0)
		st.Result, st.ExecMainCode, st.ExecMainStatus = "exit-code", units.CodeExited, 1
		if mod != nil {
			mod(st)
		}
		return st
	}
	reset := DefaultRestartReset
	unmanaged := &Entry{Name: "x", PID: 42, Port: 80, Type: "server", Desired: DesiredRunning, Started: true}

	tests := []struct {
		name     string
		e        *Entry
		st       *units.Status
		portDown bool
		exited   bool
		obs      observed

		status wire.Status
		reason string
		action healthAction
		pid    int
		ticks  int      // UnhealthyTicks of the decision
		after  observed // Obs of the decision
	}{
		// Desired and stopped states.
		{name: "created: never started", e: managed(func(e *Entry) { e.Started = false }),
			status: wire.StatusCreated},
		{name: "removing: removal not finished", e: managed(func(e *Entry) { e.Desired = DesiredRemoved }), st: active(7, time.Hour),
			status: wire.StatusRemoving, reason: "removal not finished"},
		{name: "stopped: desired stopped, no unit", e: managed(func(e *Entry) { e.Desired = DesiredStopped }),
			status: wire.StatusStopped},
		{name: "stopped: desired running, unit gone", e: managed(nil),
			status: wire.StatusStopped, reason: "its unit is gone"},
		{name: "stopped: desired stopped, gave up", e: managed(func(e *Entry) { e.Desired, e.Backoff = DesiredStopped, &Backoff{GaveUp: true} }),
			status: wire.StatusStopped},
		{name: "stopping: deactivating", e: managed(nil), st: unit("deactivating", "stop-sigterm", 7, time.Hour),
			obs:    observed{runningSince: now.Add(-time.Minute), runningPID: 7},
			status: wire.StatusStopping, after: observed{runningPID: 7}},
		{name: "stopped: listen service exited cleanly", e: managed(func(e *Entry) { e.Listen = []string{"7070"} }), st: unit("inactive", "dead", 0, 0),
			status: wire.StatusStopped, reason: "starts it again at the next connection"},

		// Running, the running clock and the reset period.
		{name: "running: first tick starts the clock", e: managed(nil), st: active(7, time.Hour),
			status: wire.StatusRunning, after: observed{runningSince: now, runningPID: 7}},
		{name: "running: same pid keeps the clock", e: managed(nil), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-5 * time.Second), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-5 * time.Second), runningPID: 7}},
		{name: "running: a new pid restarts the clock, no reset", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 3} }), st: active(8, time.Hour),
			obs:    observed{runningSince: now.Add(-time.Hour), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now, runningPID: 8}},
		{name: "reset edge: just under the reset period", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 3} }), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-reset + time.Nanosecond), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-reset + time.Nanosecond), runningPID: 7}},
		{name: "reset edge: the reset period reached", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 3} }), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-reset), runningPID: 7},
			status: wire.StatusRunning, action: healthResetBackoff, after: observed{runningSince: now.Add(-reset), runningPID: 7}},
		{name: "reset: --restart-reset of the entry", e: managed(func(e *Entry) {
			e.Backoff, e.RestartReset = &Backoff{Failures: 1}, wire.Duration(time.Minute)
		}), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-reset), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-reset), runningPID: 7}},
		{name: "reset: nothing to reset without a backoff", e: managed(nil), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-time.Hour), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-time.Hour), runningPID: 7}},
		{name: "reset: not while a start is pending", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 3, NextAt: now.Add(time.Second)} }), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-time.Hour), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-time.Hour), runningPID: 7}},
		{name: "reset: not after giving up", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 3, GaveUp: true} }), st: active(7, time.Hour),
			obs:    observed{runningSince: now.Add(-time.Hour), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-time.Hour), runningPID: 7}},
		{name: "native reset: systemd's backoff counted failed runs", e: managed(nil), st: native(2),
			obs:    observed{runningSince: now.Add(-reset), runningPID: 7},
			status: wire.StatusRunning, action: healthNativeReset, pid: 7, after: observed{runningSince: now.Add(-reset), runningPID: 7}},
		{name: "native reset: health restarts counted in the entry", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 1} }), st: native(0),
			obs:    observed{runningSince: now.Add(-reset), runningPID: 7},
			status: wire.StatusRunning, action: healthNativeReset, pid: 7, after: observed{runningSince: now.Add(-reset), runningPID: 7}},
		{name: "native reset: nothing counted", e: managed(nil), st: native(0),
			obs:    observed{runningSince: now.Add(-reset), runningPID: 7},
			status: wire.StatusRunning, after: observed{runningSince: now.Add(-reset), runningPID: 7}},

		// Down: the running clock stops (the pid is kept).
		{name: "failed: exit code", e: managed(func(e *Entry) { e.Restart = "no" }), st: failed(nil),
			obs:    observed{runningSince: now.Add(-time.Hour), runningPID: 7, unhealthyTicks: 2},
			status: wire.StatusFailed, reason: "exit code 1", after: observed{runningPID: 7}},
		{name: "restarting: auto-restart", e: managed(nil), st: func() *units.Status {
			st := unit("activating", "auto-restart", 0, 0)
			st.Restarting, st.ExecMainCode, st.ExecMainStatus = true, units.CodeKilled, 9
			return st
		}(), status: wire.StatusRestarting, reason: "signal KILL"},

		// Crash loops.
		{name: "crash-loop: failed with a restart policy, start pending", e: managed(nil), st: failed(nil),
			status: wire.StatusCrashLoop, reason: "exited too soon; restart pending; last exit: exit code 1"},
		{name: "crash-loop: start limit hit", e: managed(func(e *Entry) { e.Restart = "no" }), st: failed(func(st *units.Status) { st.Result = units.ResultStartLimitHit }),
			status: wire.StatusCrashLoop, reason: "start limit hit: it keeps exiting"},
		{name: "crash-loop: next start scheduled", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 4, NextAt: now.Add(1500 * time.Millisecond)} }), st: failed(nil),
			status: wire.StatusCrashLoop, reason: "4 failed runs in a row; next start in 1.5s"},
		{name: "crash-loop edge: next start due now", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 4, NextAt: now} }),
			status: wire.StatusCrashLoop, reason: "next start in 0s"},
		{name: "crash-loop edge: next start overdue", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 4, NextAt: now.Add(-time.Second)} }),
			status: wire.StatusCrashLoop, reason: "next start in 0s"},
		{name: "crash-loop: up again while a start was scheduled", e: managed(func(e *Entry) { e.Backoff = &Backoff{Failures: 4, NextAt: now.Add(time.Second)} }), st: active(7, time.Second),
			status: wire.StatusRunning, after: observed{runningSince: now, runningPID: 7}},
		{name: "gave up: failed", e: managed(func(e *Entry) { e.MaxRestarts, e.Backoff = 2, &Backoff{Failures: 3, GaveUp: true} }), st: failed(nil),
			status: wire.StatusFailed, reason: "gave up after 3 failed runs in a row (--max-restarts 2)"},

		// Attach: the timeout's edge, and the health checks.
		{name: "never attaches: running", e: managed(nil), st: active(7, time.Hour),
			status: wire.StatusRunning, after: observed{runningSince: now, runningPID: 7}},
		{name: "attach timeout edge: just within", e: waiting(nil), st: active(7, 3*time.Second-time.Nanosecond),
			status: wire.StatusStarting, reason: "waiting for pid 7 to attach"},
		{name: "attach timeout edge: reached", e: waiting(nil), st: active(7, 3*time.Second),
			status: wire.StatusUnhealthy, reason: "pid 7 has not attached after 3s", ticks: 1, after: observed{unhealthyTicks: 1}},
		{name: "attach timeout: from ActiveEnter without ExecMainStart", e: waiting(nil), st: func() *units.Status {
			st := active(7, 0)
			st.ActiveEnter = now.Add(-time.Minute)
			return st
		}(), status: wire.StatusUnhealthy, reason: "has not attached after 3s", ticks: 1, after: observed{unhealthyTicks: 1}},
		{name: "attach timeout: default 10s", e: waiting(func(e *Entry) { e.AttachTimeout = 0 }), st: active(7, 9*time.Second),
			status: wire.StatusStarting},
		{name: "attach overdue: third tick restarts (health-fails 3)", e: waiting(nil), st: active(7, time.Minute),
			obs:    observed{unhealthyTicks: 2},
			status: wire.StatusUnhealthy, action: healthRestart, pid: 7, ticks: 3, after: observed{healing: true}},
		{name: "attached by another pid: still waiting", e: waiting(func(e *Entry) { e.AttachPID, e.Type = 6, "server" }), st: active(7, time.Second),
			status: wire.StatusStarting, reason: "waiting for pid 7"},
		{name: "attached, port up: running", e: attached(nil), st: active(7, time.Hour),
			status: wire.StatusRunning, after: observed{runningSince: now, runningPID: 7}},
		{name: "attached, port down: first unhealthy tick", e: attached(nil), st: active(7, time.Hour), portDown: true,
			obs:    observed{runningSince: now.Add(-time.Minute), runningPID: 7},
			status: wire.StatusUnhealthy, reason: "port 80 refuses connections", ticks: 1, after: observed{portDown: true, unhealthyTicks: 1, runningPID: 7}},
		{name: "attached, port down: health-fails reached", e: attached(func(e *Entry) { two := 2; e.HealthFails = &two }), st: active(7, time.Hour), portDown: true,
			obs:    observed{unhealthyTicks: 1},
			status: wire.StatusUnhealthy, action: healthRestart, pid: 7, ticks: 2, after: observed{portDown: true, healing: true}},
		{name: "health-fails 1: the first unhealthy tick restarts", e: attached(func(e *Entry) { e.HealthFails = &one }), st: active(7, time.Hour), portDown: true,
			status: wire.StatusUnhealthy, action: healthRestart, pid: 7, ticks: 1, after: observed{portDown: true, healing: true}},
		{name: "health-fails 0: never restarts", e: attached(func(e *Entry) { e.HealthFails = &zero }), st: active(7, time.Hour), portDown: true,
			obs:    observed{unhealthyTicks: 100},
			status: wire.StatusUnhealthy, ticks: 101, after: observed{portDown: true, unhealthyTicks: 101}},
		{name: "a health restart in progress: counts, no second one", e: attached(nil), st: active(7, time.Hour), portDown: true,
			obs:    observed{unhealthyTicks: 5, healing: true},
			status: wire.StatusUnhealthy, ticks: 6, after: observed{portDown: true, unhealthyTicks: 6, healing: true}},
		{name: "desired stopped: unhealthy, never restarted", e: attached(func(e *Entry) { e.Desired = DesiredStopped }), st: active(7, time.Hour), portDown: true,
			obs:    observed{unhealthyTicks: 10},
			status: wire.StatusUnhealthy, ticks: 11, after: observed{portDown: true, unhealthyTicks: 11}},
		{name: "healthy again: the health-fails count starts over", e: attached(nil), st: active(7, time.Hour),
			obs:    observed{portDown: true, unhealthyTicks: 2},
			status: wire.StatusRunning, after: observed{runningSince: now, runningPID: 7}},
		{name: "starting again: the health-fails count starts over", e: waiting(nil), st: active(8, time.Second),
			obs:    observed{unhealthyTicks: 2, healing: true},
			status: wire.StatusStarting, after: observed{healing: true}},

		// Attached only (unmanaged): shown, forgotten when gone, never restarted.
		{name: "attached only: alive", e: unmanaged,
			status: wire.StatusRunning},
		{name: "attached only: port down is shown, not counted", e: unmanaged, portDown: true,
			obs:    observed{unhealthyTicks: 1},
			status: wire.StatusUnhealthy, reason: "port 80 refuses connections", after: observed{portDown: true, unhealthyTicks: 1}},
		{name: "attached only: exited is forgotten", e: unmanaged, exited: true,
			status: wire.StatusStopped, reason: "attached process 42 exited", action: healthForget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := healthInput{Entry: tt.e, Unit: tt.st, PortDown: tt.portDown, Exited: tt.exited, Obs: tt.obs, Now: now}
			d := decideHealth(in)
			if !d.Status.Known() {
				t.Errorf("status %q is not one of wire.Statuses: clients and the SDK do not know it", d.Status)
			}
			if d.Status != tt.status || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("status %s (%q), want %s (%q)", d.Status, d.Reason, tt.status, tt.reason)
			}
			if d.Action != tt.action || d.PID != tt.pid {
				t.Errorf("action %s pid %d, want %s pid %d", d.Action, d.PID, tt.action, tt.pid)
			}
			if d.UnhealthyTicks != tt.ticks {
				t.Errorf("unhealthy ticks %d, want %d", d.UnhealthyTicks, tt.ticks)
			}
			if d.Obs != tt.after {
				t.Errorf("counters after:\n got  %+v\n want %+v", d.Obs, tt.after)
			}
		})
	}
}

// TestDecideHealthSequence feeds the counters of each decision into the
// next tick, as the tick does: a runtime whose port stays down is restarted
// at the --health-fails-th tick, once; after the restart it attaches again
// and runs; its failure count is reset at the first tick at which it has
// run for the reset period.
func TestDecideHealthSequence(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Restart: "on-failure",
		Type: "server", Port: 80, AttachPID: 7, Backoff: &Backoff{Failures: 2}}
	st := &units.Status{LoadState: "loaded", ActiveState: "active", MainPID: 7, ExecMainStart: start.Add(-time.Hour)}
	var o observed
	tick := func(i int, portDown bool) healthDecision {
		d := decideHealth(healthInput{Entry: e, Unit: st, PortDown: portDown, Obs: o, Now: start.Add(time.Duration(i) * DefaultTick)})
		o = d.Obs
		return d
	}
	var got []string
	for i := range 5 {
		d := tick(i, true)
		got = append(got, string(d.Status)+"/"+d.Action.String())
	}
	want := "unhealthy/none unhealthy/none unhealthy/restart unhealthy/none unhealthy/none"
	if strings.Join(got, " ") != want {
		t.Fatalf("port down for 5 ticks: %s, want %s", strings.Join(got, " "), want)
	}
	// The restart happened: a new process attached.
	o.healing = false
	st = &units.Status{LoadState: "loaded", ActiveState: "active", MainPID: 8, ExecMainStart: start.Add(5 * DefaultTick)}
	e = &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Restart: "on-failure",
		Type: "server", Port: 80, AttachPID: 8, Backoff: &Backoff{Failures: 3}}
	resetAt := -1
	for i := 5; i < 20 && resetAt < 0; i++ {
		d := tick(i, false)
		if d.Status != wire.StatusRunning || d.UnhealthyTicks != 0 {
			t.Fatalf("tick %d after the restart: %s (%d unhealthy ticks)", i, d.Status, d.UnhealthyTicks)
		}
		if d.Action == healthResetBackoff {
			resetAt = i
		}
	}
	// Running since tick 5; the reset period (10 s) is 5 ticks of 2 s.
	if resetAt != 10 {
		t.Fatalf("backoff reset at tick %d, want 10 (10 s after the first running tick)", resetAt)
	}
}
