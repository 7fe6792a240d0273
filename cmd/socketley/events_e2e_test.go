//go:build integration

package main_test

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// why and events name an exit code and a signal, and the journal has the
// events under SOCKETLEY_NAME=.
func TestWhyAndEventsNameTheExit(t *testing.T) {
	e := newEnv(t)
	bin := e.script("three", "exit 3")
	// add may see the run end already (exit 1 then): either way it is registered.
	_, _, _ = e.run("add", bin, "--name", "three", "--restart", "no", "-s")
	eventually(t, "an exited event with code 3", func() bool {
		return strings.Contains(e.ok("events", "three"), "exit code 3")
	})
	var w wire.Why
	if err := json.Unmarshal([]byte(e.ok("why", "three", "-o", "json")), &w); err != nil {
		t.Fatal(err)
	}
	if w.LastExit == nil || w.LastExit.ExitCode == nil || *w.LastExit.ExitCode != 3 {
		t.Fatalf("why: last exit %+v", w.LastExit)
	}
	if out := e.ok("why", "three"); !strings.Contains(out, "last exit: exit code 3") {
		t.Fatalf("why:\n%s", out)
	}
	sleeper := e.script("sleeper", "exec sleep 1000")
	e.ok("add", sleeper, "--name", "killed", "--restart", "no", "-s")
	pid := e.show("killed").PID
	if pid <= 0 {
		t.Fatalf("no pid")
	}
	if err := exec.Command("kill", "-9", itoa(pid)).Run(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an exited event with signal KILL", func() bool {
		out := e.ok("events", "-o", "json", "killed")
		return strings.Contains(out, `"signal":"KILL"`)
	})
	if _, errs, code := e.run("events", "nope"); code != 1 || !strings.Contains(errs, "unknown runtime") {
		t.Fatalf("events of an unknown runtime: exit %d %q", code, errs)
	}
	if _, errs, code := e.run("events", "--since", "yesterday"); code != 1 || !strings.Contains(errs, "--since") {
		t.Fatalf("events --since yesterday: exit %d %q", code, errs)
	}
	if _, err := exec.LookPath("journalctl"); err == nil {
		eventually(t, "journalctl SOCKETLEY_NAME=three lists the exit", func() bool {
			out, _ := exec.Command("journalctl", "--no-pager", "-q", "SOCKETLEY_NAME=three", "SOCKETLEY_EVENT=exited", "-o", "cat").Output()
			return strings.Contains(string(out), "exit code 3")
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// events --since lists events from before a daemon restart (read back from
// the journal), and a crash loop's rounds end in start-limit-hit events,
// which events and why name.
func TestEventsSinceSurvivesDaemonRestart(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		testenv.Skipf(t, "journalctl is not installed: events --since cannot read the journal")
	}
	e := newEnv(t)
	bin := e.script("crash", "exit 5")
	// add may see the first run end already (exit 1 then): either way it is registered.
	_, _, _ = e.run("add", bin, "--name", "crashy", "-s")
	eventually(t, "a start-limit-hit event", func() bool {
		return strings.Contains(e.ok("events", "crashy"), string(wire.EventStartLimitHit))
	})
	// Every round of the crash loop ends in one: why's recent events have it.
	if out := e.ok("why", "crashy"); !strings.Contains(out, string(wire.EventStartLimitHit)) || !strings.Contains(out, "exit code 5") {
		t.Fatalf("why names no start-limit-hit or exit code:\n%s", out)
	}
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	eventually(t, "events --since 1h lists the exit from before the restart", func() bool {
		out, _, code := e.run("events", "--since", "1h", "crashy")
		return code == 0 && strings.Contains(out, "exit code 5") && strings.Contains(out, "added")
	})
}

// events -f prints the events held so far, then each new one as it
// happens, one JSON object per line with -o json, and only those of the
// names given; it ends with exit 0 on SIGINT.
func TestEventsFollow(t *testing.T) {
	e := newEnv(t)
	sleeper := e.script("sleeper", "exec sleep 1000")
	e.ok("add", sleeper, "--name", "fol", "-s")
	e.ok("add", sleeper, "--name", "other", "-s")
	cmd := exec.Command(binPath, "--socket", e.sock, "events", "-f", "-o", "json", "fol")
	cmd.Dir = e.dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan wire.Event)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev wire.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("events -f -o json printed %q: %v", sc.Text(), err)
				return
			}
			lines <- ev
		}
	}()
	// next reads events until one of kind; every one must be fol's.
	next := func(kind wire.EventKind) wire.Event {
		t.Helper()
		for {
			select {
			case ev, ok := <-lines:
				if !ok {
					t.Fatalf("events -f ended before a %s event; stderr: %s", kind, stderr.String())
				}
				if ev.Name != "fol" {
					t.Fatalf("events -f fol printed an event of %s: %+v", ev.Name, ev)
				}
				if ev.Kind == kind {
					return ev
				}
			case <-time.After(waitTimeout):
				t.Fatalf("no %s event from events -f within %s", kind, waitTimeout)
			}
		}
	}
	next(wire.EventStarted) // held before the stream began
	e.ok("stop", "other")   // not fol's: must not be printed
	e.ok("stop", "fol")
	if ev := next(wire.EventStopped); !strings.Contains(ev.Reason, "socketley stop") {
		t.Fatalf("stopped event %+v", ev)
	}
	e.ok("remove", "fol")
	next(wire.EventRemoved)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for ev := range lines {
		if ev.Name != "fol" {
			t.Errorf("events -f fol printed an event of %s: %+v", ev.Name, ev)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("events -f after SIGINT: %v; stderr: %s", err, stderr.String())
	}
}

// A kill -9 of a runtime that systemd restarts at once (Restart=on-failure,
// RestartSec=0, past its reset period) is an exited event naming the
// signal, then a restarted event after it, whatever the daemon was busy
// with when the unit went through its short restart states.
func TestEventsKillThenSystemdRestart(t *testing.T) {
	e := newEnv(t)
	sleeper := e.script("sleeper", "exec sleep 1000")
	e.ok("add", sleeper, "--name", "kr", "--restart-reset", "1s", "-s", "--wait")
	pid := e.show("kr").PID
	// systemd restarts it itself only after a run as long as the reset
	// period (1s); before that, the start limit hands it to the backoff.
	eventually(t, "kr has run for its reset period", func() bool {
		s := e.show("kr")
		return s.PID == pid && time.Since(s.Since) > 1500*time.Millisecond
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var evs []wire.Event
	eventually(t, "a restarted event for kr", func() bool {
		evs = nil
		for _, l := range strings.Split(strings.TrimSpace(e.ok("events", "-o", "json", "kr")), "\n") {
			var ev wire.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("events -o json: %q: %v", l, err)
			}
			evs = append(evs, ev)
		}
		return evs[len(evs)-1].Kind == wire.EventRestarted
	})
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, string(ev.Kind)+"/"+ev.Signal)
	}
	want := []string{"added/", "started/", "exited/KILL", "restarted/"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if r := evs[3].Reason; !strings.Contains(r, "after signal KILL") {
		t.Fatalf("restarted event: %q, want the exit it followed", r)
	}
}
