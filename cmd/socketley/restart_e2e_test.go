//go:build integration

package main_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// starts is a FIFO that the test program writes its pid to each time it
// starts: every line is one start, seen when it happens (no polling). gate
// is a second FIFO a program can wait on (read _ < gate) until the test
// lets it go on (release), so that it exits when the test says.
type starts struct {
	path string
	ch   chan startEvent
	gate string
	gw   *os.File
}

// release lets one waiting (or the next) program go past its gate.
func (s *starts) release(t *testing.T) {
	t.Helper()
	if _, err := s.gw.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
}

// letThrough waits for n starts, releasing each past its gate.
func (s *starts) letThrough(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		s.next(t, 30*time.Second, fmt.Sprintf("start #%d", i+1))
		s.release(t)
	}
}

// failing is a program that reports its start, waits at the gate, then exits with code.
func (e *env) failing(st *starts, code int) string {
	return e.script("fail", fmt.Sprintf("echo $$ > %s\nread _ < %s\nexit %d", st.path, st.gate, code))
}

type startEvent struct {
	pid int
	at  time.Time
}

func newStarts(t *testing.T, dir string) *starts {
	t.Helper()
	p := filepath.Join(dir, "starts.fifo")
	if err := syscall.Mkfifo(p, 0o666); err != nil {
		t.Fatal(err)
	}
	// O_RDWR: the read end never sees EOF between two writers.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(dir, "gate.fifo")
	if err := syscall.Mkfifo(g, 0o666); err != nil {
		t.Fatal(err)
	}
	gw, err := os.OpenFile(g, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	s := &starts{path: p, ch: make(chan startEvent, 1024), gate: g, gw: gw}
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
				s.ch <- startEvent{pid, time.Now()}
			}
		}
	}()
	t.Cleanup(func() { _ = f.Close() })
	return s
}

// next waits for the next start (at most d).
func (s *starts) next(t *testing.T, d time.Duration, what string) startEvent {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-time.After(d):
		t.Fatalf("no start within %s: %s", d, what)
		return startEvent{}
	}
}

// backoffDecision is one "crash loop: restarting after backoff" line of the
// daemon's log: the failed runs in a row it counted and the delay it chose.
type backoffDecision struct {
	failures int
	delay    time.Duration
}

// backoffDecisions reads the daemon's backoff decisions for name, in order.
func backoffDecisions(t *testing.T, log, name string) []backoffDecision {
	t.Helper()
	re := regexp.MustCompile(`msg="crash loop: restarting after backoff" name=` + regexp.QuoteMeta(name) + ` failures=(\d+) delay=(\S+)`)
	var out []backoffDecision
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("bad delay %q in the daemon log", m[2])
		}
		out = append(out, backoffDecision{n, d})
	}
	return out
}

// answers waits until something accepts a connection on port and echoes.
func answers(t *testing.T, port int) {
	t.Helper()
	eventually(t, fmt.Sprintf("port %d answers", port), func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && line == "ping\n"
	})
}

// echoServer is a program that reports its start on the FIFO, then serves
// a line echo on port (python3: one of the packages the tests need).
func (e *env) echoServer(fifo string, port int) string {
	return e.script("echo-srv", fmt.Sprintf(`echo $$ > %s
exec python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d))
s.listen(16)
while True:
    c, _ = s.accept()
    f = c.makefile("rwb")
    for line in f:
        f.write(line); f.flush()
    c.close()
'`, fifo, port))
}

// The tests below pin the daemon's own backoff (--restart-backoff daemon),
// so they check it on every systemd version; restart_native_e2e_test.go
// covers systemd's (≥ 254).

// A service killed 30 times, 0.3 s after each start, is never given up on:
// the delays grow (0, 100ms, 200ms, …) up to the cap, and it answers after.
// Then, once it has run for the reset period, a crash is restarted by
// systemd at once, without the daemon's backoff.
func TestCrashLoopKeepsRestartingWithBackoff(t *testing.T) {
	e := newEnvWith(t, "--restart-backoff", "daemon")
	st := newStarts(t, e.dir)
	port := unassignedPort(t)
	bin := e.echoServer(st.path, port)
	const maxDelay = 400 * time.Millisecond
	e.ok("add", bin, "--name", "loop", "-s", "--restart-max-delay", maxDelay.String(), "--restart-reset", "5s")
	cur := st.next(t, 10*time.Second, "first start")
	type attempt struct {
		kill time.Time
		wait time.Duration // kill -> next start
	}
	var timeline []attempt
	for i := range 30 {
		time.Sleep(300 * time.Millisecond) // the scenario: each run lasts 0.3 s
		if err := syscall.Kill(cur.pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d (#%d): %v", cur.pid, i+1, err)
		}
		killed := time.Now()
		next := st.next(t, 20*time.Second, fmt.Sprintf("restart after kill #%d", i+1))
		if next.pid == cur.pid {
			t.Fatalf("kill #%d: the same pid started again", i+1)
		}
		timeline = append(timeline, attempt{killed, next.at.Sub(killed)})
		cur = next
	}
	answers(t, port)
	var b strings.Builder
	for i, a := range timeline {
		fmt.Fprintf(&b, "#%d +%s ", i+1, a.wait.Round(time.Millisecond))
	}
	t.Logf("kill -> start: %s", b.String())

	// The daemon's decisions: 0, 100ms, 200ms, 400ms (the cap), 400ms, …
	// A run that outlasts the reset period (possible on a very busy
	// machine, where systemd is slow to start a unit) is restarted by
	// systemd itself, without a decision; the next decision then counts 2
	// failures in a row. Each decision follows from that rule, whatever the
	// timing.
	ds := backoffDecisions(t, e.log.String(), "loop")
	bySystemd, capped := 0, false
	for i, d := range ds {
		prev := 0
		if i > 0 {
			prev = ds[i-1].failures
		}
		switch {
		case d.failures == prev+1:
		case d.failures == 2:
			bySystemd++ // the crash before this one was restarted by systemd
		default:
			t.Fatalf("decision #%d counts %d failures after %d (all: %v)", i+1, d.failures, prev, ds)
		}
		want := time.Duration(0)
		if d.failures > 1 {
			want = min(100*time.Millisecond<<(d.failures-2), maxDelay)
		}
		if d.delay != want {
			t.Fatalf("decision #%d: %d failures in a row, delay %s, want %s (all: %v)", i+1, d.failures, d.delay, want, ds)
		}
		capped = capped || d.delay == maxDelay
	}
	// Every crash was handled once: by a decision, or by systemd (the last
	// crash may be systemd's without a decision after it).
	if n := len(ds) + bySystemd; n != 30 && n != 29 {
		t.Fatalf("30 crashes: %d decisions, %d restarts by systemd: %v", len(ds), bySystemd, ds)
	}
	if !capped {
		t.Fatalf("the delay never grew to its cap %s: %v", maxDelay, ds)
	}
	if bySystemd > 0 {
		t.Logf("%d of 30 runs outlasted the reset period (a busy machine): systemd restarted them itself", bySystemd)
	}
	r := e.show("loop")
	if r.Restarts < 30 || r.LastExit != "signal KILL" {
		t.Fatalf("after 30 crashes: restarts %d last exit %q", r.Restarts, r.LastExit)
	}

	// Up for the reset period: the count starts over (the health tick sees it).
	eventually(t, "the backoff count resets after 5s running", func() bool { return e.show("loop").Failures == 0 })
	before, _ := strconv.Atoi(unitProp(t, "loop", "NRestarts"))
	killed := time.Now()
	if err := syscall.Kill(cur.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	next := st.next(t, 10*time.Second, "restart after a long run")
	t.Logf("after the reset period: kill -> start %s", next.at.Sub(killed).Round(time.Millisecond))
	if n, _ := strconv.Atoi(unitProp(t, "loop", "NRestarts")); n != before+1 {
		t.Fatalf("a crash after the reset period was not restarted by systemd itself (NRestarts %d -> %d)", before, n)
	}
	if got := backoffDecisions(t, e.log.String(), "loop"); len(got) != len(ds) {
		t.Fatalf("the daemon's backoff handled a crash after the reset period: %v", got[len(ds):])
	}
	answers(t, port)
}

// --max-restarts 3: three restarts, then socketley gives up and says so;
// socketley start tries again at once.
func TestMaxRestartsGivesUp(t *testing.T) {
	e := newEnvWith(t, "--restart-backoff", "daemon")
	st := newStarts(t, e.dir)
	bin := e.failing(st, 7)
	// The first run waits at its gate until add has returned: add sees it started.
	e.ok("add", bin, "--name", "quitter", "-s", "--max-restarts", "3")
	st.letThrough(t, 4)
	eventually(t, "quitter is given up on", func() bool { return e.show("quitter").Status == "failed" })
	r := e.show("quitter")
	if !strings.Contains(r.Reason, "gave up after 4 failed runs in a row (--max-restarts 3)") || r.LastExit != "exit code 7" {
		t.Fatalf("given up: reason %q last exit %q", r.Reason, r.LastExit)
	}
	if out := e.ok("ls"); !strings.Contains(out, "failed") {
		t.Fatalf("ls does not say failed:\n%s", out)
	}
	e.ok("start", "quitter")
	// The next start is the one socketley start made: no start came in
	// between (a start after giving up would be read here instead).
	ev := st.next(t, 10*time.Second, "start after socketley start")
	if strings.Count(e.log.String(), "crash loop: giving up") != 1 {
		t.Fatalf("want exactly one give-up in the daemon log:\n%s", e.log.String())
	}
	if ev.pid <= 0 {
		t.Fatalf("bad pid %d", ev.pid)
	}
}

// A daemon killed -9 in the middle of a backoff keeps the schedule: the
// next start comes at the persisted time, not at once and not never.
func TestBackoffSurvivesDaemonKill(t *testing.T) {
	e := newEnvWith(t, "--restart-backoff", "daemon")
	st := newStarts(t, e.dir)
	bin := e.failing(st, 1)
	e.ok("add", bin, "--name", "sched", "-s", "--restart-max-delay", "3s")
	// Starts 1..6: delays 0, 100, 200, 400, 800 ms; the 6th failure waits 1.6 s.
	st.letThrough(t, 6)
	var r = e.show("sched")
	eventually(t, "a 1.6s backoff is pending", func() bool {
		r = e.show("sched")
		return r.Failures == 6 && !r.NextRestart.IsZero()
	})
	due, restarts := r.NextRestart, r.Restarts
	if restarts < 5 || r.LastExit != "exit code 1" {
		t.Fatalf("before the daemon kill: restarts %d last exit %q, want ≥ 5 and exit code 1", restarts, r.LastExit)
	}
	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	ev := st.next(t, 15*time.Second, "start after the daemon came back")
	st.release(t)
	if ev.at.Before(due) {
		t.Fatalf("the restarted daemon started it at %s, before the persisted time %s", ev.at.Format(time.StampMilli), due.Format(time.StampMilli))
	}
	if !strings.Contains(e.log.String(), "reconcile: left to the crash backoff") && !strings.Contains(e.log.String(), "adopted") {
		t.Fatalf("the new daemon did not keep the backoff:\n%s", e.log.String())
	}
	// Counts and the last exit are persisted: a daemon restart keeps them.
	if got := e.show("sched"); got.Failures < 6 || got.Restarts < restarts || got.LastExit != "exit code 1" {
		t.Fatalf("lost across the daemon restart: failures %d (want ≥ 6), restarts %d (want ≥ %d), last exit %q",
			got.Failures, got.Restarts, restarts, got.LastExit)
	}
}

// unassignedPort returns a loopback port below the kernel's ephemeral range
// (32768 and up here) that is free now: the kernel never hands such a port
// to a bind(0) or connect, so between this check and the program's own bind
// only a process that asks for that very number could take it.
func unassignedPort(t *testing.T) int {
	t.Helper()
	for p := 20000 + os.Getpid()%5000; p < 32000; p += 7 {
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p
	}
	t.Fatal("no free port below 32000")
	return 0
}
