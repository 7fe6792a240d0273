//go:build integration

package main_test

import (
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
)

// envInt reads a positive integer from the environment, else def.
func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}

// startActivated starts the daemon the way socketley.socket does: the socket
// is bound by systemd-socket-activate, which runs the daemon (with the
// listening socket as fd 3) only when the first connection arrives. It
// returns once the socket listens; nothing runs the daemon yet.
func startActivated(e *env) {
	e.t.Helper()
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		testenv.Skip(e.t, "systemd-socket-activate not installed")
	}
	if err := os.MkdirAll(filepath.Dir(e.sock), 0o700); err != nil {
		e.t.Fatal(err)
	}
	e.log = &testenv.LogBuffer{}
	// systemd-socket-activate passes only the variables named with -E.
	args := []string{"-l", e.sock}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && !strings.HasPrefix(k, "LISTEN_") {
			args = append(args, "-E", k)
		}
	}
	args = append(append(args, binPath, "daemon", "--user", "--socket", e.sock, "--state-dir", e.state, "--log-level", "debug"), e.args...)
	cmd := exec.Command("systemd-socket-activate", args...)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = cmd
	e.exited = make(chan error, 1)
	go func() { e.exited <- cmd.Wait() }()
	e.waitLog(0, "systemd-socket-activate listening", regexp.MustCompile(`Listening on `))
}

// logTime returns the time= attribute of the log line that contains index i.
func logTime(t *testing.T, log string, i int) time.Time {
	t.Helper()
	start := strings.LastIndexByte(log[:i], '\n') + 1
	m := regexp.MustCompile(`^time=(\S+)`).FindStringSubmatch(log[start:])
	if m == nil {
		t.Fatalf("no time= in log line %q", log[start:min(len(log), start+120)])
	}
	ts, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestRebootSocketActivated simulates reboots (issue #10): runtimes that
// attach at startup — C clients that exit when their attach is refused, one
// whose first start exits 1, the Go SDK echo example — are registered; then,
// repeatedly, the daemon and every runtime unit are stopped (what a reboot
// does to transient units) and the daemon is started by its socket on the
// first connection. Each time every runtime must attach with the process
// the boot started (its restart count unchanged: a refused attach would
// make it exit and be restarted), stay active, and not be restarted by the
// health check. The log reports the time from daemon start to all attached
// (a figure, not a limit: machines differ).
// SOCKETLEY_REBOOT_RUNTIMES (default 20) and SOCKETLEY_REBOOTS (default 3)
// size it.
func TestRebootSocketActivated(t *testing.T) {
	n := envInt(t, "SOCKETLEY_REBOOT_RUNTIMES", 20)
	reboots := envInt(t, "SOCKETLEY_REBOOTS", 3)
	e := newEnvWith(t, "--tick", fastTick)
	marker := filepath.Join(e.dir, "first-start-done")
	names, units := addBootRuntimes(e, n, marker)

	var worstAttach, worstAll time.Duration
	for boot := 1; boot <= reboots; boot++ {
		restarts := map[string]int{}
		for _, name := range names {
			restarts[name] = e.show(name).Restarts
		}
		e.stopDaemon(syscall.SIGTERM)
		if out, err := exec.Command("systemctl", append([]string{"--user", "stop"}, units...)...).CombinedOutput(); err != nil {
			t.Fatalf("stop the runtime units: %v\n%s", err, out)
		}
		_ = exec.Command("systemctl", append([]string{"--user", "reset-failed"}, units...)...).Run()
		if err := os.Remove(marker); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		startActivated(e)
		// The first connection starts the daemon; it waits in the backlog.
		poke := make(chan string, 1)
		go func() {
			out, errs, code := e.run("ls")
			poke <- fmt.Sprintf("exit %d: %s%s", code, out, errs)
		}()
		ready := e.waitLog(0, "daemon ready", regexp.MustCompile(`msg="daemon ready" `))
		log := e.log.String()
		readyAt := logTime(t, log, ready[0])
		startAt := logTime(t, log, e.waitLog(0, "listening", regexp.MustCompile(`msg=listening `))[0])
		var lastAttach time.Time
		for _, name := range names {
			m := e.waitLog(0, name+" attached", bootAttachedRE(name))
			at := logTime(t, e.log.String(), m[0])
			worstAttach = max(worstAttach, at.Sub(readyAt))
			if at.After(lastAttach) {
				lastAttach = at
			}
		}
		if p := <-poke; !strings.HasPrefix(p, "exit 0") {
			t.Fatalf("boot %d: the ls that started the daemon: %s", boot, p)
		}
		all := lastAttach.Sub(startAt)
		worstAll = max(worstAll, all)
		// first-fail's failed first start is forgiven once it has run for
		// its reset period.
		e.waitLog(0, "first-fail's backoff reset", regexp.MustCompile(`msg="crash backoff: reset \(running for its reset period\)" name=first-fail`))
		// Three health ticks after everything attached: nothing unhealthy.
		e.waitTicks(len(e.log.String()), 3)
		log = e.log.String()
		if strings.Contains(log, "restarting unhealthy runtime") || strings.Contains(log, "msg=unhealthy") {
			t.Errorf("boot %d: health restart or unhealthy runtime:\n%s", boot, log)
		}
		out, err := exec.Command("systemctl", append([]string{"--user", "is-active"}, units...)...).CombinedOutput()
		if err != nil {
			t.Errorf("boot %d: not every runtime is active: %v\n%s", boot, err, out)
		}
		for _, name := range names {
			if name == "first-fail" {
				continue // its first start exits 1 by design
			}
			if r := e.show(name); r.Restarts != restarts[name] {
				t.Errorf("boot %d: %s was restarted (%d restarts, %d before the boot; last exit %q): its attach was refused or it crashed",
					boot, name, r.Restarts, restarts[name], r.LastExit)
			}
		}
		t.Logf("boot %d: %d runtimes, daemon start -> all attached %s (ready at +%s)", boot, n,
			all.Round(time.Millisecond), readyAt.Sub(startAt).Round(time.Millisecond))
	}
	t.Logf("%d reboots of %d runtimes: worst daemon start -> all attached %s; worst attach after ready %s; 0 health restarts",
		reboots, n, worstAll.Round(time.Millisecond), worstAttach.Round(time.Millisecond))
}

// bootAttachedRE matches the daemon's log line of name's attach.
func bootAttachedRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`msg=attached name=` + regexp.QuoteMeta(name) + ` unit=`)
}

// addBootRuntimes registers n runtimes that attach at startup, as the reboot
// tests use them: the Go SDK echo example, one whose first start (while
// marker is missing) exits 1, and C clients that exit non-zero when their
// attach is refused (a C++ SDK binary that gives up). It waits until each
// attached and returns their names and units.
func addBootRuntimes(e *env, n int, marker string) (names, unitNames []string) {
	t := e.t
	t.Helper()
	cc := cClient(t)
	echo := filepath.Join(e.dir, "echo-service")
	if out, err := exec.Command("go", "build", "-o", echo, "../../examples/echo-service").CombinedOutput(); err != nil {
		t.Fatalf("build the Go SDK echo example: %v\n%s", err, out)
	}
	e.script("csrv.sh", fmt.Sprintf("exec %s serve server \"$SOCKETLEY_NAME\" 0\n", cc))
	e.script("firstfail.sh", fmt.Sprintf("if [ ! -e %[1]s ]; then : > %[1]s; exit 1; fi\nexec %[2]s serve server \"$SOCKETLEY_NAME\" 0\n", marker, cc))
	names = []string{"go-echo", "first-fail"}
	e.ok("add", echo, "--name", "go-echo", "--attach", "-s", "--", "-port", "0")
	// Its failed first start counts as a failed run; the 1 s reset period
	// lets each boot end with the count back at 0 (else the crash backoff
	// would grow from boot to boot, as it should for a runtime that never
	// runs for its reset period).
	// add -s replies "started", or exits 1 when it saw that first start
	// fail (during the start job, or just after it: a race by design); the
	// runtime stays registered either way.
	if out, errs, code := e.run("add", "./firstfail.sh", "--name", "first-fail", "--attach", "--restart-sec", "100ms", "--restart-reset", "1s", "-s"); code != 0 &&
		(code != 1 || !strings.Contains(errs, "first-fail stays registered")) {
		t.Fatalf("add first-fail: exit %d\n%s%s", code, out, errs)
	}
	for i := len(names); i < n; i++ {
		name := fmt.Sprintf("c%03d", i)
		names = append(names, name)
		e.ok("add", "./csrv.sh", "--name", name, "--attach", "-s")
	}
	for _, name := range names {
		e.waitLog(0, name+" attached", bootAttachedRE(name))
	}
	for _, name := range names {
		unitNames = append(unitNames, "socketley-"+name+".service")
	}
	return names, unitNames
}
