//go:build integration

// Integration tests against a real systemd user manager. Run them in the
// sandbox:
//
//	scripts/systemd-sandbox.sh --journal -- env SOCKETLEY_REQUIRE_SYSTEMD=1 \
//		go test -race -tags integration -count=1 ./units/
package units_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/units"
)

var seq atomic.Int64

// dial connects to the sandbox's user manager.
func dial(t *testing.T) *units.Conn {
	t.Helper()
	testenv.RequireSystemd(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := units.Dial(ctx, units.User)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newName returns a runtime name unique to this test run, and removes its
// unit when the test ends.
func newName(t *testing.T, c *units.Conn) string {
	t.Helper()
	base := strings.NewReplacer("/", "-", "_", "-").Replace(strings.TrimPrefix(t.Name(), "Test"))
	name := fmt.Sprintf("it-%s-%d-%d", strings.ToLower(base), os.Getpid(), seq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
			t.Errorf("cleanup: %v", err)
		}
		if err := c.ResetFailed(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

func subscribe(t *testing.T, c *units.Conn) *units.Watch {
	t.Helper()
	w, err := c.Subscribe(t.Context())
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// eventually polls cond every 10 ms until it returns true or timeout passes;
// then it fails with cond's last description.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, desc)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sleeper(name string) units.Spec {
	return units.Spec{Name: name, Path: "/bin/sleep", Args: []string{"300"}}
}

func TestStartStatusStop(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	spec := sleeper(name)
	spec.Env = []string{"SOCKETLEY_TEST=hello world", "SOCKETLEY_NAME=" + name}
	spec.WorkingDirectory = "/tmp"
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.ActiveState != units.ActiveActive || st.SubState != units.SubRunning || st.MainPID <= 0 {
		t.Fatalf("got %s/%s MainPID=%d, want active/running with a pid", st.ActiveState, st.SubState, st.MainPID)
	}
	if st.Unit != units.Name(name) || st.Name != name {
		t.Errorf("got Unit=%q Name=%q, want %q %q", st.Unit, st.Name, units.Name(name), name)
	}
	if want := []string{"/bin/sleep", "300"}; !slices.Equal(st.ExecStart, want) {
		t.Errorf("ExecStart: got %q, want %q", st.ExecStart, want)
	}
	if st.ActiveEnter.IsZero() || st.ExecMainStart.IsZero() || time.Since(st.ActiveEnter) > time.Minute {
		t.Errorf("timestamps: ActiveEnter=%v ExecMainStart=%v", st.ActiveEnter, st.ExecMainStart)
	}
	if st.LastExit() != "" || st.Restarting || st.NRestarts != 0 {
		t.Errorf("fresh unit: LastExit=%q Restarting=%v NRestarts=%d", st.LastExit(), st.Restarting, st.NRestarts)
	}

	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.MainPID))
	if err != nil {
		t.Fatalf("read the environment of pid %d: %v", st.MainPID, err)
	}
	for _, kv := range spec.Env {
		if !slices.Contains(strings.Split(string(environ), "\x00"), kv) {
			t.Errorf("environment of pid %d lacks %q", st.MainPID, kv)
		}
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", st.MainPID)); err != nil || cwd != "/tmp" {
		t.Errorf("cwd of pid %d: got %q, %v; want /tmp", st.MainPID, cwd, err)
	}

	unit, err := c.UnitByPID(ctx, st.MainPID)
	if err != nil || unit != units.Name(name) {
		t.Errorf("UnitByPID(%d): got %q, %v; want %q", st.MainPID, unit, err, units.Name(name))
	}

	if err := c.Start(ctx, spec); !errors.Is(err, units.ErrUnitExists) {
		t.Errorf("second Start: got %v, want ErrUnitExists", err)
	}

	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := c.Status(ctx, name); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("Status after Stop: got %v, want ErrNoSuchUnit", err)
	}
	if err := c.Stop(ctx, name); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("Stop again: got %v, want ErrNoSuchUnit", err)
	}
	if err := c.ResetFailed(ctx, name); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("ResetFailed of a gone unit: got %v, want ErrNoSuchUnit", err)
	}
}

func TestStartNotExecutable(t *testing.T) {
	c := dial(t)
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notExec, "/nonexistent/socketley-binary"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			name := newName(t, c)
			spec := units.Spec{Name: name, Path: path, Restart: units.RestartOnFailure, RestartSec: 100 * time.Millisecond}
			err := c.Start(t.Context(), spec)
			var je *units.JobError
			if !errors.As(err, &je) {
				t.Fatalf("Start: got %v, want a *JobError", err)
			}
			if je.Result != units.JobFailed || je.Status.ExecMainCode != units.CodeExited || je.Status.ExecMainStatus != 203 {
				t.Errorf("got Result=%q code=%d status=%d, want failed, exited, 203",
					je.Result, je.Status.ExecMainCode, je.Status.ExecMainStatus)
			}
			want := "start " + units.Name(name) + ": job failed (unit result: exit-code, exited with status 203/EXEC)"
			if err.Error() != want {
				t.Errorf("message:\ngot  %q\nwant %q", err, want)
			}
			// Restart=on-failure would retry forever; Start leaves nothing behind.
			if st, err := c.Status(t.Context(), name); !errors.Is(err, units.ErrNoSuchUnit) {
				t.Errorf("after a failed Start: got %+v, %v; want ErrNoSuchUnit", st, err)
			}
		})
	}
}

// stateLog records every state a Watch publishes for one runtime.
type stateLog struct {
	mu     sync.Mutex
	states []string
}

func (l *stateLog) follow(t *testing.T, w *units.Watch, name string) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-w.Changed():
			case <-w.Done():
				return
			case <-t.Context().Done():
				return
			}
			if st, ok := w.Snapshot()[name]; ok {
				l.mu.Lock()
				l.states = append(l.states, fmt.Sprintf("%s/%s pid=%d restarts=%d restarting=%v",
					st.ActiveState, st.SubState, st.MainPID, st.NRestarts, st.Restarting))
				l.mu.Unlock()
			}
		}
	}()
}

func (l *stateLog) seen(substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.states, func(s string) bool { return strings.Contains(s, substr) })
}

func (l *stateLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.states, "\n\t")
}

func TestCrashRestartWatch(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	w := subscribe(t, c)
	var log stateLog
	log.follow(t, w, name)

	spec := sleeper(name)
	spec.Restart = units.RestartOnFailure
	spec.RestartSec = 300 * time.Millisecond
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	oldPID := st.MainPID
	eventually(t, 3*time.Second, func() (bool, string) {
		s, ok := w.Snapshot()[name]
		return ok && s.MainPID == oldPID, fmt.Sprintf("snapshot: %+v (present %v), want MainPID %d", s, ok, oldPID)
	})

	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", oldPID, err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		s := w.Snapshot()[name]
		return s.ActiveState == units.ActiveActive && s.MainPID > 0 && s.MainPID != oldPID && s.NRestarts == 1,
			fmt.Sprintf("snapshot: %s/%s MainPID=%d NRestarts=%d; want active with a new pid and 1 restart",
				s.ActiveState, s.SubState, s.MainPID, s.NRestarts)
	})
	if !log.seen("restarting=true") {
		t.Errorf("the watch never published Restarting; it published:\n\t%s", log.String())
	}
	if log.seen("failed/") || log.seen("inactive/") {
		t.Errorf("the watch published a transient state of the restart:\n\t%s", log.String())
	}

	st, err = c.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	snap := w.Snapshot()[name]
	if st.MainPID != snap.MainPID || st.NRestarts != 1 || st.Restart != units.RestartOnFailure {
		t.Errorf("Status: MainPID=%d NRestarts=%d Restart=%q; snapshot MainPID=%d",
			st.MainPID, st.NRestarts, st.Restart, snap.MainPID)
	}
}

func TestCrashLoopStartLimit(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	w := subscribe(t, c)
	// The short sleep lets the start job finish first (Type=exec); a process
	// that exits before that makes Start itself fail.
	spec := units.Spec{
		Name: name, Path: "/bin/sh", Args: []string{"-c", "sleep 0.05; exit 1"},
		Restart: units.RestartOnFailure, RestartSec: 100 * time.Millisecond,
		StartLimitBurst: 3, StartLimitInterval: 20 * time.Second,
	}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		st, err := c.Status(ctx, name)
		return err == nil && st.ActiveState == units.ActiveFailed,
			fmt.Sprintf("Status: %s/%s Result=%s NRestarts=%d err=%v; want failed", st.ActiveState, st.SubState, st.Result, st.NRestarts, err)
	})
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Result != units.ResultStartLimitHit || st.NRestarts != 3 || st.Restarting || st.LastExit() != "exit code 1" {
		t.Errorf("got Result=%q NRestarts=%d Restarting=%v LastExit=%q; want start-limit-hit, 3, false, exit code 1",
			st.Result, st.NRestarts, st.Restarting, st.LastExit())
	}
	eventually(t, 3*time.Second, func() (bool, string) {
		s := w.Snapshot()[name]
		return s.ActiveState == units.ActiveFailed && s.Result == units.ResultStartLimitHit,
			fmt.Sprintf("snapshot: %s/%s Result=%s, want failed start-limit-hit", s.ActiveState, s.SubState, s.Result)
	})

	// The failed unit keeps the name; Start clears it and starts afresh.
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start after the crash loop: %v", err)
	}
	st, err = c.Status(ctx, name)
	if err != nil || st.ActiveState != units.ActiveActive || st.NRestarts != 0 || st.Result != units.ResultSuccess {
		t.Errorf("after restart: %+v, %v; want active, 0 restarts, success", st, err)
	}
}

func TestPlainFailureIsPublished(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	w := subscribe(t, c)
	spec := units.Spec{Name: name, Path: "/bin/sh", Args: []string{"-c", "sleep 0.1; exit 3"}}
	if err := c.Start(t.Context(), spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	eventually(t, 3*time.Second, func() (bool, string) {
		s := w.Snapshot()[name]
		return s.ActiveState == units.ActiveFailed && s.Result == units.ResultExitCode && s.LastExit() == "exit code 3",
			fmt.Sprintf("snapshot: %s/%s Result=%s LastExit=%q; want failed, exit-code, exit code 3",
				s.ActiveState, s.SubState, s.Result, s.LastExit())
	})
	if err := c.ResetFailed(t.Context(), name); err != nil {
		t.Fatalf("ResetFailed: %v", err)
	}
	eventually(t, 3*time.Second, func() (bool, string) {
		_, ok := w.Snapshot()[name]
		return !ok, "the reset unit is still in the snapshot"
	})
}

func TestStopNonZeroOnTerm(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	ready := filepath.Join(t.TempDir(), "ready")
	spec := units.Spec{Name: name, Path: "/bin/sh",
		Args: []string{"-c", "trap 'exit 7' TERM; touch " + ready + "; while :; do sleep 0.05; done"}}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// Type=exec: the job is done at exec; wait until the trap is set.
	eventually(t, 3*time.Second, func() (bool, string) {
		_, err := os.Stat(ready)
		return err == nil, "the script did not start: " + fmt.Sprint(err)
	})
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Exiting non-zero on SIGTERM counts as a failure: the unit stays loaded.
	st, err := c.Status(ctx, name)
	if err != nil || st.ActiveState != units.ActiveFailed || st.LastExit() != "exit code 7" {
		t.Fatalf("after Stop: %s/%s LastExit=%q, %v; want failed, exit code 7", st.ActiveState, st.SubState, st.LastExit(), err)
	}
	if err := c.ResetFailed(ctx, name); err != nil {
		t.Fatalf("ResetFailed: %v", err)
	}
	if _, err := c.Status(ctx, name); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("after ResetFailed: got %v, want ErrNoSuchUnit", err)
	}
}

func TestList(t *testing.T) {
	c := dial(t)
	ctx := t.Context()
	a, b := newName(t, c), newName(t, c)
	for _, n := range []string{a, b} {
		if err := c.Start(ctx, sleeper(n)); err != nil {
			t.Fatalf("Start %s: %v", n, err)
		}
	}
	// A unit outside the pattern.
	other := fmt.Sprintf("notsocketley-%d-%d.service", os.Getpid(), seq.Add(1))
	if out, err := exec.CommandContext(ctx, "systemd-run", "--user", "--unit="+other, "/bin/sleep", "300").CombinedOutput(); err != nil {
		t.Fatalf("systemd-run: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("systemctl", "--user", "stop", other).Run() })

	list, err := c.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, st := range list {
		if n, ok := units.RuntimeName(st.Unit); !ok || n != st.Name {
			t.Errorf("List returned %q (name %q)", st.Unit, st.Name)
		}
		names = append(names, st.Name)
	}
	for _, n := range []string{a, b} {
		if !slices.Contains(names, n) {
			t.Errorf("List lacks %s: %q", n, names)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("List is not sorted: %q", names)
	}
}

func TestWatchUnitNewRemoved(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	w := subscribe(t, c)
	if _, ok := w.Snapshot()[name]; ok {
		t.Fatal("unit in the snapshot before Start")
	}
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	eventually(t, 3*time.Second, func() (bool, string) {
		s, ok := w.Snapshot()[name]
		return ok && s.ActiveState == units.ActiveActive && s.MainPID > 0 && len(s.ExecStart) == 2,
			fmt.Sprintf("snapshot entry: %+v (present %v)", s, ok)
	})
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	eventually(t, 3*time.Second, func() (bool, string) {
		s, ok := w.Snapshot()[name]
		return !ok, fmt.Sprintf("still in the snapshot: %+v", s)
	})

	// Asking about a unit that does not exist makes systemd load a stub
	// (UnitNew + UnitRemoved): the watch must not list it.
	ghost := newName(t, c)
	if _, err := c.Status(ctx, ghost); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Fatalf("Status of %s: got %v, want ErrNoSuchUnit", ghost, err)
	}
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if s, ok := w.Snapshot()[ghost]; ok {
		t.Errorf("a not-found stub is in the snapshot: %+v", s)
	}
	if w.Err() != nil {
		t.Errorf("Err() = %v while running", w.Err())
	}
}

func TestWatchResyncMatchesList(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	w := subscribe(t, c)
	// Subscribe filled the cache: no signal was needed for this unit.
	s, ok := w.Snapshot()[name]
	if !ok || s.ActiveState != units.ActiveActive {
		t.Fatalf("snapshot after Subscribe: %+v (present %v), want the running unit", s, ok)
	}
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	s = w.Snapshot()[name]
	if s.MainPID != st.MainPID || s.ActiveState != st.ActiveState || !slices.Equal(s.ExecStart, st.ExecStart) {
		t.Errorf("snapshot %+v differs from Status %+v", s, st)
	}
}

func TestWatchClose(t *testing.T) {
	c := dial(t)
	w, err := c.Subscribe(t.Context())
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-w.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after Close")
	}
	if err := w.Err(); !errors.Is(err, units.ErrWatchClosed) {
		t.Errorf("Err() = %v, want ErrWatchClosed", err)
	}
	if err := w.Resync(t.Context()); err == nil {
		t.Error("Resync on a closed watch succeeded")
	}
	w.Close() // twice is fine
}

func TestUnitByPIDOutsideUnits(t *testing.T) {
	c := dial(t)
	// The test process runs outside the user manager's units.
	_, err := c.UnitByPID(t.Context(), os.Getpid())
	if err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("UnitByPID(self): got %v, want a unit name or ErrNoSuchUnit", err)
	}
	if _, err := c.UnitByPID(t.Context(), 0); !errors.Is(err, units.ErrInvalid) {
		t.Errorf("UnitByPID(0): got %v, want ErrInvalid", err)
	}
}

func TestWatchSurvivesDaemonReload(t *testing.T) {
	testenv.RequireSystemd(t)
	// Not parallel: a reload must not disturb the other tests.
	ctx := t.Context()
	c, err := units.Dial(ctx, units.User)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	name := newName(t, c)
	w := subscribe(t, c)
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if out, err := exec.CommandContext(ctx, "systemctl", "--user", "daemon-reload").CombinedOutput(); err != nil {
		t.Fatalf("daemon-reload: %v: %s", err, out)
	}
	st, err := c.Status(ctx, name)
	if err != nil || st.ActiveState != units.ActiveActive {
		t.Fatalf("after daemon-reload: %+v, %v; want the unit still active", st, err)
	}
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop after daemon-reload: %v", err)
	}
	eventually(t, 3*time.Second, func() (bool, string) {
		_, ok := w.Snapshot()[name]
		return !ok && w.Err() == nil, fmt.Sprintf("present=%v Err=%v; want the watch alive and the unit gone", ok, w.Err())
	})
}

func TestRefresh(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	w := subscribe(t, c)
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := w.Refresh(ctx, name)
	if err != nil {
		t.Fatalf("Refresh after Start: %v", err)
	}
	if st.ActiveState != units.ActiveActive || st.MainPID <= 0 || len(st.ExecStart) != 2 {
		t.Fatalf("Refresh: %s/%s MainPID=%d ExecStart=%q, want active with a pid", st.ActiveState, st.SubState, st.MainPID, st.ExecStart)
	}
	// Published before Refresh returned: no waiting.
	if s, ok := w.Snapshot()[name]; !ok || s.MainPID != st.MainPID || s.ActiveState != st.ActiveState {
		t.Fatalf("snapshot right after Refresh: %+v (present %v), want MainPID %d", s, ok, st.MainPID)
	}
	direct, err := c.Status(ctx, name)
	if err != nil || direct.MainPID != st.MainPID || !direct.ExecMainStart.Equal(st.ExecMainStart) {
		t.Errorf("Status %+v, %v differs from Refresh %+v", direct, err, st)
	}

	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := w.Refresh(ctx, name); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Fatalf("Refresh after Stop: got %v, want ErrNoSuchUnit", err)
	}
	if s, ok := w.Snapshot()[name]; ok {
		t.Fatalf("stopped unit still in the snapshot right after Refresh: %+v", s)
	}
	// The signals of the stop, older than the read, do not bring it back;
	// neither does the not-found stub that the read made systemd load.
	time.Sleep(200 * time.Millisecond)
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if s, ok := w.Snapshot()[name]; ok {
		t.Errorf("stopped unit is back in the snapshot: %+v", s)
	}

	ghost := newName(t, c)
	if _, err := w.Refresh(ctx, ghost); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("Refresh of a unit that never existed: got %v, want ErrNoSuchUnit", err)
	}
	if _, err := w.Refresh(ctx, "bad/name"); !errors.Is(err, units.ErrInvalid) {
		t.Errorf("Refresh of a bad name: got %v, want ErrInvalid", err)
	}
	if w.Err() != nil {
		t.Errorf("Err() = %v while running", w.Err())
	}
	w.Close()
	if _, err := w.Refresh(ctx, name); !errors.Is(err, units.ErrWatchClosed) {
		t.Errorf("Refresh on a closed watch: got %v, want ErrWatchClosed", err)
	}
}

func TestRefreshWhileCrashLooping(t *testing.T) {
	// Refresh in the middle of a crash-restart cycle returns what systemd
	// has at that moment, never a failure that a restart follows.
	c := dial(t)
	name := newName(t, c)
	ctx := t.Context()
	w := subscribe(t, c)
	spec := units.Spec{Name: name, Path: "/bin/sh", Args: []string{"-c", "sleep 0.05; exit 1"},
		Restart: units.RestartOnFailure, RestartSec: 30 * time.Millisecond,
		StartLimitBurst: 100, StartLimitInterval: 10 * time.Second}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	n := 0
	for time.Now().Before(deadline) {
		st, err := w.Refresh(ctx, name)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if st.ActiveState == units.ActiveFailed || st.ActiveState == units.ActiveInactive {
			t.Fatalf("Refresh returned %s/%s during a restart cycle (restarts %d)", st.ActiveState, st.SubState, st.NRestarts)
		}
		n++
		time.Sleep(7 * time.Millisecond)
	}
	st, err := c.Status(ctx, name)
	if err != nil || st.NRestarts < 3 {
		t.Fatalf("the unit did not crash-loop: %+v, %v", st, err)
	}
	t.Logf("%d refreshes over %d restarts", n, st.NRestarts)
}

func TestListAndFillMany(t *testing.T) {
	c := dial(t)
	ctx := t.Context()
	const count = 200
	names := make([]string, count)
	for i := range names {
		names[i] = newName(t, c)
	}
	// Start them 16 at a time.
	var wg sync.WaitGroup
	errs := make(chan error, count)
	sem := make(chan struct{}, 16)
	for _, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := c.Start(ctx, sleeper(n)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Start: %v", err)
	}

	t0 := time.Now()
	list, err := c.List(ctx)
	tList := time.Since(t0)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	byName := map[string]units.Status{}
	for _, st := range list {
		byName[st.Name] = st
	}
	before := units.PrivateFills()
	t0 = time.Now()
	w := subscribe(t, c)
	tFill := time.Since(t0)
	if units.PrivateFills() == before {
		t.Error("Subscribe did not fill over the private socket")
	}
	// The same fill over the bus (GetAll per unit).
	old := units.SetPrivateFill(false)
	t0 = time.Now()
	wb, err := c.Subscribe(ctx)
	tBus := time.Since(t0)
	units.SetPrivateFill(old)
	if err != nil {
		t.Fatalf("Subscribe over the bus: %v", err)
	}
	busSnap := wb.Snapshot()
	wb.Close()
	snap := w.Snapshot()
	for _, n := range names {
		l, ok := byName[n]
		if !ok || l.ActiveState != units.ActiveActive || l.MainPID <= 0 || len(l.ExecStart) != 2 {
			t.Fatalf("List entry of %s: %+v (present %v), want active with a pid", n, l, ok)
		}
		// Nothing changes these units meanwhile: both fills and List agree
		// on every field.
		for _, f := range []struct {
			how string
			m   map[string]units.Status
		}{{"private", snap}, {"bus", busSnap}} {
			if s, ok := f.m[n]; !ok || fmt.Sprint(s) != fmt.Sprint(l) {
				t.Fatalf("Subscribe's fill (%s) of %s:\n%+v (present %v)\nwant it as listed:\n%+v", f.how, n, s, ok, l)
			}
		}
	}
	if !slices.IsSortedFunc(list, func(a, b units.Status) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("List is not sorted")
	}
	t.Logf("%d units (%d socketley units loaded): List %v, Subscribe %v (over the bus: %v)", count, len(list), tList, tFill, tBus)

	t0 = time.Now()
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	t.Logf("Resync with nothing changed: %v", time.Since(t0))
}

// TestRestartNudge checks that an automatic restart comes about RestartSec
// after a crash while a Watch runs: systemd alone is late by up to 250 ms
// (its restart timer has sd-event's default accuracy); the Watch wakes it.
// Not parallel: D-Bus traffic of other tests would wake systemd too.
func TestRestartNudge(t *testing.T) {
	testenv.RequireSystemd(t)
	ctx := t.Context()
	c, err := units.Dial(ctx, units.User)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	name := newName(t, c)
	w := subscribe(t, c)
	spec := sleeper(name)
	spec.Restart, spec.RestartSec = units.RestartOnFailure, 100*time.Millisecond
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	out, err := exec.CommandContext(ctx, "systemctl", "--user", "show", "-p", "ControlGroup", "--value", units.Name(name)).Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Fatalf("ControlGroup: %q, %v", out, err)
	}
	procs := filepath.Join("/sys/fs/cgroup", strings.TrimSpace(string(out)), "cgroup.procs")
	pids := func() []string {
		b, _ := os.ReadFile(procs)
		return strings.Fields(string(b))
	}
	var took []time.Duration
	for range 3 {
		old := pids()
		if len(old) != 1 {
			t.Fatalf("processes in %s: %q, want one", procs, old)
		}
		pid, _ := strconv.Atoi(old[0])
		eventually(t, 3*time.Second, func() (bool, string) {
			s := w.Snapshot()[name]
			return s.MainPID == pid && s.RestartSec == spec.RestartSec,
				fmt.Sprintf("snapshot: MainPID=%d RestartSec=%v, want %d %v", s.MainPID, s.RestartSec, pid, spec.RestartSec)
		})
		t0 := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Poll the cgroup, not systemd: a D-Bus call would wake it up.
		for {
			if p := pids(); len(p) == 1 && p[0] != old[0] {
				break
			}
			if time.Since(t0) > 5*time.Second {
				t.Fatal("no new process after 5s")
			}
			time.Sleep(500 * time.Microsecond)
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	t.Logf("kill -9 → new process with RestartSec=100ms: %v", took)
	if took[1] > spec.RestartSec+120*time.Millisecond {
		t.Errorf("median restart after kill -9: %v, want ≤ RestartSec + 120ms", took[1])
	}
}
