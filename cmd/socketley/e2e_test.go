//go:build integration

// End-to-end tests: the built socketley binary, a daemon on private paths, and
// the real systemd user manager of the sandbox (scripts/systemd-sandbox.sh).
package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socketley-e2e-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "socketley")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build socketley: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// waitTimeout bounds every wait of these tests (a log line, a reply, a
// state). It only decides how long a broken daemon takes to fail a test: a
// passing test never waits for it, so it is generous for a loaded machine.
const waitTimeout = 30 * time.Second

// mark returns the current end of the daemon's log, for waitLog.
func (e *env) mark() int { return len(e.log.String()) }

// waitLog waits, woken by each write of the daemon (no polling), until re
// matches the daemon's log after offset from, and returns the match's
// submatch indexes (absolute offsets in the log). It fails the test when the
// daemon exits first or after waitTimeout.
func (e *env) waitLog(from int, what string, re *regexp.Regexp) []int {
	e.t.Helper()
	expire := time.NewTimer(waitTimeout)
	defer expire.Stop()
	for {
		s, changed := e.log.Next()
		if m := re.FindStringSubmatchIndex(s[from:]); m != nil {
			for i := range m {
				if m[i] >= 0 {
					m[i] += from
				}
			}
			return m
		}
		select {
		case <-changed:
		case err := <-e.exited:
			e.exited <- err // for stopDaemon
			e.t.Fatalf("the daemon exited (%v) before logging %s", err, what)
		case <-expire.C:
			e.t.Fatalf("the daemon did not log %s within %s", what, waitTimeout)
		}
	}
}

// env is one daemon on private paths plus helpers to drive the CLI.
type env struct {
	t      *testing.T
	dir    string
	sock   string
	state  string
	args   []string // extra daemon flags, for every (re)start
	daemon *exec.Cmd
	log    *testenv.LogBuffer
	exited chan error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t)
}

// newEnvAt starts a daemon for the test on a state directory the test has prepared (a
// tmpfs, say) in dir, which must be a directory of the test (t.TempDir()).
func newEnvAt(t *testing.T, dir, state string, daemonArgs ...string) *env {
	t.Helper()
	testenv.RequireSystemd(t)
	e := &env{t: t, dir: dir, sock: filepath.Join(dir, "run", "socketley.sock"), state: state, args: daemonArgs}
	e.startDaemon()
	t.Cleanup(func() {
		if e.daemon != nil {
			e.run("remove", "*")
			e.stopDaemon(syscall.SIGTERM)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.log.String())
		}
	})
	return e
}

// stateFiles returns the names and contents of every file in the state
// directory but the lock (the registry's snapshot, journal and last good
// copy, whatever their layout), for checks that a command wrote nothing, or
// that a secret is in no state file.
func stateFiles(t *testing.T, dir string) []byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, de := range des {
		if !de.Type().IsRegular() || de.Name() == "daemon.lock" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, de.Name()+"\n"...), b...)
	}
	return all
}

func (e *env) startDaemon() {
	e.t.Helper()
	startDaemonWith(e, e.args...)
}

func (e *env) stopDaemon(sig syscall.Signal) {
	e.t.Helper()
	if e.daemon == nil {
		return
	}
	_ = e.daemon.Process.Signal(sig)
	select {
	case <-e.exited:
	case <-time.After(waitTimeout):
		e.t.Fatalf("daemon did not exit within %s after %v", waitTimeout, sig)
	}
	e.daemon = nil
}

// run runs the CLI against this env's daemon.
func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(binPath, append([]string{"--socket", e.sock}, args...)...)
	cmd.Dir = e.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("socketley %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// show returns the runtime as the daemon reports it.
func (e *env) show(name string) wire.Runtime {
	e.t.Helper()
	var rts []wire.Runtime
	if err := json.Unmarshal([]byte(e.ok("show", name, "-o", "json")), &rts); err != nil || len(rts) != 1 {
		e.t.Fatalf("show %s: %v (%d runtimes)", name, err, len(rts))
	}
	return rts[0]
}

// psPID reads the PID the way the example scripts do: the last column of ps
// (0 for "-": no process, between a crash and its restart).
func (e *env) psPID(name string) int {
	e.t.Helper()
	for _, line := range strings.Split(e.ok("ps"), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == name {
			if f[len(f)-1] == "-" {
				return 0 // between a crash and its restart
			}
			pid, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				e.t.Fatalf("ps last column %q is not a pid", f[len(f)-1])
			}
			return pid
		}
	}
	return 0
}

// unitProp reads one unit property with systemctl --user show.
func unitProp(t *testing.T, name, prop string) string {
	t.Helper()
	out, err := exec.Command("systemctl", "--user", "show", "-p", prop, "--value", "socketley-"+name+".service").Output()
	if err != nil {
		t.Fatalf("systemctl show %s: %v", prop, err)
	}
	return strings.TrimSpace(string(out))
}

// eventually polls cond until it holds or waitTimeout passes. Use it only for
// a state that, once reached, stays (a new pid, a restart count, a journal
// entry), and only where no event (a log line, a reply) marks it.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// script writes an executable shell script into the env's directory.
func (e *env) script(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	marks := filepath.Join(e.dir, "marks")
	// Records start and stop of each process, to prove restart has no overlap.
	e.script("svc.sh", `trap 'echo stop $$ >> `+marks+`; exit 0' TERM
echo start $$ >> `+marks+`
echo "args: $*"
while :; do sleep 0.05; done`)

	// add -s: unit active, ps PID == the unit's MainPID, args with spaces intact.
	e.ok("add", "./svc.sh", "-s", "--env", "GREETING=hello world", "--", "--port", "70 70")
	if got := unitProp(t, "svc", "ActiveState"); got != "active" {
		t.Fatalf("unit ActiveState = %s, want active", got)
	}
	pid := e.psPID("svc")
	if main := unitProp(t, "svc", "MainPID"); strconv.Itoa(pid) != main {
		t.Fatalf("ps PID %d != unit MainPID %s", pid, main)
	}
	env := unitProp(t, "svc", "Environment")
	for _, want := range []string{"SOCKETLEY_MANAGED=1", "SOCKETLEY_NAME=svc", "SOCKETLEY_SOCKET=" + e.sock, "GREETING=hello world"} {
		if !strings.Contains(env, want) {
			t.Fatalf("unit Environment %q lacks %q", env, want)
		}
	}
	if r := e.show("svc"); r.Path != filepath.Join(e.dir, "svc.sh") || len(r.Args) != 2 || r.Args[1] != "70 70" {
		t.Fatalf("show: path %q args %q", r.Path, r.Args)
	}

	// kill -9: systemd restarts it; ps shows the new PID and one restart.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new pid after kill -9", func() bool { p := e.psPID("svc"); return p != 0 && p != pid })
	r := e.show("svc")
	if r.Restarts != 1 || r.PID == pid {
		t.Fatalf("after kill -9: restarts %d pid %d (old %d), want 1 restart and a new pid", r.Restarts, r.PID, pid)
	}
	if main := unitProp(t, "svc", "MainPID"); strconv.Itoa(r.PID) != main {
		t.Fatalf("reported pid %d != MainPID %s", r.PID, main)
	}

	// stop: unit inactive (gone), ls says stopped, process gone.
	pid = r.PID
	e.ok("stop", "svc")
	if st := unitProp(t, "svc", "ActiveState"); st != "inactive" {
		t.Fatalf("after stop: ActiveState %s", st)
	}
	if r := e.show("svc"); r.Status != wire.StatusStopped || r.PID != 0 {
		t.Fatalf("after stop: status %s pid %d", r.Status, r.PID)
	}
	if alive(pid) {
		t.Fatalf("pid %d still alive after stop returned", pid)
	}

	// start: a new pid.
	e.ok("start", "svc")
	pid2 := e.psPID("svc")
	if pid2 == 0 || pid2 == pid {
		t.Fatalf("start: pid %d (old %d)", pid2, pid)
	}

	// restart: the old process has stopped before the new one starts. The
	// script sets its TERM trap before it records its start: a SIGTERM before
	// that line would kill sh without the "stop" record, so wait for it.
	eventually(t, "the process to record its start (its trap is set)", func() bool {
		b, _ := os.ReadFile(marks)
		return strings.Contains(string(b), fmt.Sprintf("start %d\n", pid2))
	})
	_ = os.WriteFile(marks, nil, 0o644)
	e.ok("restart", "svc")
	pid3 := e.psPID("svc")
	eventually(t, "the new process to record its start", func() bool {
		b, _ := os.ReadFile(marks)
		return strings.Count(string(b), "start") == 1
	})
	b, _ := os.ReadFile(marks)
	if want := fmt.Sprintf("stop %d\nstart %d\n", pid2, pid3); string(b) != want {
		t.Fatalf("restart sequence:\n%s\nwant:\n%s", b, want)
	}

	// remove: no unit, no entry, state file updated.
	e.ok("remove", "svc")
	if st := unitProp(t, "svc", "LoadState"); st != "not-found" {
		t.Fatalf("after remove: LoadState %s, want not-found", st)
	}
	if _, _, code := e.run("show", "svc"); code != 1 {
		t.Fatalf("show after remove: exit %d, want 1", code)
	}
	// Other packages' tests share this systemd manager (go test runs
	// packages in parallel): their socketley-* units show as orphans here.
	// Of this daemon's own runtimes, none is left.
	out := e.ok("ls")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("ls without runtimes lacks its header:\n%s", out)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) < 2 || f[1] != "orphan" || f[0] == "svc" {
			t.Fatalf("ls after remove lists a runtime of this daemon: %q\n%s", l, out)
		}
	}
	// The removal is on disk: a restarted daemon does not know svc.
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	if _, _, code := e.run("show", "svc"); code != 1 {
		t.Fatalf("show after remove and a daemon restart: exit %d, want 1", code)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.script("ok.sh", "exec sleep 1000")
	if err := os.WriteFile(filepath.Join(e.dir, "plain"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("add", "./ok.sh", "--name", "taken")
	before := stateFiles(t, e.state)
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"add", "./missing"}, "no such file"},
		{[]string{"add", "."}, "is a directory"},
		{[]string{"add", "./plain"}, "not executable"},
		{[]string{"add", "./ok.sh", "--name", "bad/name"}, "invalid runtime name"},
		{[]string{"add", "./ok.sh", "--name", "taken"}, "add: runtime already exists: taken; choose another --name, or socketley remove taken first"},
		{[]string{"add", "./ok.sh", "--restart", "sometimes"}, "on-failure, always or no"},
		{[]string{"add", "./ok.sh", "--env", "NOVALUE"}, "KEY=VALUE"},
		{[]string{"start", "nope"}, "unknown runtime"},
		{[]string{"stop", "nope*"}, "no runtime matches"},
		{[]string{"remove", "-x-"}, "remove: unknown flag -x-"},
		{[]string{"show", "bad name"}, "invalid runtime name"},
		{[]string{"ls", "-o", "yaml"}, "table or json"},
		{[]string{"frobnicate"}, "unknown command \"frobnicate\": the commands are"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errs, code := e.run(tt.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1 (stderr %q)", code, errs)
			}
			if !strings.Contains(errs, tt.msg) {
				t.Fatalf("stderr %q does not mention %q", errs, tt.msg)
			}
			if after := stateFiles(t, e.state); !bytes.Equal(before, after) {
				t.Fatal("state files changed")
			}
		})
	}
	// Daemon unreachable: exit 2 with a hint.
	_, errs, code := e.run("--socket", filepath.Join(e.dir, "none.sock"), "ls")
	if code != 2 || !strings.Contains(errs, "socketley daemon --user") {
		t.Fatalf("unreachable daemon: exit %d stderr %q", code, errs)
	}
}

func TestDaemonRestartAdoptsAndReboots(t *testing.T) {
	e := newEnv(t)
	e.script("a.sh", "exec sleep 1000")
	e.ok("add", "./a.sh", "--name", "keep", "-s")
	e.ok("add", "./a.sh", "--name", "lost", "-s")
	e.ok("add", "./a.sh", "--name", "idle")
	keepPID := e.psPID("keep")

	// kill -9 of the daemon leaves the process running.
	e.stopDaemon(syscall.SIGKILL)
	if !alive(keepPID) {
		t.Fatal("managed process died with the daemon")
	}
	// Simulated reboot for one unit: it vanishes while the daemon is down.
	if out, err := exec.Command("systemctl", "--user", "stop", "socketley-lost.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl stop: %v %s", err, out)
	}
	e.startDaemon()
	if got := e.psPID("keep"); got != keepPID {
		t.Fatalf("adopted pid %d, want the same pid %d", got, keepPID)
	}
	eventually(t, "the lost unit to be started again", func() bool { return e.psPID("lost") != 0 })
	if st := unitProp(t, "lost", "ActiveState"); st != "active" {
		t.Fatalf("lost unit: %s", st)
	}
	if r := e.show("idle"); r.Status != wire.StatusCreated || r.PID != 0 {
		t.Fatalf("desired-stopped entry: %s pid %d, want created and not running", r.Status, r.PID)
	}

	// SIGTERM: the daemon exits, units keep running.
	e.stopDaemon(syscall.SIGTERM)
	if !alive(keepPID) || unitProp(t, "keep", "ActiveState") != "active" {
		t.Fatal("SIGTERM to the daemon stopped a managed unit")
	}
	e.startDaemon()
	if got := e.psPID("keep"); got != keepPID {
		t.Fatalf("after daemon SIGTERM+start: pid %d, want %d", got, keepPID)
	}
}

func TestOrphanListedAndLeftAlone(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	out, err := exec.Command("systemd-run", "--user", "--unit", "socketley-stray", "sleep", "1000").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-run: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("systemctl", "--user", "stop", "socketley-stray.service").Run() })
	eventually(t, "the orphan to show in ls", func() bool {
		return strings.Contains(e.ok("ls"), "stray")
	})
	ls := e.ok("ls")
	if !strings.Contains(ls, "orphan") {
		t.Fatalf("orphan not marked:\n%s", ls)
	}
	// A daemon restart leaves it alone: it reconciles (which reports the
	// orphan) and then runs health ticks; after two complete ticks, all of
	// that is done and the unit must still be active.
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	e.waitLog(0, "the orphan at reconcile", regexp.MustCompile(`msg="orphan unit: not in the registry, left alone" name=stray `))
	tick := regexp.MustCompile(`msg=tick `)
	e.waitLog(e.waitLog(0, "a tick", tick)[1], "a second tick", tick)
	if st := unitProp(t, "stray", "ActiveState"); st != "active" {
		t.Fatalf("orphan unit %s after daemon restart, want active", st)
	}
	if _, errs, code := e.run("add", e.script("stray", "exec sleep 1"), "-s"); code != 1 || !strings.Contains(errs, "already exists") {
		t.Fatalf("add over an orphan unit: exit %d %q", code, errs)
	}
}

func TestCorruptStateRefused(t *testing.T) {
	testenv.RequireSystemd(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(state, "registry.json")
	if err := os.WriteFile(p, []byte(`{"version":1,"entries":[{"name":`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "daemon", "--user", "--socket", filepath.Join(dir, "s.sock"), "--state-dir", state)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("daemon with corrupt state: %v, want exit 2\n%s", err, out)
	}
	if !strings.Contains(string(out), p) || !strings.Contains(string(out), "corrupt") {
		t.Fatalf("message does not name the corrupt file:\n%s", out)
	}
	if b, _ := os.ReadFile(p); string(b) != `{"version":1,"entries":[{"name":` {
		t.Fatal("corrupt state file was modified")
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	e := newEnv(t)
	out, err := exec.Command(binPath, "daemon", "--user", "--socket", filepath.Join(e.dir, "other.sock"), "--state-dir", e.state).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another socketley daemon") {
		t.Fatalf("second daemon on one state dir: %v\n%s", err, out)
	}
	out, err = exec.Command(binPath, "daemon", "--user", "--socket", e.sock, "--state-dir", filepath.Join(e.dir, "s2")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already listening") {
		t.Fatalf("second daemon on one socket: %v\n%s", err, out)
	}
	e.ok("ls") // the first daemon still serves
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	e.script("talk.sh", `echo "hello from $SOCKETLEY_NAME"; exec sleep 1000`)
	e.ok("add", "./talk.sh", "-s")
	// logs -f (journalctl -f) prints the line when it reaches the journal.
	f := exec.Command(binPath, "--socket", e.sock, "logs", "talk", "-n", "20", "-f")
	f.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the CLI and its journalctl
	out, err := f.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var ferr strings.Builder
	f.Stderr = &ferr
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = syscall.Kill(-f.Process.Pid, syscall.SIGKILL)
			_ = f.Wait()
		}
	}
	defer stop()
	found := make(chan bool, 1)
	var seen strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "hello from talk") {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			stop()
			t.Fatalf("logs -f ended without the line; stdout:\n%s\nstderr: %s", seen.String(), ferr.String())
		}
	case <-time.After(waitTimeout):
		stop()
		t.Fatalf("logs -f: no \"hello from talk\" within %s; stderr: %s", waitTimeout, ferr.String())
	}
	stop()
	if _, errs, code := e.run("logs", "nope"); code != 1 || !strings.Contains(errs, "unknown runtime") {
		t.Fatalf("logs of an unknown runtime: exit %d %q", code, errs)
	}
}

func TestReconnectAfterBusRestart(t *testing.T) {
	e := newEnv(t)
	e.script("r.sh", "exec sleep 1000")
	e.ok("add", "./r.sh", "-s")
	pid := e.psPID("r")
	from := e.mark()
	if out, err := exec.Command("systemctl", "--user", "restart", "dbus.service").CombinedOutput(); err != nil {
		t.Fatalf("restart the session bus: %v %s", err, out)
	}
	// "reconnected" comes before the resync; "reconciled" after it.
	at := e.waitLog(from, "the reconnect", regexp.MustCompile(`msg="reconnected to systemd; resyncing"`))
	e.waitLog(at[1], "the reconcile after the reconnect", regexp.MustCompile(`msg=reconciled `))
	// The daemon kept running, adopted the unit, and can start new ones.
	if got := e.psPID("r"); got != pid {
		t.Fatalf("after reconnect: pid %d, want %d", got, pid)
	}
	e.ok("add", "./r.sh", "--name", "r2", "-s")
	if e.psPID("r2") == 0 {
		t.Fatal("no process for a runtime added after the reconnect")
	}
}
