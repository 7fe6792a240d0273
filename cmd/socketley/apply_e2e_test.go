//go:build integration

package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestExportApplyRoundTrip: export writes every add setting, and applying
// the export changes nothing, for runtimes with every kind of setting; a
// second apply of a changed manifest says nothing changes either.
func TestExportApplyRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.script("svc", "exec sleep 1000")
	env := filepath.Join(e.dir, "svc.env")
	secret := filepath.Join(e.dir, "secret")
	for _, f := range []string{env, secret} {
		if err := os.WriteFile(f, []byte("A=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.ok("add", "./svc", "--name", "full", "-s", "--env", "GREETING=hello world", "--env-file", env,
		"--credential", "token:"+secret, "--workdir", e.dir, "--restart", "always", "--restart-sec", "100ms",
		"--restart-max-delay", "1m", "--restart-reset", "5s", "--max-restarts", "7", "--stop-timeout", "20s",
		"--attach-timeout", "3s", "--health-fails", "0", "--listen", fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)),
		"--memory-max", "512M", "--cpu-quota", "50%", "--nofile", "4096", "-p", "Nice=5", "-p", "TimeoutStartSec=2min",
		"--", "--port", "7070", "$HOME %d")
	e.ok("add", "./svc", "--name", "idle", "--attach", "--harden") // not started: the preset hides /tmp
	manifest := e.ok("export")
	for _, want := range []string{"name: full", "GREETING: hello world", "restart: always", "max_restarts: 7",
		"memory_max: 512M", "Nice: \"5\"", "token: " + secret, "name: idle", "state: stopped", "$HOME %d", "attach: true", "harden: true"} {
		if !strings.Contains(manifest, want) {
			t.Errorf("export lacks %q:\n%s", want, manifest)
		}
	}
	file := filepath.Join(e.dir, "socketley.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("apply", "-f", file); !strings.HasPrefix(out, "nothing to change: 2 runtime(s)") {
		t.Fatalf("apply of the export:\n%s", out)
	}
}

// TestApplyPlan: apply creates, changes in place (limits live: same pid),
// replaces (args), starts and stops, and with --prune removes what the
// manifest does not list; --dry-run changes nothing; a bad manifest is
// refused with every problem and changes nothing.
func TestApplyPlan(t *testing.T) {
	e := newEnv(t)
	e.script("svc", "exec sleep 1000")
	bin := filepath.Join(e.dir, "svc")
	e.ok("add", bin, "--name", "keep", "-s", "--memory-max", "64M")
	e.ok("add", bin, "--name", "args", "-s", "--", "-v")
	e.ok("add", bin, "--name", "gone", "-s")
	keepPID := livePID(t, "keep")
	file := filepath.Join(e.dir, "m.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`runtimes:
  - {name: keep, path: svc, limits: {memory_max: 128M}}
  - {name: args, path: svc, args: [-q]}
  - {name: new, path: svc}
  - {name: later, path: svc, state: stopped}
`)
	plan := "plan:\n  change    keep: limits\n  replace   args: args (it restarts with the new settings)\n  create    new\n  create    later\n  remove    gone\n"
	out := e.ok("apply", "-f", file, "--prune", "--dry-run")
	if out != plan+"dry run: 5 change(s) not made\n" {
		t.Fatalf("dry run:\n%s", out)
	}
	if s := e.show("gone"); s.Name != "gone" {
		t.Fatal("--dry-run removed gone")
	}
	out = e.ok("apply", "-f", file, "--prune")
	for _, want := range []string{plan, "keep: memory-max 128M applied now (no restart)", "args: replaced (args)",
		"new: created and started", "later: created (stopped, as its state says)", "gone: removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply lacks %q:\n%s", want, out)
		}
	}
	if got := livePID(t, "keep"); got != keepPID {
		t.Errorf("keep restarted (pid %d, was %d) for a live limit", got, keepPID)
	}
	if got := unitProp(t, "keep", "MemoryMax"); got != "134217728" {
		t.Errorf("keep MemoryMax=%s, want 128M", got)
	}
	if a := e.show("args"); len(a.Args) != 1 || a.Args[0] != "-q" {
		t.Errorf("args: %q", a.Args)
	}
	if _, _, code := e.run("show", "gone"); code != 1 {
		t.Error("gone was not removed")
	}
	if out := e.ok("apply", "-f", file, "--prune"); !strings.HasPrefix(out, "nothing to change: 4 runtime(s)") {
		t.Fatalf("second apply:\n%s", out)
	}

	write(`runtimes:
  - {name: keep, path: svc, limits: {memory_max: lots}, colour: red}
  - {name: new, path: svc, restart: sometimes}
`)
	_, errs, code := e.run("apply", "-f", file, "--prune")
	for _, want := range []string{"m.yaml:2: runtimes[0].colour: unknown field", "m.yaml:3: runtimes[1].restart:", "nothing was changed"} {
		if !strings.Contains(errs, want) {
			t.Errorf("bad manifest: stderr lacks %q:\n%s", want, errs)
		}
	}
	if code != 1 {
		t.Errorf("bad manifest: exit %d, want 1", code)
	}
	if s := e.show("later"); s.Name != "later" {
		t.Fatal("a refused manifest removed later")
	}
}

// TestApplyReplace: a replacement the daemon would refuse (its file is
// missing) leaves the runtime running as it was, same pid, and --dry-run
// already says that it would fail (exit 1), for a create too. A good one
// is made in place: a new process with the new settings, and the restart
// count and creation time of the runtime stay.
func TestApplyReplace(t *testing.T) {
	e := newEnv(t)
	e.script("svc", "exec sleep 1000")
	e.ok("add", filepath.Join(e.dir, "svc"), "--name", "steady", "-s", "--wait", "--", "-v")
	pid := livePID(t, "steady")
	file := filepath.Join(e.dir, "m.yaml")
	if err := os.WriteFile(file, []byte("runtimes:\n  - {name: steady, path: svc-v2, args: [-v]}\n  - {name: fresh, path: missing}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(e.dir, "svc-v2")
	out, errs, code := e.run("apply", "-f", file, "--dry-run")
	if code != 1 || !strings.Contains(out, "replace   steady: path") || !strings.Contains(out, "dry run: 2 change(s) not made") ||
		!strings.Contains(errs, "apply replace steady: would fail: no such file: "+missing) ||
		!strings.Contains(errs, "apply create fresh: would fail") || !strings.Contains(errs, "2 of 2 change(s) would fail (steady, fresh)") {
		t.Fatalf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	_, errs, code = e.run("apply", "-f", file)
	if code != 1 || !strings.Contains(errs, "apply replace steady: no such file: "+missing+"; steady is as it was") {
		t.Fatalf("apply: exit %d\n%s", code, errs)
	}
	if got := livePID(t, "steady"); got != pid {
		t.Fatalf("steady: pid %d, was %d: the refused replacement touched it", got, pid)
	}
	if r := e.show("steady"); r.Status != "running" || r.Path != filepath.Join(e.dir, "svc") {
		t.Fatalf("steady after the refused replacement: %+v", r)
	}

	// One restart on its record, then a good replacement.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new pid after kill -9", func() bool { p := e.psPID("steady"); return p != 0 && p != pid })
	before := e.show("steady")
	if before.Restarts != 1 {
		t.Fatalf("after kill -9: %d restarts, want 1", before.Restarts)
	}
	e.script("svc-v2", "exec sleep 1001")
	if err := os.WriteFile(file, []byte("runtimes:\n  - {name: steady, path: svc-v2, args: [-w]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("apply", "-f", file); !strings.Contains(out, "steady: replaced (path, args)") {
		t.Fatalf("apply of the good replacement:\n%s", out)
	}
	after := e.show("steady")
	if after.Status != "running" || after.Path != missing || strings.Join(after.Args, " ") != "-w" || after.PID == before.PID ||
		after.Restarts != 1 || !after.Created.Equal(before.Created) {
		t.Fatalf("after the replacement: %+v\nbefore: %+v", after, before)
	}
	if out := e.ok("apply", "-f", file); !strings.HasPrefix(out, "nothing to change") {
		t.Fatalf("apply again:\n%s", out)
	}
	// Its events say what happened: one add, then the replacement's start.
	evs := e.ok("events", "steady")
	if strings.Count(evs, " added ") != 1 || !regexp.MustCompile(`steady +started +socketley replace \(new settings\) by uid \d+; pid `+strconv.Itoa(after.PID)).MatchString(evs) {
		t.Fatalf("events after the replacement:\n%s", evs)
	}
}
