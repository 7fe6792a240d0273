//go:build integration

package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestRemoteApplyFakeSSH: apply, export and ls -o json across hosts,
// through an ssh stand-in that knows one host, "a" (the test's daemon),
// and fails for any other as ssh does for a name it cannot resolve. apply
// on several hosts prints a section per host in the order given, reports
// the host it cannot reach and completes on the other (exit 2); export
// and --prune work on the runtimes the remote daemon says are the
// caller's.
func TestRemoteApplyFakeSSH(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(bin, "socketley")); err != nil {
		t.Fatal(err)
	}
	// The host is the last word before "--" (after -o, -p, -l and their
	// values); a's command gets a's socket (so that its processes name
	// it).
	// Each login is logged, to count them.
	logins := filepath.Join(e.dir, "logins")
	writeExec(t, filepath.Join(bin, "ssh"), "#!/bin/sh\nhost=\n"+
		"while [ $# -gt 0 ] && [ \"$1\" != -- ]; do host=$1; shift; done\nshift\n"+
		"echo \"$host\" >> "+logins+"\n"+
		"case $host in\n"+
		"a) exec sh -c \"$* --socket "+e.sock+"\" ;;\n"+
		"*) echo \"ssh: Could not resolve hostname $host: Name or service not known\" >&2; exit 255 ;;\n"+
		"esac\n")
	environ := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "SOCKETLEY_SOCKET=/nonexistent/local.sock"}
	svc := e.script("svc.sh", "exec sleep 1000")
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	both := write("manifest.yaml", "runtimes:\n  - name: rapply-web\n    path: "+svc+"\n    args: [--port, \"7070\"]\n"+
		"  - name: rapply-idle\n    path: "+svc+"\n    state: stopped\n")
	hosts := write("hosts", "# the fleet\nssh://a\nssh://gone   # decommissioned, still listed\n")

	// --dry-run on both hosts: a's plan, gone's ssh error, nothing made.
	out, errs, code := runWith(t, environ, "--hosts", hosts, "apply", "-f", both, "--dry-run")
	section := regexp.MustCompile(`(?s)^== ssh://a ==\nplan:\n  create +rapply-web\n  create +rapply-idle\ndry run: 2 change\(s\) not made\n== ssh://gone ==\n==\nHOST +RESULT\nssh://a +ok\nssh://gone +failed \(exit 2\)\n$`)
	if code != 2 || !section.MatchString(out) || !strings.Contains(errs, "Could not resolve hostname gone") || !strings.Contains(errs, "1 of 2 hosts failed") {
		t.Fatalf("apply --dry-run on two hosts: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if rts := listed(t, environ, "-H", "ssh://a"); len(rts) != 0 {
		t.Fatalf("after --dry-run: %v", rts)
	}

	// The apply: made on a, reported for gone, exit 2. Its three
	// requests to a (ls, add, add) go over one ssh login, which ends with
	// the command.
	if err := os.Remove(logins); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runWith(t, environ, "-H", "ssh://gone", "-H", "ssh://a", "apply", "-f", both)
	if code != 2 || !regexp.MustCompile(`(?s)^== ssh://gone ==\n== ssh://a ==\nplan:\n.*rapply-web: created and started\nrapply-idle: created \(stopped, as its state says\)\n==\n`).MatchString(out) ||
		!strings.Contains(errs, "Could not resolve hostname gone") {
		t.Fatalf("apply on two hosts: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if b, err := os.ReadFile(logins); err != nil || strings.Count(string(b), "a\n") != 1 {
		t.Fatalf("ssh logins of apply: %q, %v; want one to a", b, err)
	}
	if left := leftover("dial-stdio", e.sock); len(left) > 0 {
		t.Fatalf("dial-stdio processes left after apply: %q", left)
	}
	rts := listed(t, environ, "-H", "ssh://a")
	if r := rts["rapply-web"]; r.Status != wire.StatusRunning || strings.Join(r.Args, " ") != "--port 7070" {
		t.Fatalf("rapply-web on a: %+v", r)
	}
	if r := rts["rapply-idle"]; r.Status != wire.StatusStopped && r.Status != wire.StatusCreated {
		t.Fatalf("rapply-idle on a: %+v", r)
	}
	if out := okWith(t, environ, "-H", "ssh://a", "apply", "-f", both); out != "nothing to change: 2 runtime(s) as the manifest says\n" {
		t.Fatalf("the second apply on a:\n%s", out)
	}

	// ls -o json with several hosts: an object per host, the unreachable
	// one with its error.
	out, errs, code = runWith(t, environ, "--hosts", hosts, "ls", "-o", "json")
	var lists []struct {
		Host     string          `json:"host"`
		Runtimes *[]wire.Runtime `json:"runtimes"`
		Error    string          `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &lists); err != nil || code != 2 || len(lists) != 2 {
		t.Fatalf("ls -o json on two hosts: exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errs)
	}
	if lists[0].Host != "ssh://a" || lists[0].Runtimes == nil || lists[0].Error != "" ||
		lists[1].Host != "ssh://gone" || lists[1].Runtimes != nil || !strings.Contains(lists[1].Error, "Could not resolve hostname gone") {
		t.Fatalf("ls -o json on two hosts:\n%s", out)
	}
	names := map[string]bool{}
	for _, r := range *lists[0].Runtimes {
		names[r.Name] = true
	}
	if !names["rapply-web"] || !names["rapply-idle"] {
		t.Fatalf("ls -o json: a lists %v", names)
	}

	// export -H: the caller's runtimes as the remote daemon sees them,
	// and it reads back as nothing to change.
	exported := okWith(t, environ, "-H", "ssh://a", "export")
	for _, want := range []string{"name: rapply-web", "name: rapply-idle", "path: " + svc, "state: stopped"} {
		if !strings.Contains(exported, want) {
			t.Fatalf("export -H lacks %q:\n%s", want, exported)
		}
	}
	again := write("exported.yaml", exported)
	if out := okWith(t, environ, "-H", "ssh://a", "apply", "-f", again); !strings.HasPrefix(out, "nothing to change: 2 runtime(s)") {
		t.Fatalf("apply -H of export -H:\n%s", out)
	}

	// --prune over -H removes what the manifest no longer lists; a
	// relative path is refused before anything changes.
	one := write("one.yaml", "runtimes:\n  - name: rapply-web\n    path: "+svc+"\n    args: [--port, \"7070\"]\n")
	if out := okWith(t, environ, "-H", "ssh://a", "apply", "-f", one, "--prune"); !strings.Contains(out, "rapply-idle: removed (not in the manifest; --prune)") {
		t.Fatalf("apply -H --prune:\n%s", out)
	}
	rel := write("relative.yaml", "runtimes:\n  - name: rapply-web\n    path: svc.sh\n")
	if _, errs, code := runWith(t, environ, "-H", "ssh://a", "apply", "-f", rel, "--prune"); code != 1 || !strings.Contains(errs, `"svc.sh" is relative`) {
		t.Fatalf("apply -H of a relative path: exit %d\n%s", code, errs)
	}
	if rts := listed(t, environ, "-H", "ssh://a"); len(rts) != 1 || rts["rapply-web"].Status != wire.StatusRunning {
		t.Fatalf("after --prune and the refused file: %v", rts)
	}
}
