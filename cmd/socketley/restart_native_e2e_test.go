//go:build integration

package main_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// newNativeEnv starts a daemon that asks for systemd's own restart backoff
// and skips the test when the manager is older than systemd 254 (make test
// runs these tests a second time next to a systemd 254 manager: see
// scripts/systemd-next.sh).
func newNativeEnv(t *testing.T, args ...string) *env {
	t.Helper()
	e := newEnvWith(t, append([]string{"--restart-backoff", "systemd", "--tick", fastTick}, args...)...)
	if !strings.Contains(e.log.String(), `msg="restart backoff: systemd's own`) {
		m := regexp.MustCompile(`msg="restart backoff: [^"]*" why="([^"]*)"`).FindStringSubmatch(e.log.String())
		why := "no decision logged"
		if m != nil {
			why = m[1]
		}
		if os.Getenv("SOCKETLEY_REQUIRE_NATIVE") == "1" {
			t.Fatalf("SOCKETLEY_REQUIRE_NATIVE=1 (make test's systemd-next stage) but the daemon did not choose systemd's backoff: %s", why)
		}
		testenv.Skipf(t, "systemd's own restart backoff is not available here (%s); make test runs this test against systemd 254 too", why)
	}
	return e
}

// unitDuration reads a usec unit property (RestartUSecNext, …) as a Duration.
func unitDuration(t *testing.T, name, prop string) time.Duration {
	t.Helper()
	v := unitProp(t, name, prop)
	d, err := time.ParseDuration(strings.ReplaceAll(v, "min", "m"))
	if v == "0" {
		return 0
	}
	if err != nil {
		t.Fatalf("%s=%q: %v", prop, v, err)
	}
	return d
}

// On systemd ≥ 254 systemd does the backoff itself: the delay of the next
// restart grows with every failed run up to --restart-max-delay, systemd
// keeps restarting while the daemon is down, and the daemon resets the
// delay once a run has lasted --restart-reset.
func TestNativeBackoff(t *testing.T) {
	e := newNativeEnv(t)
	st := newStarts(t, e.dir)
	bin := e.failing(st, 1)
	const maxDelay = 400 * time.Millisecond
	e.ok("add", bin, "--name", "nat", "-s", "--restart-max-delay", maxDelay.String(), "--restart-reset", "1s")
	if got := unitProp(t, "nat", "RestartSteps"); got == "" || got == "0" {
		t.Fatalf("RestartSteps=%q: the unit is not under systemd's backoff", got)
	}
	if got := unitProp(t, "nat", "StartLimitIntervalUSec"); got != "0" {
		t.Fatalf("StartLimitIntervalUSec=%q, want 0 (no start limit)", got)
	}

	// Each start is read while the program waits at its gate: the unit's
	// NRestarts and the delay of the next restart are stable then.
	var next []time.Duration
	for i := range 12 {
		st.next(t, 30*time.Second, "start #"+strconv.Itoa(i+1))
		if n, _ := strconv.Atoi(unitProp(t, "nat", "NRestarts")); n != i {
			t.Fatalf("start #%d: NRestarts %d, want %d", i+1, n, i)
		}
		next = append(next, unitDuration(t, "nat", "RestartUSecNext"))
		if i == 6 {
			// The daemon goes away for a while: systemd restarts on its own.
			e.stopDaemon(syscall.SIGKILL)
		}
		st.release(t)
	}
	t.Logf("RestartUSecNext at starts 1..12: %v", next)
	if next[0] > 2*time.Millisecond {
		t.Fatalf("the first restart waits %s, want about 1 ms (at once)", next[0])
	}
	for i := 1; i < len(next); i++ {
		if next[i] < next[i-1] {
			t.Fatalf("the restart delay shrank from %s to %s at start #%d: %v", next[i-1], next[i], i+1, next)
		}
	}
	if last := next[len(next)-1]; last != maxDelay {
		t.Fatalf("after 12 failed runs the delay is %s, want the cap %s: %v", last, maxDelay, next)
	}

	// The daemon is back: it adopts the unit and shows the crash loop.
	e.startDaemon()
	cur := st.next(t, 30*time.Second, "start #13")
	// Left at its gate, this run lasts: after 1 s (the reset period) the
	// daemon resets the unit's NRestarts, so the next delay is 1 ms again.
	from := e.mark()
	e.waitLog(from, "the backoff reset", regexp.MustCompile(`msg="crash backoff: reset \(running for its reset period\)" name=nat restarts=12`))
	if n := unitProp(t, "nat", "NRestarts"); n != "0" {
		t.Fatalf("after the reset NRestarts=%s, want 0", n)
	}
	if d := unitDuration(t, "nat", "RestartUSecNext"); d > 2*time.Millisecond {
		t.Fatalf("after the reset the next restart waits %s, want about 1 ms", d)
	}
	if r := e.show("nat"); r.Restarts != 12 || r.Failures != 0 || r.Status != "running" {
		t.Fatalf("after the reset: restarts %d failures %d status %s, want 12, 0, running", r.Restarts, r.Failures, r.Status)
	}
	st.release(t)
	ev := st.next(t, 30*time.Second, "start after a crash that followed a good run")
	if ev.pid == cur.pid {
		t.Fatal("the same pid started again")
	}
	if n := unitProp(t, "nat", "NRestarts"); n != "1" {
		t.Fatalf("NRestarts=%s after one crash since the reset, want 1", n)
	}
}

// --max-restarts under systemd's backoff: the daemon stops the unit once it
// has failed more runs in a row and says so; socketley start tries again.
func TestNativeMaxRestarts(t *testing.T) {
	e := newNativeEnv(t)
	st := newStarts(t, e.dir)
	bin := e.failing(st, 7)
	e.ok("add", bin, "--name", "nq", "-s", "--max-restarts", "3")
	st.letThrough(t, 4)
	e.waitLog(0, "the give-up", regexp.MustCompile(`msg="crash loop: giving up \(max restarts reached\); socketley start retries" name=nq failures=(4|5)`))
	// systemd may have started a 5th run before the daemon stopped it.
	select {
	case <-st.ch:
	default:
	}
	eventually(t, "nq is given up on", func() bool { return e.show("nq").Status == "failed" })
	r := e.show("nq")
	if !strings.Contains(r.Reason, "failed runs in a row (--max-restarts 3)") || r.LastExit != "exit code 7" {
		t.Fatalf("given up: reason %q last exit %q", r.Reason, r.LastExit)
	}
	if got := unitProp(t, "nq", "ActiveState"); got == "active" || got == "activating" {
		t.Fatalf("the unit is %s after giving up", got)
	}
	e.ok("start", "nq")
	st.next(t, 30*time.Second, "start after socketley start")
	st.release(t)
}
