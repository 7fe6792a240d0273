//go:build integration

package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestUsage: a managed runtime's usage shows up in ls -o json, show and
// top (--once, table and JSON) once the daemon's health tick has sampled
// it: non-zero memory and tasks, from the cgroup where the controllers are
// delegated, else from /proc (this sandbox delegates only hugetlb).
func TestUsage(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	e.script("sleeper", "exec sleep 1000")
	e.ok("add", "./sleeper", "--name", "hog", "-s")
	var u *wire.Usage
	eventually(t, "hog has a usage sample in ls -o json", func() bool {
		var rts []wire.Runtime
		if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &rts); err != nil {
			t.Fatal(err)
		}
		for _, r := range rts {
			if r.Name == "hog" && r.Usage != nil && r.PID > 0 {
				u = r.Usage
				return true
			}
		}
		return false
	})
	if u.MemoryBytes == 0 || u.Tasks < 1 || (u.Source != wire.UsageProc && u.Source != wire.UsageCgroup) || u.At.IsZero() {
		t.Fatalf("usage %+v: want memory, tasks and a source", *u)
	}
	t.Logf("usage source here: %s (memory %d, tasks %d)", u.Source, u.MemoryBytes, u.Tasks)
	show := e.ok("show", "hog")
	if !strings.Contains(show, "Usage:") || !strings.Contains(show, "tasks ") || !strings.Contains(show, "(from ") {
		t.Fatalf("show has no usage line:\n%s", show)
	}
	top := e.ok("top", "--once", "--sort", "mem")
	lines := strings.Split(strings.TrimSuffix(top, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "socketley top - ") || strings.Join(strings.Fields(lines[1]), " ") != "NAME STATUS CPU% MEM TASKS RESTARTS PID" {
		t.Fatalf("top --once:\n%s", top)
	}
	found := false
	for _, l := range lines[2:] {
		if f := strings.Fields(l); len(f) == 7 && f[0] == "hog" && f[3] != "-" && f[4] != "-" {
			found = true
		}
	}
	if !found {
		t.Fatalf("top --once has no row for hog with memory and tasks:\n%s", top)
	}
	var rts []wire.Runtime
	if err := json.Unmarshal([]byte(e.ok("top", "--once", "-o", "json")), &rts); err != nil {
		t.Fatalf("top --once -o json: %v", err)
	}
	if len(rts) != 1 || rts[0].Name != "hog" || rts[0].Usage == nil || rts[0].Usage.Tasks < 1 {
		t.Fatalf("top --once -o json: %+v", rts)
	}
	if _, errs, code := e.run("top", "--once", "--sort", "pid"); code != 1 || !strings.Contains(errs, "--sort") {
		t.Fatalf("top --sort pid: exit %d, %s", code, errs)
	}
}
