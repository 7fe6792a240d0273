//go:build integration

package main_test

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// livePID reads the unit's MainPID from systemd and fails without one.
func livePID(t *testing.T, name string) int {
	t.Helper()
	pid := mainPID(t, name)
	if pid <= 0 {
		t.Fatalf("%s has no MainPID", name)
	}
	return pid
}

// TestLimits: add's limits are properties of the unit in systemd's own
// view (systemctl show) and shown by show; set changes the cgroup limits
// of the running unit without a restart (same MainPID); set --nofile is
// saved and said to wait for the next restart, --restart applies it; the
// unit made after a reboot has the limits last set. Bad input exits 1
// naming the flag, with nothing registered or changed. The sandbox's
// systemd 252 accepts MemoryMax= without the memory controller: the
// property values are checked, not their enforcement.
func TestLimits(t *testing.T) {
	e := newEnv(t)
	e.script("a.sh", "exec sleep 1000")
	e.ok("add", "./a.sh", "--name", "lim", "-s", "--memory-max", "64M", "--cpu-quota", "50%", "--nofile", "2048")
	for prop, want := range map[string]string{"MemoryMax": "67108864", "CPUQuotaPerSecUSec": "500ms", "LimitNOFILE": "2048",
		"LimitNOFILESoft": "2048", "MemoryAccounting": "yes", "CPUAccounting": "yes", "TasksAccounting": "yes"} {
		if got := unitProp(t, "lim", prop); got != want {
			t.Errorf("after add: %s=%s, want %s", prop, got, want)
		}
	}
	pid := livePID(t, "lim")
	if got := testenv.OpenFiles(t, pid); got != "2048 2048" {
		t.Errorf("open files of the program: %s, want 2048 2048", got)
	}
	if got := e.show("lim").Limits; got != (wire.LimitArgs{MemoryMax: "64M", CPUQuota: "50%", NOFILE: "2048"}) {
		t.Errorf("show -o json limits: %+v", got)
	}
	if out := e.ok("show", "lim"); !strings.Contains(out, "memory-max 64M, cpu-quota 50%, nofile 2048") {
		t.Errorf("show does not list the limits:\n%s", out)
	}

	// Live: no restart.
	out := e.ok("set", "lim", "--memory-max", "32M", "--tasks-max", "100")
	if !strings.Contains(out, "lim: memory-max 32M, tasks-max 100 applied now (no restart)") {
		t.Errorf("set replied %q", out)
	}
	for prop, want := range map[string]string{"MemoryMax": "33554432", "TasksMax": "100", "CPUQuotaPerSecUSec": "500ms"} {
		if got := unitProp(t, "lim", prop); got != want {
			t.Errorf("after set: %s=%s, want %s", prop, got, want)
		}
	}
	if got := livePID(t, "lim"); got != pid {
		t.Fatalf("set restarted the program: MainPID %d, was %d", got, pid)
	}

	// nofile: saved, for the next restart.
	out = e.ok("set", "lim", "--nofile", "1024")
	if !strings.Contains(out, "lim: nofile 1024 saved; it takes effect at the next restart") {
		t.Errorf("set --nofile replied %q", out)
	}
	if got := unitProp(t, "lim", "LimitNOFILE"); got != "2048" || livePID(t, "lim") != pid {
		t.Errorf("set --nofile changed the running unit: LimitNOFILE=%s, MainPID %d (was %d)", got, livePID(t, "lim"), pid)
	}
	if got := e.show("lim").Limits.NOFILE; got != "1024" {
		t.Errorf("show after set --nofile: %q, want 1024 (the next start's)", got)
	}
	out = e.ok("set", "lim", "--nofile", "1024", "--restart")
	if !strings.Contains(out, "lim: nofile 1024 saved and in effect: restarted") {
		t.Errorf("set --restart replied %q", out)
	}
	pid2 := livePID(t, "lim")
	if pid2 == pid {
		t.Fatal("set --restart did not restart the program")
	}
	if got := testenv.OpenFiles(t, pid2); got != "1024 1024" {
		t.Errorf("open files after set --restart: %s, want 1024 1024", got)
	}
	// The new unit has every limit from the registry.
	for prop, want := range map[string]string{"MemoryMax": "33554432", "TasksMax": "100", "CPUQuotaPerSecUSec": "500ms", "LimitNOFILE": "1024"} {
		if got := unitProp(t, "lim", prop); got != want {
			t.Errorf("after set --restart: %s=%s, want %s", prop, got, want)
		}
	}

	// Bad input: exit 1, the flag named, nothing changed.
	before := stateFiles(t, e.state)
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"set", "lim", "--memory-max", "64MB"}, `--memory-max "64MB": give bytes with an optional K, M, G or T suffix`},
		{[]string{"set", "lim", "--cpu-quota", "50"}, `--cpu-quota "50": give a percentage of one CPU such as 50%`},
		{[]string{"set", "lim", "--cpu-weight", "0"}, `--cpu-weight "0": give a whole number from 1 to 10000`},
		{[]string{"set", "lim", "--tasks-max", "-1"}, `--tasks-max "-1"`},
		{[]string{"set", "lim"}, "nothing to change"},
		{[]string{"set", "nope", "--nofile", "10"}, "nope"},
		{[]string{"add", "./a.sh", "--name", "bad", "-s", "--nofile", "1024:4096"}, `--nofile "1024:4096": give a whole number`},
	} {
		_, errs, code := e.run(tt.args...)
		if code != 1 || !strings.Contains(errs, tt.msg) {
			t.Errorf("socketley %s: exit %d, stderr %q; want 1 and %q", strings.Join(tt.args, " "), code, errs, tt.msg)
		}
	}
	if after := stateFiles(t, e.state); !bytes.Equal(before, after) {
		t.Error("bad input changed the state files")
	}
	if _, _, code := e.run("show", "bad"); code != 1 {
		t.Error("a refused add registered its runtime")
	}
	if got := unitProp(t, "lim", "MemoryMax"); got != "33554432" || livePID(t, "lim") != pid2 {
		t.Errorf("bad input changed the unit: MemoryMax=%s", got)
	}

	// A reboot drops the unit; the daemon's reconcile makes it again with
	// the limits last set.
	e.stopDaemon(syscall.SIGTERM)
	if out, err := exec.Command("systemctl", "--user", "stop", "socketley-lim.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl stop: %v %s", err, out)
	}
	e.startDaemon() // returns once the daemon has reconciled ("daemon ready")
	for prop, want := range map[string]string{"ActiveState": "active", "MemoryMax": "33554432", "TasksMax": "100", "LimitNOFILE": "1024"} {
		if got := unitProp(t, "lim", prop); got != want {
			t.Errorf("after a reboot: %s=%s, want %s", prop, got, want)
		}
	}
}
