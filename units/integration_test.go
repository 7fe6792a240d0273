//go:build integration

// Integration tests against a real systemd user manager. Run them in the
// sandbox:
//
//	scripts/systemd-sandbox.sh --journal -- env SOCKETLEY_REQUIRE_SYSTEMD=1 \
//		go test -race -tags integration -count=1 ./units/
//
// No test waits for time: each waits for the event it checks (a job result,
// a state the Watch publishes, a line the unit's process writes to a pipe).
// The bounds below only stop a test that would otherwise hang; none of them
// is a speed goal (those are benchmarks: BenchmarkRestartNudge).
package units_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// hangBound ends a wait that would otherwise hang, and is the deadline of the
// contexts the tests pass (so that the package's short default deadlines,
// meant for callers that set none, never decide a test on a busy machine).
const hangBound = 2 * time.Minute

var seq atomic.Int64

// testCtx returns the test's context with the deadline hangBound.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to the sandbox's user manager; the test runs in parallel.
func dial(t *testing.T) *units.Conn {
	t.Helper()
	testenv.RequireSystemd(t)
	t.Parallel()
	return dialSerial(t)
}

// dialSerial connects to the sandbox's user manager.
func dialSerial(t testing.TB) *units.Conn {
	t.Helper()
	testenv.RequireSystemd(t)
	c, err := units.Dial(testCtx(t), units.User)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newName returns a runtime name unique to this test run, and removes its
// unit when the test ends.
func newName(t testing.TB, c *units.Conn) string {
	t.Helper()
	base := strings.NewReplacer("/", "-", "_", "-").Replace(strings.TrimPrefix(t.Name(), "Test"))
	name := fmt.Sprintf("it-%s-%d-%d", strings.ToLower(base), os.Getpid(), seq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangBound)
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

func subscribe(t testing.TB, c *units.Conn) *units.Watch {
	t.Helper()
	w, err := c.Subscribe(testCtx(t))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// waitWatch checks cond against w's snapshot now and again after every
// change w reports, until cond accepts one; it fails with cond's last
// description when the watch ends or after hangBound. The caller must be the
// only reader of w.Changed() meanwhile.
func waitWatch(t testing.TB, w *units.Watch, cond func(snap map[string]units.Status) (bool, string)) {
	t.Helper()
	bound := time.NewTimer(hangBound)
	defer bound.Stop()
	for {
		ok, desc := cond(w.Snapshot())
		if ok {
			return
		}
		select {
		case <-w.Changed():
		case <-w.Done():
			t.Fatalf("the watch ended (%v) while waiting for: %s", w.Err(), desc)
		case <-bound.C:
			t.Fatalf("no change of the watch brought it within %v: %s", hangBound, desc)
		}
	}
}

// barrier starts a unit of its own and waits until w publishes it. systemd
// sends its signals in order, the Watch applies them in order, and the reads
// they ask for are done together, the older ones no later than the newer:
// once the marker is published, every signal systemd sent before the
// marker's start has been applied, and what it asked to read has been read.
func barrier(t *testing.T, c *units.Conn, w *units.Watch) {
	t.Helper()
	marker := newName(t, c)
	if err := c.Start(testCtx(t), sleeper(marker)); err != nil {
		t.Fatalf("Start of the marker unit: %v", err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		_, ok := snap[marker]
		return ok, "the marker unit " + marker + " is published"
	})
}

// gate is a FIFO from which a unit's script reads a line before it exits
// (see exitAfter), so that the test decides when each run of the process
// exits. A run that exits before systemd has handled its exec (Type=exec)
// fails its start job: a script that only sleeps a little before it exits
// makes Start fail on a busy machine.
type gate struct {
	path string
	f    *os.File
}

// newGate makes the FIFO. The test holds it open for reading and writing:
// the script's open never blocks, and its read waits for a line.
func newGate(t *testing.T) *gate {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &gate{path: path, f: f}
}

// exitAfter returns a shell script that waits for a line from the gate,
// then exits with code.
func (g *gate) exitAfter(code int) []string {
	return []string{"-c", fmt.Sprintf("read x <'%s'; exit %d", g.path, code)}
}

// open lets n runs of the script exit.
func (g *gate) open(t *testing.T, n int) {
	t.Helper()
	if _, err := g.f.WriteString(strings.Repeat("go\n", n)); err != nil {
		t.Fatal(err)
	}
}

func sleeper(name string) units.Spec {
	return units.Spec{Name: name, Path: "/bin/sleep", Args: []string{"300"}}
}

func TestStartStatusStop(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	spec := sleeper(name)
	spec.Env = []string{"SOCKETLEY_TEST=hello world", "SOCKETLEY_NAME=" + name}
	spec.WorkingDirectory = "/tmp"
	// systemd's timestamps have microseconds; the wall clocks are the same.
	before := time.Now().Truncate(time.Microsecond)
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := c.Status(ctx, name)
	after := time.Now()
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
	// Both between Start and the Status that read them, exec before active.
	if st.ExecMainStart.Before(before) || st.ActiveEnter.Before(st.ExecMainStart) || st.ActiveEnter.After(after) {
		t.Errorf("timestamps: ExecMainStart=%v ActiveEnter=%v, want both in [%v, %v], exec first",
			st.ExecMainStart, st.ActiveEnter, before, after)
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
			ctx := testCtx(t)
			spec := units.Spec{Name: name, Path: path, Restart: wire.RestartOnFailure, RestartSec: 100 * time.Millisecond}
			err := c.Start(ctx, spec)
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
			// The unit is left to Restart= (never discarded): it is still
			// loaded, failed or restarting.
			if st, err := c.Status(ctx, name); err != nil {
				t.Errorf("after a failed Start: got %v; want the unit still loaded (left to Restart=)", err)
			} else if st.ActiveState == units.ActiveActive {
				t.Errorf("after a failed Start: %s; want failed or restarting", state(st))
			}
		})
	}
}

// pipe makes a FIFO that a unit's script writes to, opened for reading and
// writing: the script's open never blocks, and reads wait for its lines.
func pipe(t *testing.T) (string, *bufio.Reader) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.SetReadDeadline(time.Now().Add(hangBound)); err != nil {
		t.Fatal(err)
	}
	return path, bufio.NewReader(f)
}

// readLine reads one line the unit's script wrote to a pipe.
func readLine(t *testing.T, r *bufio.Reader, what string) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// zombie reports whether a /proc/PID/stat line is of a dead, unreaped process.
func zombie(stat []byte) bool {
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// A start whose job fails is left to Restart=: once the cause is gone (here
// the script's interpreter appears), systemd's own restart brings the unit
// up. Start used to stop and reset such a unit, which cancelled the restart
// and lost the runtime for good.
func TestFailedStartLeftToRestart(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	w := subscribe(t, c)
	dir := t.TempDir()
	interp := filepath.Join(dir, "interp")
	script := filepath.Join(dir, "svc")
	// Executable, but its interpreter does not exist yet: execve fails
	// (203/EXEC), which fails the start job every time, on any machine.
	if err := os.WriteFile(script, []byte("#!"+interp+"\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := units.Spec{Name: name, Path: script, Restart: wire.RestartOnFailure, RestartSec: 200 * time.Millisecond,
		StartLimitBurst: 1000, StartLimitInterval: time.Second}
	err := c.Start(ctx, spec)
	var je *units.JobError
	if !errors.As(err, &je) || je.Status.ExecMainStatus != 203 {
		t.Fatalf("Start: got %v, want a *JobError with status 203", err)
	}
	if err := os.Symlink("/bin/sh", interp); err != nil {
		t.Fatal(err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		return ok && s.ActiveState == units.ActiveActive && s.MainPID > 0 && s.NRestarts > 0,
			"systemd's Restart= brings the unit up after the failed start; now " + state(s)
	})
}

// Arguments reach the program literally: systemd expands no $VAR, ${VAR}
// or $$ in them (ExecStartEx with no-env-expand), nor specifiers.
func TestArgsLiteral(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	path, r := pipe(t)
	args := []string{"$HOME", "${X}", "$$", "$X$", "%n", "100%", "a b", `\$X`, "$"}
	spec := units.Spec{Name: name, Path: "/bin/sh", Env: []string{"X=expanded", "HOME=/home/expanded"},
		Args: append([]string{"-c", `for a in "$@"; do printf '%s\n' "$a"; done >'` + path + `'; echo END >'` + path + `'; exec sleep 300`, "sh"}, args...)}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var got []string
	for {
		l := readLine(t, r, "the program's arguments")
		if l == "END" {
			break
		}
		got = append(got, l)
	}
	if !slices.Equal(got, args) {
		t.Errorf("the program got %q, want %q", got, args)
	}
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if want := append([]string{"/bin/sh"}, spec.Args...); !slices.Equal(st.ExecStart, want) {
		t.Errorf("ExecStart: got %q, want %q", st.ExecStart, want)
	}
}

// A program that ignores SIGTERM is killed after the unit's stop timeout:
// Stop returns once it is gone, well before systemd's default 90 s.
func TestStopTimeoutKills(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	path, r := pipe(t)
	const stopTimeout = time.Second
	spec := units.Spec{Name: name, Path: "/bin/sh", StopTimeout: stopTimeout,
		Args: []string{"-c", "trap '' TERM; echo $$ >'" + path + "'; exec sleep 300"}}
	if err := c.Start(testCtx(t), spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid, err := strconv.Atoi(readLine(t, r, "the program's pid"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), units.StopWait(stopTimeout))
	defer cancel()
	begin := time.Now()
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	took := time.Since(begin)
	// Gone, or dead and not yet reaped: systemd can send JobRemoved a moment
	// before it reaps the main process.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !zombie(stat) {
		t.Errorf("pid %d still runs after Stop returned: %s", pid, stat)
	}
	if took < stopTimeout {
		t.Errorf("Stop took %s, less than the stop timeout %s: SIGTERM was not ignored?", took, stopTimeout)
	}
	t.Logf("stop of a SIGTERM-ignoring program with a %s stop timeout took %s", stopTimeout, took)
	st, err := c.Status(testCtx(t), name)
	if err != nil || st.ActiveState != units.ActiveFailed || st.Result != units.ResultTimeout || st.LastExit() != "signal KILL" {
		t.Fatalf("after Stop: %s Result=%s, %v; want failed, timeout, signal KILL", state(st), st.Result, err)
	}
}

// state is how a test records a published state.
func state(st units.Status) string {
	return fmt.Sprintf("%s/%s pid=%d restarts=%d restarting=%v last-exit=%q",
		st.ActiveState, st.SubState, st.MainPID, st.NRestarts, st.Restarting, st.LastExit())
}

func TestCrashRestartWatch(t *testing.T) { crashRestartWatch(t, 0) }

// TestCrashRestartWatchOldPath runs TestCrashRestartWatch with the Watch
// taking the manager for systemd 252, whatever it is: on 252 the same as
// TestCrashRestartWatch, on a newer systemd (the systemd-next stage) it
// checks that the settling of every down state, the workaround 252 needs,
// hides the restart there too, while TestCrashRestartWatch runs the generic
// path (only the before-auto-restart sub-states settle).
func TestCrashRestartWatchOldPath(t *testing.T) { crashRestartWatch(t, 252) }

// crashRestartWatch checks that a kill -9 of a unit with Restart=on-failure
// is published as a wait for the restart, never as a failure or a stop; the
// Watch takes the manager for version forced (0: the version it reports).
func crashRestartWatch(t *testing.T, forced int) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	w := subscribe(t, c)
	if forced != 0 {
		w.ForceVersion(forced)
	}
	if v, err := c.ManagerVersion(); err == nil {
		if forced != 0 {
			v = forced
		}
		t.Logf("systemd %d: %s", v, map[bool]string{true: "every down state settles (the 252 workaround)", false: "only the before-auto-restart sub-states settle (generic)"}[v < units.RestartSubStatesVersion])
	}

	spec := sleeper(name)
	spec.Restart = wire.RestartOnFailure
	// The Watch shows the wait for the restart for RestartSec; this test
	// sees it if it reads the snapshot within that time after the change
	// is reported, which a long RestartSec leaves ample room for.
	spec.RestartSec = time.Second
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	oldPID := st.MainPID
	// The crash must come to a watch that has the process up.
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		return ok && s.MainPID == oldPID, fmt.Sprintf("snapshot: %+v (present %v), want MainPID %d", s, ok, oldPID)
	})

	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", oldPID, err)
	}
	// Every state published from the kill on, until the new process runs.
	var published []string
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		if ok && (len(published) == 0 || published[len(published)-1] != state(s)) {
			published = append(published, state(s))
		}
		return s.ActiveState == units.ActiveActive && s.MainPID > 0 && s.MainPID != oldPID && s.NRestarts == 1,
			fmt.Sprintf("snapshot: %s; want active with a new pid and 1 restart", state(s))
	})
	log := strings.Join(published, "\n\t")
	if !slices.ContainsFunc(published, func(s string) bool { return strings.Contains(s, "restarting=true") }) {
		t.Errorf("the watch never published the wait for the restart after the kill; it published:\n\t%s", log)
	}
	if slices.ContainsFunc(published, func(s string) bool {
		return strings.HasPrefix(s, "failed/") || strings.HasPrefix(s, "inactive/")
	}) {
		t.Errorf("the watch published a transient state of the restart:\n\t%s", log)
	}

	st, err = c.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	snap := w.Snapshot()[name]
	if st.MainPID != snap.MainPID || st.NRestarts != 1 || st.Restart != wire.RestartOnFailure {
		t.Errorf("Status: MainPID=%d NRestarts=%d Restart=%q; snapshot MainPID=%d",
			st.MainPID, st.NRestarts, st.Restart, snap.MainPID)
	}
}

func TestCrashLoopStartLimit(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	w := subscribe(t, c)
	g := newGate(t)
	spec := units.Spec{
		Name: name, Path: "/bin/sh", Args: g.exitAfter(1),
		Restart: wire.RestartOnFailure, RestartSec: 100 * time.Millisecond,
		StartLimitBurst: 3, StartLimitInterval: 20 * time.Second,
	}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The first run and the 3 restarts exit; more lines than that, so that
	// runs past the limit would exit too (and show as more restarts).
	g.open(t, 10)
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s := snap[name]
		return s.ActiveState == units.ActiveFailed && s.Result == units.ResultStartLimitHit,
			fmt.Sprintf("snapshot: %s/%s Result=%s NRestarts=%d, want failed start-limit-hit", s.ActiveState, s.SubState, s.Result, s.NRestarts)
	})
	// Nothing restarts the unit now: systemd says the same.
	st, err := c.Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != units.ActiveFailed || st.Result != units.ResultStartLimitHit || st.NRestarts != 3 ||
		st.Restarting || st.LastExit() != "exit code 1" {
		t.Errorf("got %s Result=%q NRestarts=%d Restarting=%v LastExit=%q; want failed, start-limit-hit, 3, false, exit code 1",
			st.ActiveState, st.Result, st.NRestarts, st.Restarting, st.LastExit())
	}

	// The failed unit keeps the name; Start clears it and starts afresh.
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start after the crash loop: %v", err)
	}
	st, err = c.Status(ctx, name)
	if err != nil || st.ActiveState != units.ActiveActive || st.NRestarts != 0 || st.Result != units.ResultSuccess {
		t.Errorf("after restart: %+v, %v; want active, 0 restarts, success", st, err)
	}
}

func TestPlainFailureIsPublished(t *testing.T) { plainFailureIsPublished(t, 0) }

// TestPlainFailureIsPublishedOldPath: TestPlainFailureIsPublished with the
// Watch taking the manager for systemd 252 (see
// TestCrashRestartWatchOldPath): the failure is published after its read.
func TestPlainFailureIsPublishedOldPath(t *testing.T) { plainFailureIsPublished(t, 252) }

// plainFailureIsPublished checks that a unit without a restart that fails
// is published as failed; the Watch takes the manager for version forced
// (0: the version it reports).
func plainFailureIsPublished(t *testing.T, forced int) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	w := subscribe(t, c)
	if forced != 0 {
		w.ForceVersion(forced)
	}
	g := newGate(t)
	spec := units.Spec{Name: name, Path: "/bin/sh", Args: g.exitAfter(3)}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	g.open(t, 1)
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s := snap[name]
		return s.ActiveState == units.ActiveFailed && s.Result == units.ResultExitCode && s.LastExit() == "exit code 3",
			fmt.Sprintf("snapshot: %s/%s Result=%s LastExit=%q; want failed, exit-code, exit code 3",
				s.ActiveState, s.SubState, s.Result, s.LastExit())
	})
	if err := c.ResetFailed(ctx, name); err != nil {
		t.Fatalf("ResetFailed: %v", err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		_, ok := snap[name]
		return !ok, "the reset unit is gone from the snapshot"
	})
}

func TestStopNonZeroOnTerm(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	// The script writes a line to a pipe once its trap is set. Opened for
	// reading and writing, the FIFO neither blocks the open nor reads EOF
	// before the script writes.
	fifo := filepath.Join(t.TempDir(), "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ready, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	spec := units.Spec{Name: name, Path: "/bin/sh",
		Args: []string{"-c", "trap 'exit 7' TERM; echo ready >'" + fifo + "'; while :; do sleep 0.05; done"}}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// Type=exec: the job is done at exec; wait until the trap is set.
	if err := ready.SetReadDeadline(time.Now().Add(hangBound)); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(ready, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("the script did not report its trap: %q, %v", line, err)
	}
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

func TestWatchUnitNewRemoved(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	w := subscribe(t, c)
	if _, ok := w.Snapshot()[name]; ok {
		t.Fatal("unit in the snapshot before Start")
	}
	if err := c.Start(ctx, sleeper(name)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		return ok && s.ActiveState == units.ActiveActive && s.MainPID > 0 && len(s.ExecStart) == 2,
			fmt.Sprintf("snapshot entry: %+v (present %v), want active with a pid", s, ok)
	})
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		s, ok := snap[name]
		return !ok, fmt.Sprintf("the stopped unit is gone from the snapshot; it is %+v", s)
	})

	// Asking about a unit that does not exist makes systemd load a stub
	// (UnitNew + UnitRemoved): the watch must not list it, neither after a
	// Resync nor once it has applied those signals and what they asked for.
	ghost := newName(t, c)
	if _, err := c.Status(ctx, ghost); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Fatalf("Status of %s: got %v, want ErrNoSuchUnit", ghost, err)
	}
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if s, ok := w.Snapshot()[ghost]; ok {
		t.Errorf("a not-found stub is in the snapshot after Resync: %+v", s)
	}
	barrier(t, c, w)
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
	ctx := testCtx(t)
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
	ctx := testCtx(t)
	w, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waits for the watch's goroutine: Done is closed when it returns.
	select {
	case <-w.Done():
	default:
		t.Fatal("Done not closed when Close returned")
	}
	if err := w.Err(); !errors.Is(err, units.ErrWatchClosed) {
		t.Errorf("Err() = %v, want ErrWatchClosed", err)
	}
	if err := w.Resync(ctx); err == nil {
		t.Error("Resync on a closed watch succeeded")
	}
	w.Close() // twice is fine
}

func TestUnitByPIDOutsideUnits(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t)
	// The test process runs outside the user manager's units.
	_, err := c.UnitByPID(ctx, os.Getpid())
	if err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("UnitByPID(self): got %v, want a unit name or ErrNoSuchUnit", err)
	}
	if _, err := c.UnitByPID(ctx, 0); !errors.Is(err, units.ErrInvalid) {
		t.Errorf("UnitByPID(0): got %v, want ErrInvalid", err)
	}
}

func TestWatchSurvivesDaemonReload(t *testing.T) {
	// Not parallel: a reload must not disturb the other tests.
	c := dialSerial(t)
	ctx := testCtx(t)
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
	// waitWatch fails if the watch ends.
	waitWatch(t, w, func(snap map[string]units.Status) (bool, string) {
		_, ok := snap[name]
		return !ok, "the stopped unit is gone from the snapshot"
	})
}

func TestRefresh(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
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
	barrier(t, c, w)
	if s, ok := w.Snapshot()[name]; ok {
		t.Errorf("stopped unit is back in the snapshot: %+v", s)
	}
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if s, ok := w.Snapshot()[name]; ok {
		t.Errorf("stopped unit is back in the snapshot after Resync: %+v", s)
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
	// has at that moment, never a failure that a restart follows. The test
	// refreshes right after every change the watch reports (the moments
	// around a crash) and every few milliseconds in between, until the unit
	// has been restarted `restarts` times, however long that takes.
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	w := subscribe(t, c)
	g := newGate(t)
	const restarts = 3
	spec := units.Spec{Name: name, Path: "/bin/sh", Args: g.exitAfter(1),
		Restart: wire.RestartOnFailure, RestartSec: 30 * time.Millisecond,
		StartLimitBurst: 100, StartLimitInterval: 10 * time.Second}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The first run and the restarts exit; the run after them waits.
	g.open(t, restarts+1)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		st, err := w.Refresh(ctx, name)
		if err != nil {
			t.Fatalf("Refresh %d: %v", n+1, err)
		}
		if st.ActiveState == units.ActiveFailed || st.ActiveState == units.ActiveInactive {
			t.Fatalf("Refresh returned %s/%s Result=%s during a restart cycle (restarts %d)",
				st.ActiveState, st.SubState, st.Result, st.NRestarts)
		}
		n++
		if st.NRestarts >= restarts {
			t.Logf("%d refreshes over %d restarts", n, st.NRestarts)
			return
		}
		select {
		case <-w.Changed():
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the unit did not crash-loop: %d restarts after %d refreshes", st.NRestarts, n)
		}
	}
}

func TestFillMany(t *testing.T) {
	// Not parallel: the switch of the fill (SetPrivateFill) and the count of
	// private fills are global; a parallel test's Subscribe would fill over
	// the bus while it is off, or count as this test's private fill.
	c := dialSerial(t)
	ctx := testCtx(t)
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

	// The reference: each unit read on its own (GetAll).
	byName := map[string]units.Status{}
	for _, n := range names {
		st, err := c.Status(ctx, n)
		if err != nil {
			t.Fatalf("Status %s: %v", n, err)
		}
		byName[n] = st
	}
	before := units.PrivateFills()
	t0 := time.Now()
	w := subscribe(t, c)
	tFill := time.Since(t0)
	if units.PrivateFills() != before+1 {
		t.Errorf("Subscribe did not fill over the private socket (private fills: %d before, %d after)", before, units.PrivateFills())
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
	if units.PrivateFills() != before+1 {
		t.Errorf("Subscribe with the private fill off filled over the private socket")
	}
	snap := w.Snapshot()
	for _, n := range names {
		l, ok := byName[n]
		if !ok || l.ActiveState != units.ActiveActive || l.MainPID <= 0 || len(l.ExecStart) != 2 {
			t.Fatalf("Status of %s: %+v (present %v), want active with a pid", n, l, ok)
		}
		// Nothing changes these units meanwhile: both fills and Status
		// agree on every field.
		for _, f := range []struct {
			how string
			m   map[string]units.Status
		}{{"private", snap}, {"bus", busSnap}} {
			if s, ok := f.m[n]; !ok || fmt.Sprint(s) != fmt.Sprint(l) {
				t.Fatalf("Subscribe's fill (%s) of %s:\n%+v (present %v)\nwant it as Status reads it:\n%+v", f.how, n, s, ok, l)
			}
		}
	}
	t.Logf("%d units: Subscribe %v (over the bus: %v)", count, tFill, tBus)

	t0 = time.Now()
	if err := w.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	t.Logf("Resync with nothing changed: %v", time.Since(t0))
}

// BenchmarkRestartNudge measures how soon after a kill -9 systemd starts the
// new process of a unit with RestartSec=100ms while a Watch runs, with the
// Watch's nudge and without it: systemd alone is late by up to 250 ms (its
// restart timer has sd-event's default accuracy); the Watch wakes it at
// RestartSec. A speed goal, hence a benchmark and not a test (the offline
// TestWatchNudgesRestart checks when the nudges are sent). In the sandbox:
//
//	go test -tags integration -run '^$' -bench RestartNudge ./units/
//
// Reported: ns/op from the kill to the new process, and the median delay
// after RestartSec (in the sandbox on a quiet machine: about 12 ms with the
// nudge, about 150 ms without). The new process is seen in the unit's
// cgroup, polled: a D-Bus call would wake systemd up too.
func BenchmarkRestartNudge(b *testing.B) {
	for _, nudge := range []bool{true, false} {
		b.Run(map[bool]string{true: "nudge", false: "no-nudge"}[nudge], func(b *testing.B) {
			c := dialSerial(b)
			b.Cleanup(units.SetNudge(nudge)) // after the Watch is closed
			ctx := testCtx(b)
			name := newName(b, c)
			w := subscribe(b, c)
			spec := sleeper(name)
			spec.Restart, spec.RestartSec = wire.RestartOnFailure, 100*time.Millisecond
			spec.StartLimitBurst = 1 << 30 // b.N restarts never hit the limit
			if err := c.Start(ctx, spec); err != nil {
				b.Fatalf("Start: %v", err)
			}
			out, err := exec.CommandContext(ctx, "systemctl", "--user", "show", "-p", "ControlGroup", "--value", units.Name(name)).Output()
			if err != nil || len(strings.TrimSpace(string(out))) == 0 {
				b.Fatalf("ControlGroup: %q, %v", out, err)
			}
			procs := filepath.Join("/sys/fs/cgroup", strings.TrimSpace(string(out)), "cgroup.procs")
			pids := func() []string {
				b, _ := os.ReadFile(procs)
				return strings.Fields(string(b))
			}
			var over []time.Duration
			b.StopTimer()
			for range b.N {
				old := pids()
				if len(old) != 1 {
					b.Fatalf("processes in %s: %q, want one", procs, old)
				}
				pid, _ := strconv.Atoi(old[0])
				// The crash must come to a watch that has the process up.
				waitWatch(b, w, func(snap map[string]units.Status) (bool, string) {
					s := snap[name]
					return s.MainPID == pid && s.RestartSec == spec.RestartSec,
						fmt.Sprintf("snapshot: MainPID=%d RestartSec=%v, want %d %v", s.MainPID, s.RestartSec, pid, spec.RestartSec)
				})
				b.StartTimer()
				t0 := time.Now()
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					b.Fatal(err)
				}
				for {
					if p := pids(); len(p) == 1 && p[0] != old[0] {
						break
					}
					if time.Since(t0) > hangBound {
						b.Fatalf("no new process %v after the kill", hangBound)
					}
					time.Sleep(500 * time.Microsecond)
				}
				took := time.Since(t0)
				b.StopTimer()
				over = append(over, took-spec.RestartSec)
			}
			slices.Sort(over)
			b.ReportMetric(float64(over[len(over)/2])/float64(time.Millisecond), "ms-after-RestartSec")
		})
	}
}
