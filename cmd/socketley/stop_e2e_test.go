//go:build integration

package main_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// A runtime whose first start fails stays registered and wanted running:
// add -s exits 1 with the exit status and the restart policy keeps trying
// (systemd's Restart= and the crash backoff), so a program that recovers
// runs, and one that never does keeps being retried until it is removed.
// add -s used to stop and reset the unit and delete the entry: a runtime
// that should run was lost.
func TestAddStartFailureKept(t *testing.T) {
	tests := []struct {
		name string
		// setup writes the program into dir (it reports each start on the
		// starts FIFO) and returns its path and a fix to apply after add.
		setup func(e *env, st *starts) (bin string, fix func())
		// addFails: add -s must exit 1 (else it may also succeed: the program
		// exited after its start job), with stderr matching failRE.
		addFails bool
		failRE   string
		// runs: the program ends up running (else: it keeps failing).
		runs     bool
		lastExit string
		addArgs  []string
	}{
		{
			// execve fails (its interpreter is missing): the start job fails
			// on every machine; once the interpreter exists it runs.
			name: "cannot execute, then can",
			setup: func(e *env, st *starts) (string, func()) {
				interp := filepath.Join(e.dir, "interp")
				bin := e.script("late", "")
				if err := os.WriteFile(bin, []byte("#!"+interp+"\necho $$ > "+st.path+"\nexec sleep 1000\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return bin, func() {
					if err := os.Symlink("/bin/sh", interp); err != nil {
						t.Fatal(err)
					}
				}
			},
			addFails: true, failRE: `203/EXEC.*restarts it with the crash backoff`, runs: true, lastExit: "exit code 203/EXEC",
		},
		{
			// Exits 1 at once the first time (within its start job on a busy
			// machine, or just after it), then runs.
			name: "exits 1 on its first start, then runs",
			setup: func(e *env, st *starts) (string, func()) {
				marker := filepath.Join(e.dir, "ran-once")
				return e.script("flaky", "if [ ! -e "+marker+" ]; then : > "+marker+"; exit 1; fi\necho $$ > "+st.path+"\nexec sleep 1000"), nil
			},
			failRE: `(status|exit code) 1.*restarts it with the crash backoff`, runs: true, lastExit: "exit code 1",
		},
		{
			// Always exits 3; --wait makes the failure certain to be reported
			// whether it came within the start job or after it.
			name: "always exits 3",
			setup: func(e *env, st *starts) (string, func()) {
				return e.script("broken", "echo $$ > "+st.path+"\nexit 3"), nil
			},
			addArgs: []string{"--wait"}, addFails: true, failRE: `(status|exit code) 3.*restarts it with the crash backoff`, lastExit: "exit code 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			st := newStarts(t, e.dir)
			bin, fix := tt.setup(e, st)
			_, errs, code := e.run(append([]string{"add", bin, "--name", "svc", "-s"}, tt.addArgs...)...)
			switch {
			case code != 0 && code != 1, tt.addFails && code != 1:
				t.Fatalf("add -s: exit %d, want 1\nstderr: %s", code, errs)
			case code == 1 && !regexp.MustCompile(tt.failRE).MatchString(errs):
				t.Fatalf("add -s: stderr %q does not match %q", errs, tt.failRE)
			}
			t.Logf("add -s: exit %d: %s", code, strings.TrimSpace(errs))
			if fix != nil {
				fix()
			}
			// Kept: registered, wanted running, persisted.
			if r := e.show("svc"); r.Desired != "running" {
				t.Fatalf("after add -s: desired %q, want running", r.Desired)
			}
			if tt.runs {
				ev := st.next(t, waitTimeout, "the start that runs")
				eventually(t, "svc is running", func() bool { r := e.show("svc"); return r.Status == wire.StatusRunning && r.PID == ev.pid })
				if r := e.show("svc"); r.LastExit != tt.lastExit {
					t.Errorf("last exit %q, want %q", r.LastExit, tt.lastExit)
				}
			} else {
				// Retried: the first run and two more.
				for _, what := range []string{"the first run", "a retry", "another retry"} {
					st.next(t, waitTimeout, what)
				}
				r := e.show("svc")
				// (The status may be running for the moment a run lasts.)
				if r.Failures < 2 || r.LastExit != tt.lastExit {
					t.Fatalf("while failing: status %s failures %d last exit %q, want ≥ 2 failures and %q",
						r.Status, r.Failures, r.LastExit, tt.lastExit)
				}
				t.Logf("while failing: status %s (%s)", r.Status, r.Reason)
			}
			e.ok("remove", "svc")
			if s := unitProp(t, "svc", "LoadState"); s != "not-found" {
				t.Fatalf("after remove: unit LoadState %s, want not-found", s)
			}
		})
	}
}

// stopAndGone runs a lifecycle command and returns how long it took; the
// process pid must be gone when it returns.
func (e *env) stopAndGone(pid int, args ...string) time.Duration {
	e.t.Helper()
	begin := time.Now()
	e.ok(args...)
	took := time.Since(begin)
	if running(pid) {
		e.t.Fatalf("socketley %s returned after %s with pid %d still alive", strings.Join(args, " "), took, pid)
	}
	return took
}

// running reports whether pid is a live process: not gone, and not dead
// and waiting to be reaped (systemd can report the stop a moment before it
// reaps the main process).
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// A program that ignores SIGTERM is killed after the runtime's stop timeout:
// stop, restart and remove return once it is gone, and restart ends with it
// running again (systemd's default 90 s used to outlast the daemon's 10 s
// wait: restart failed and left the unit deactivating).
func TestStopTimeoutEndsASIGTERMIgnoringProgram(t *testing.T) {
	e := newEnv(t)
	st := newStarts(t, e.dir)
	// SIG_IGN survives exec: sleep ignores SIGTERM as well.
	bin := e.script("stubborn", "trap '' TERM\necho $$ > "+st.path+"\nexec sleep 1000")
	const stopTimeout = time.Second
	e.ok("add", bin, "-s", "--stop-timeout", stopTimeout.String())
	for prop, want := range map[string]string{"TimeoutStopUSec": "1s", "KillMode": "control-group", "SendSIGKILL": "yes"} {
		if got := unitProp(t, "stubborn", prop); got != want {
			t.Errorf("unit %s=%s, want %s", prop, got, want)
		}
	}
	if r := e.show("stubborn"); time.Duration(r.StopTimeout) != stopTimeout {
		t.Errorf("show -o json: stop_timeout %s, want %s", time.Duration(r.StopTimeout), stopTimeout)
	}
	if out := e.ok("show", "stubborn"); !strings.Contains(out, "1s, then SIGKILL") {
		t.Errorf("show does not state the stop timeout:\n%s", out)
	}
	pid := st.next(t, waitTimeout, "first start").pid

	// restart: the old process is killed after the stop timeout; the new one runs.
	begin := time.Now()
	took := e.stopAndGone(pid, "restart", "stubborn")
	next := st.next(t, waitTimeout, "the start after restart")
	r := e.show("stubborn")
	if r.Status != wire.StatusRunning || r.PID != next.pid || next.pid == pid {
		t.Fatalf("after restart: status %s pid %d (started %d, old %d), want running with the new pid", r.Status, r.PID, next.pid, pid)
	}
	if took < stopTimeout {
		t.Errorf("restart took %s, less than the stop timeout %s", took, stopTimeout)
	}
	t.Logf("restart of a SIGTERM-ignoring program (--stop-timeout %s): returned after %s; the new process started %s after the command began",
		stopTimeout, took.Round(time.Millisecond), next.at.Sub(begin).Round(time.Millisecond))

	// restart --wait: returns once the new process counts as running.
	pid = next.pid
	begin = time.Now()
	e.ok("restart", "stubborn", "--wait")
	wtook := time.Since(begin)
	if running(pid) {
		t.Fatalf("restart --wait returned with the old pid %d alive", pid)
	}
	next = st.next(t, waitTimeout, "the start after restart --wait")
	if r := e.show("stubborn"); r.Status != wire.StatusRunning || r.PID != next.pid {
		t.Fatalf("after restart --wait: status %s pid %d, want running pid %d", r.Status, r.PID, next.pid)
	}
	t.Logf("restart --wait: %s until running (stop timeout %s + about 1 s to count as running)", wtook.Round(time.Millisecond), stopTimeout)

	// stop: returns once the process is gone; the runtime shows stopped.
	took = e.stopAndGone(next.pid, "stop", "stubborn")
	if r := e.show("stubborn"); r.Status != wire.StatusStopped || r.PID != 0 {
		t.Fatalf("after stop: status %s (%s) pid %d, want stopped", r.Status, r.Reason, r.PID)
	}
	t.Logf("stop: %s", took.Round(time.Millisecond))

	// remove: the same, and the unit is gone.
	e.ok("start", "stubborn")
	pid = st.next(t, waitTimeout, "the start after stop").pid
	took = e.stopAndGone(pid, "remove", "stubborn")
	if s := unitProp(t, "stubborn", "LoadState"); s != "not-found" {
		t.Fatalf("after remove: LoadState %s, want not-found", s)
	}
	t.Logf("remove: %s", took.Round(time.Millisecond))

	// Without --stop-timeout: 10 s.
	e.ok("add", e.script("plain", "exec sleep 1000"), "--name", "default-timeout", "-s")
	if got := unitProp(t, "default-timeout", "TimeoutStopUSec"); got != "10s" {
		t.Errorf("default TimeoutStopUSec=%s, want 10s", got)
	}
	if r := e.show("default-timeout"); time.Duration(r.StopTimeout) != 10*time.Second {
		t.Errorf("default stop_timeout %s, want 10s", time.Duration(r.StopTimeout))
	}
}

// Arguments reach the program literally: no $VAR, ${VAR} or $$ expansion by
// systemd, no specifiers.
func TestArgsReachTheProgramLiterally(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "args.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	bin := e.script("args", `for a in "$@"; do printf '%s\n' "$a"; done > `+fifo+"\necho END > "+fifo+"\nexec sleep 1000")
	args := []string{"$HOME", "${X}", "$$", "$X$", "%n", "100%", "a b", `\$X`, "$"}
	e.ok(append([]string{"add", bin, "-s", "--env", "X=expanded", "--"}, args...)...)
	var got []string
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the program's arguments: %v (so far %q)", err, got)
		}
		if line = strings.TrimSuffix(line, "\n"); line == "END" {
			break
		}
		got = append(got, line)
	}
	if !slices.Equal(got, args) {
		t.Fatalf("the program got %q, want %q", got, args)
	}
	if rt := e.show("args"); !slices.Equal(rt.Args, args) {
		t.Fatalf("show: args %q, want %q", rt.Args, args)
	}
}
