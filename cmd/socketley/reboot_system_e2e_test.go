//go:build integration

package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// systemdTime parses a timestamp of `systemctl show --timestamp=us+utc`.
func systemdTime(t *testing.T, unit, prop string) time.Time {
	t.Helper()
	out, err := exec.Command("systemctl", "show", "--timestamp=us+utc", "-p", prop, "--value", unit).Output()
	if err != nil {
		t.Fatalf("systemctl show %s %s: %v", prop, unit, err)
	}
	ts, err := time.Parse("Mon 2006-01-02 15:04:05.000000 MST", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("%s of %s: %v", prop, unit, err)
	}
	return ts
}

// systemctl runs systemctl (system manager) and fails the test on error.
func systemctl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
		t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// installSystemUnits installs the packaged socketley.socket unchanged and
// the packaged socketley.service with only its ExecStart= replaced (this
// build, a private state directory, a fast tick, debug logs) and its
// StateDirectory= dropped (it would create /var/lib/socketley) as runtime
// units of the system manager (the sandbox's unit directory, or
// /run/systemd/system), and removes them at the end of the test.
func installSystemUnits(t *testing.T, state string) {
	t.Helper()
	svc, err := os.ReadFile("../../packaging/systemd/socketley.service")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := os.ReadFile("../../packaging/systemd/socketley.socket")
	if err != nil {
		t.Fatal(err)
	}
	const packaged = "ExecStart=/usr/bin/socketley daemon --system\n"
	if !strings.Contains(string(svc), packaged) {
		t.Fatalf("packaging/systemd/socketley.service has no line %q", packaged)
	}
	ours := strings.Replace(string(svc), packaged,
		fmt.Sprintf("ExecStart=%s daemon --system --state-dir %s --tick %s --log-level debug\n", binPath, state, fastTick), 1)
	// StateDirectory= would create /var/lib/socketley on the host (the
	// sandbox shares /var): the state lives in the test's directory.
	var kept []string
	for _, l := range strings.Split(ours, "\n") {
		if !strings.HasPrefix(l, "StateDirectory") {
			kept = append(kept, l)
		}
	}
	ours = strings.Join(kept, "\n")
	// The sandbox's manager reads only its own unit directory
	// (SYSTEMD_UNIT_PATH); a real one reads /run/systemd/system.
	dir := "/run/systemd/system"
	if w := os.Getenv("SDH_WORKDIR"); w != "" {
		dir = filepath.Join(w, "units")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"socketley.service": ours, "socketley.socket": string(sock)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	systemctl(t, "daemon-reload")
	t.Cleanup(func() {
		_ = exec.Command("systemctl", "stop", "socketley.service", "socketley.socket").Run()
		_ = os.Remove(filepath.Join(dir, "socketley.service"))
		_ = os.Remove(filepath.Join(dir, "socketley.socket"))
		_ = exec.Command("systemctl", "daemon-reload").Run()
	})
}

// ensureGroup creates group name (SocketGroup= of the socket unit) if the
// machine lacks it, and deletes it again at the end of the test.
func ensureGroup(t *testing.T, name string) {
	t.Helper()
	if exec.Command("getent", "group", name).Run() == nil {
		return
	}
	if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("groupdel", name).Run() })
}

// followJournal copies the daemon unit's journal (messages only) into a log
// buffer, so that waitLog works as with a daemon the test started itself.
func followJournal(t *testing.T, unit string) *testenv.LogBuffer {
	t.Helper()
	log := &testenv.LogBuffer{}
	cmd := exec.Command("journalctl", "-f", "-n", "0", "-o", "cat", "-u", unit)
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return log
}

// TestRebootSystemSocketUnit is issue #10's reboot test in its real setting:
// systemd as PID 1 (a system-mode sandbox), the packaged socketley.socket
// and socketley.service, 20 runtimes that attach at startup — C clients that
// exit 3 when their attach is refused, one whose first start exits 1, the Go
// SDK echo example — and then, 10 times (SOCKETLEY_REBOOTS), a reboot: every
// socketley-* unit, the daemon and its socket stopped, the socket started
// (sockets.target) and the daemon started by the first connection to it.
// Every time: all 20 active, each attached by the process the boot started
// (its restart count unchanged: a refused attach would make it exit 3), each
// attach within 1 s of the daemon's READY=1, no health restart. Figures:
// daemon start -> all attached, attach after READY. Runs only inside
// `systemd-sandbox.sh --system` (scripts/test.sh, stage system-reboot).
func TestRebootSystemSocketUnit(t *testing.T) {
	if os.Getenv("SOCKETLEY_SYSTEM_SANDBOX") != "1" {
		testenv.Skip(t, "needs systemd as PID 1: run in scripts/systemd-sandbox.sh --system with SOCKETLEY_SYSTEM_SANDBOX=1 (make test's system-reboot stage does)")
	}
	if b, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(b)) != "systemd" {
		t.Fatalf("SOCKETLEY_SYSTEM_SANDBOX=1 but PID 1 is %q, not systemd", b)
	}
	n := envInt(t, "SOCKETLEY_REBOOT_RUNTIMES", 20)
	reboots := envInt(t, "SOCKETLEY_REBOOTS", 10)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	ensureGroup(t, "socketley")
	installSystemUnits(t, state)
	e := &env{t: t, dir: dir, sock: "/run/socketley/socketley.sock", state: state, exited: make(chan error, 1)}
	e.log = followJournal(t, "socketley.service")
	systemctl(t, "start", "socketley.socket")
	systemctl(t, "start", "socketley.service") // returns at READY=1 (Type=notify)
	t.Cleanup(func() {
		e.run("remove", "*")
		if t.Failed() {
			out, _ := exec.Command("journalctl", "-u", "socketley.service", "-n", "200", "--no-pager").CombinedOutput()
			t.Logf("daemon journal:\n%s", out)
		}
	})

	marker := filepath.Join(dir, "first-start-done") // what a reboot clears (/run)
	names, units := addBootRuntimes(e, n, marker)
	listed := func() map[string]wire.Runtime {
		var rts []wire.Runtime
		if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &rts); err != nil {
			t.Fatal(err)
		}
		out := map[string]wire.Runtime{}
		for _, r := range rts {
			out[r.Name] = r
		}
		return out
	}

	var worstAttach, worstAll, sumAll time.Duration
	for boot := 1; boot <= reboots; boot++ {
		before := listed()
		systemctl(t, append([]string{"stop", "socketley.service", "socketley.socket"}, units...)...)
		_ = exec.Command("systemctl", append([]string{"reset-failed", "socketley.service"}, units...)...).Run()
		if err := os.Remove(marker); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		from := e.mark()
		systemctl(t, "start", "socketley.socket")
		// The first connection starts the daemon; it waits in the backlog.
		poke := make(chan string, 1)
		go func() {
			out, errs, code := e.run("ls")
			poke <- fmt.Sprintf("exit %d: %s%s", code, out, errs)
		}()
		e.waitLog(from, "daemon ready", regexp.MustCompile(`msg="daemon ready" `))
		if p := <-poke; !strings.HasPrefix(p, "exit 0") {
			t.Fatalf("boot %d: the ls that started the daemon: %s", boot, p)
		}
		for _, name := range names {
			e.waitLog(from, name+" attached", bootAttachedRE(name))
		}
		started := systemdTime(t, "socketley.service", "ExecMainStartTimestamp")
		ready := systemdTime(t, "socketley.service", "ActiveEnterTimestamp")
		e.waitLog(from, "first-fail's backoff reset", regexp.MustCompile(`msg="crash backoff: reset \(running for its reset period\)" name=first-fail`))
		// Three health ticks after everything attached: nothing unhealthy.
		e.waitTicks(e.mark(), 3)
		if log := e.log.String()[from:]; strings.Contains(log, "restarting unhealthy runtime") || strings.Contains(log, "msg=unhealthy") {
			t.Errorf("boot %d: health restart or unhealthy runtime:\n%s", boot, log)
		}
		if out, err := exec.Command("systemctl", append([]string{"is-active"}, units...)...).CombinedOutput(); err != nil {
			t.Errorf("boot %d: not every runtime is active: %v\n%s", boot, err, out)
		}
		var last time.Time
		after := listed()
		for _, name := range names {
			r := after[name]
			if r.Status != wire.StatusRunning || r.AttachPID == 0 || r.AttachPID != r.PID {
				t.Errorf("boot %d: %s is %s, attached by pid %d, main pid %d; want running and attached by its main process", boot, name, r.Status, r.AttachPID, r.PID)
			}
			if name != "first-fail" && r.Restarts != before[name].Restarts {
				t.Errorf("boot %d: %s was restarted (%d restarts, %d before; last exit %q): its attach was refused or it crashed",
					boot, name, r.Restarts, before[name].Restarts, r.LastExit)
			}
			if d := r.AttachedAt.Sub(ready); d > time.Second {
				t.Errorf("boot %d: %s attached %s after the daemon's READY, want within 1 s", boot, name, d)
			}
			worstAttach = max(worstAttach, r.AttachedAt.Sub(ready))
			if r.AttachedAt.After(last) {
				last = r.AttachedAt
			}
		}
		all := last.Sub(started)
		worstAll = max(worstAll, all)
		sumAll += all
		t.Logf("boot %d: %d runtimes, daemon start -> all attached %s (READY at +%s)", boot, n,
			all.Round(time.Millisecond), ready.Sub(started).Round(time.Millisecond))
	}
	t.Logf("%d reboots (system manager, packaged socket unit) of %d runtimes: daemon start -> all attached mean %s, worst %s; worst attach after READY %s; 0 health restarts",
		reboots, n, (sumAll / time.Duration(reboots)).Round(time.Millisecond), worstAll.Round(time.Millisecond), worstAttach.Round(time.Millisecond))
}
