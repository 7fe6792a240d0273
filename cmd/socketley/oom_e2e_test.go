//go:build integration

package main_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestOOMKillNamed: a runtime that outgrows --memory-max (and may not
// swap: -p MemorySwapMax=0) is killed by the kernel's OOM killer, and
// events and why say so: systemd's Result=oom-kill decides it, whatever
// the exit status. It runs where the memory controller enforces the
// limit on this systemd's units, and skips with that reason elsewhere
// (the sandbox on the project's machines delegates only hugetlb).
func TestOOMKillNamed(t *testing.T) {
	e := newEnv(t)
	probe := e.script("probe", "exec sleep 1000")
	e.ok("add", probe, "--name", "probe", "--memory-max", "32M", "-s")
	if reason := memoryNotEnforced(e.show("probe").PID); reason != "" {
		testenv.Skipf(t, "MemoryMax= is not enforced here (%s): the OOM kill cannot happen", reason)
	}
	e.ok("remove", "probe")

	// tail -n 1 keeps the whole line it is reading: a line of 1G zero
	// bytes outgrows any limit below it.
	hog := e.script("hog", "head -c 1G /dev/zero | tail -n 1 >/dev/null")
	// add may see the run end already (exit 1 then): either way it is registered.
	_, _, _ = e.run("add", hog, "--name", "hog", "--memory-max", "32M", "-p", "MemorySwapMax=0", "--restart", "no", "-s")
	eventually(t, "an oom-killed event for hog", func() bool {
		return strings.Contains(e.ok("events", "hog"), string(wire.EventOOMKilled))
	})
	var w wire.Why
	if err := json.Unmarshal([]byte(e.ok("why", "hog", "-o", "json")), &w); err != nil {
		t.Fatal(err)
	}
	if w.LastExit == nil || w.LastExit.Kind != wire.EventOOMKilled || w.LastExit.Result != "oom-kill" {
		t.Fatalf("why: last exit %+v, want an OOM kill with systemd's Result=oom-kill", w.LastExit)
	}
	if out := e.ok("why", "hog"); !strings.Contains(out, "OOM killer") {
		t.Fatalf("why does not name the OOM killer:\n%s", out)
	}
}

// memoryNotEnforced returns why the memory limit of the cgroup of pid is
// not enforced ("" when it is): no cgroup2 mount, no memory controller in
// the cgroup (memory.max absent), or a memory.max other than 32M.
func memoryNotEnforced(pid int) string {
	root := cgroup2Root()
	if root == "" {
		return "no cgroup2 file system mounted"
	}
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "cgroup"))
	if err != nil {
		return err.Error()
	}
	var cg string
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			cg = p
		}
	}
	if cg == "" {
		return "the process is in no cgroup2 cgroup"
	}
	dir := filepath.Join(root, cg)
	max, err := os.ReadFile(filepath.Join(dir, "memory.max"))
	if err != nil {
		ctl, _ := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.controllers"))
		return "no memory controller in the unit's cgroup; its parent has: " + strings.TrimSpace(string(ctl))
	}
	if got := strings.TrimSpace(string(max)); got != "33554432" {
		return "memory.max is " + got + ", not the 32M systemd was given"
	}
	return ""
}

// cgroup2Root is where this mount namespace has the unified cgroup
// hierarchy ("" when nowhere).
func cgroup2Root() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if ok && len(pf) >= 5 && len(qf) >= 1 && qf[0] == "cgroup2" && pf[3] == "/" {
			return pf[4]
		}
	}
	return ""
}
