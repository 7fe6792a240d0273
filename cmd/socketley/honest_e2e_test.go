//go:build integration

package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// Issue #18: replies say only what is known. A program that exits at once
// is reported with its exit, its last output lines from the journal and
// the next steps, with and without --wait; without --wait a reply that
// comes before the exit says "started", never "running".
func TestExitAtOnceReported(t *testing.T) {
	tests := []struct {
		name   string
		body   string // the program: prints, then exits
		exit   string // its exit, as the reply words it
		output string // a line of its output that the reply quotes
		wait   bool
	}{
		{"exit 3, --wait", "echo 'about to exit 3'\nexit 3", "3", "about to exit 3", true},
		{"exit 3", "echo 'about to exit 3'\nexit 3", "3", "about to exit 3", false},
		{"port taken, --wait", "echo 'listen tcp :7070: bind: address already in use' >&2\nexit 1", "1", "listen tcp :7070: bind: address already in use", true},
		{"port taken", "echo 'listen tcp :7070: bind: address already in use' >&2\nexit 1", "1", "listen tcp :7070: bind: address already in use", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.script("prog", tt.body)
			args := []string{"add", "./prog", "-s"}
			if tt.wait {
				args = append(args, "--wait")
			}
			out, errs, code := e.run(args...)
			t.Logf("add -s: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			if strings.Contains(out+errs, ": running") || strings.Contains(out+errs, "is running") {
				t.Fatalf("the reply claims running for a program that exits at once:\n%s%s", out, errs)
			}
			if code == 0 {
				// Without --wait the reply may come before the exit: then it
				// says the unit was started, with its pid, and nothing more.
				if tt.wait {
					t.Fatalf("add -s --wait of a program that exits: exit 0\n%s", out)
				}
				if !regexp.MustCompile(`^prog: started \(unit socketley-prog\.service, pid [0-9]+\)\n$`).MatchString(out) {
					t.Fatalf("add -s: stdout %q, want \"prog: started (unit socketley-prog.service, pid N)\"", out)
				}
				eventually(t, "the exit to show", func() bool { return e.show("prog").LastExit == "exit code "+tt.exit })
				return
			}
			if code != 1 || out != "" {
				t.Fatalf("add -s: exit %d stdout %q, want exit 1 and the report on stderr", code, out)
			}
			// The exit: seen by --wait, at the reply, or as the start job's failure.
			head := `^socketley: add(: prog was started \(unit socketley-prog\.service\) but its process has already exited \(exit code ` + tt.exit + `\)` +
				`| prog: prog exited \(exit code ` + tt.exit + `\) and [^;\n]*` +
				`| prog: registered, but its start failed: .*exited with status ` + tt.exit + `\))` +
				`; prog stays registered and is left to its restart policy \(--restart on-failure\): socketley restarts it with the crash backoff, ls shows crash-loop meanwhile\n`
			if !regexp.MustCompile(head).MatchString(errs) {
				t.Fatalf("stderr does not start with the exit and what follows:\n%s\nwant it to match %s", errs, head)
			}
			if !strings.Contains(errs, "\nits last output (from the journal):\n") || !strings.Contains(errs, "\n  "+tt.output+"\n") {
				t.Fatalf("stderr lacks the program's last output %q from the journal:\n%s", tt.output, errs)
			}
			if !strings.HasSuffix(errs, "\nnext: socketley logs prog shows its output; fix the program, then socketley start prog; or socketley remove prog drops it\n") {
				t.Fatalf("stderr does not end with the next steps:\n%s", errs)
			}
			// What it said: still registered, wanted running, retried.
			if r := e.show("prog"); r.Desired != "running" {
				t.Fatalf("after the failed add -s: desired %q, want running", r.Desired)
			}
		})
	}
}

// start and restart without --wait say "started"/"stopped, then started"
// with the pid; an already running runtime is left alone and said so.
func TestStartRepliesStarted(t *testing.T) {
	e := newEnv(t)
	e.script("svc", "exec sleep 1000")
	e.ok("add", "./svc")
	re := regexp.MustCompile(`^svc: started \(unit socketley-svc\.service, pid ([0-9]+)\)\n$`)
	if out := e.ok("start", "svc"); !re.MatchString(out) {
		t.Fatalf("start: %q, want %s", out, re)
	}
	if out, want := e.ok("start", "svc"), fmt.Sprintf("svc: already started (unit socketley-svc.service, pid %d, status running); left alone\n", e.show("svc").PID); out != want {
		t.Fatalf("start of a running runtime: %q, want %q", out, want)
	}
	if out := e.ok("restart", "svc"); !regexp.MustCompile(`^svc: stopped, then started \(unit socketley-svc\.service, pid [0-9]+\)\n$`).MatchString(out) {
		t.Fatalf("restart: %q", out)
	}
	if out := e.ok("restart", "svc", "--wait"); !regexp.MustCompile(`^svc: running \(unit socketley-svc\.service, pid [0-9]+\)\n$`).MatchString(out) {
		t.Fatalf("restart --wait: %q", out)
	}
}

// ps lists a runtime between a crash and its restart: status restarting,
// PID "-". systemd holds the unit in auto-restart for --restart-sec (an
// hour here), so the gap lasts for the whole test.
func TestPSDuringRestartGap(t *testing.T) {
	e := newEnv(t)
	st := newStarts(t, e.dir)
	e.failing(st, 3)
	e.ok("add", "./fail", "--name", "gap", "-s", "--restart-sec", "1h", "--restart-max-delay", "2h")
	st.next(t, waitTimeout, "the first run")
	st.release(t) // it exits 3
	eventually(t, "gap to wait for its restart", func() bool { return e.show("gap").Status == wire.StatusRestarting })
	out := e.ok("ps")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("ps during the restart gap:\n%s\nwant the header and gap", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 10 || f[0] != "gap" || f[3] != string(wire.StatusRestarting) || f[9] != "-" {
		t.Fatalf("ps row %q, want gap restarting with PID -", lines[1])
	}
	var rts []wire.Runtime
	if err := json.Unmarshal([]byte(e.ok("ps", "-o", "json")), &rts); err != nil || len(rts) != 1 || rts[0].Status != wire.StatusRestarting || rts[0].PID != 0 {
		t.Fatalf("ps -o json during the gap: %v %+v", err, rts)
	}
	// Stopped, it is not wanted running: ps leaves it out.
	e.ok("stop", "gap")
	if out := e.ok("ps"); strings.Count(out, "\n") != 1 {
		t.Fatalf("ps after stop:\n%s", out)
	}
}

// eval "$(socketley env)" points a program started by hand at the daemon in
// use: a C++-SDK-style client (it looks only at $SOCKETLEY_SOCKET, then the
// system and /tmp sockets) attaches through it.
func TestEnvLetsUnmanagedClientsAttach(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command("sh", "-c", `eval "$("$0" --socket "$1" env)" && exec "$2" serve server envc 0`, binPath, e.sock, cClient(t))
	cmd.Env = slicesWithout(os.Environ(), "SOCKETLEY_SOCKET=", "SOCKETLEY_MANAGED=", "SOCKETLEY_NAME=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = pw.Close(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	got := make(chan string, 1)
	go func() { l, _ := bufio.NewReader(pr).ReadString('\n'); got <- l }()
	select {
	case l := <-got:
		if !strings.HasPrefix(l, "attached ") {
			t.Fatalf("client after eval \"$(socketley env)\": %q, stderr %q", l, stderr.String())
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the client did not attach within %s; stderr %q", waitTimeout, stderr.String())
	}
	if r := e.show("envc"); r.Managed || r.PID != cmd.Process.Pid {
		t.Fatalf("envc: managed %v pid %d, want the attached client %d", r.Managed, r.PID, cmd.Process.Pid)
	}
}
