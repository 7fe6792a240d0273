//go:build integration

package units_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// showProps reads properties of the runtime's unit with systemctl show,
// systemd's own view (KEY=VALUE lines).
func showProps(t *testing.T, name string, props ...string) map[string]string {
	t.Helper()
	args := []string{"--user", "show", units.Name(name)}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := exec.CommandContext(testCtx(t), "systemctl", args...).Output()
	if err != nil {
		t.Fatalf("systemctl %s: %v", strings.Join(args, " "), err)
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// TestLimits: a unit created with limits has them (systemd's own view, and
// the process's rlimit); SetLimits changes the cgroup limits of the running
// unit without a restart (same MainPID), refuses LimitNOFILE, and says
// ErrNoSuchUnit for a unit that is not loaded. systemd 252 accepts the
// limits where the memory controller is not delegated (the sandbox): the
// values are checked, not their enforcement.
func TestLimits(t *testing.T) {
	c := dial(t)
	name := newName(t, c)
	ctx := testCtx(t)
	spec := sleeper(name)
	spec.Limits = wire.Limits{MemoryMax: 64 << 20, MemoryHigh: 48 << 20, CPUQuota: 50, CPUWeight: 200, TasksMax: 50, NOFILE: 2048}
	spec.Properties = []string{"Description=limits test", "IOWeight=20", "KillSignal=SIGINT", "LimitCORE=0", "Nice=5",
		"OOMScoreAdjust=100", "PrivateTmp=yes", "ProtectHome=read-only", "RuntimeMaxSec=1h", "TimeoutStartSec=90s", "UMask=0027"}
	if err := c.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	want := map[string]string{
		"MemoryMax": "67108864", "MemoryHigh": "50331648", "CPUQuotaPerSecUSec": "500ms", "CPUWeight": "200",
		"TasksMax": "50", "LimitNOFILE": "2048", "LimitNOFILESoft": "2048",
		"MemoryAccounting": "yes", "CPUAccounting": "yes", "TasksAccounting": "yes",
		// -p settings, as systemd shows them back
		"Description": "limits test", "IOWeight": "20", "KillSignal": "2", "LimitCORE": "0", "LimitCORESoft": "0",
		"Nice": "5", "OOMScoreAdjust": "100", "PrivateTmp": "yes", "ProtectHome": "read-only",
		"RuntimeMaxUSec": "1h", "TimeoutStartUSec": "1min 30s", "UMask": "0027",
	}
	keys := []string{"MainPID"}
	for k := range want {
		keys = append(keys, k)
	}
	got := showProps(t, name, keys...)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	pid := got["MainPID"]
	st, err := c.Status(ctx, name)
	if err != nil || fmt.Sprint(st.MainPID) != pid {
		t.Fatalf("Status: %+v, %v; MainPID %s", st, err, pid)
	}
	if l := testenv.OpenFiles(t, st.MainPID); l != "2048 2048" {
		t.Errorf("open files of pid %d: %s, want 2048 2048", st.MainPID, l)
	}

	if err := c.SetLimits(ctx, name, wire.Limits{MemoryMax: 32 << 20, CPUQuota: 150, TasksMax: wire.Infinity}, []string{"IOWeight=50", "Nice=5"}); err != nil {
		t.Fatalf("SetLimits: %v", err)
	}
	got = showProps(t, name, "MainPID", "MemoryMax", "MemoryHigh", "CPUQuotaPerSecUSec", "TasksMax", "CPUWeight", "IOWeight", "Nice")
	// IOWeight is live; Nice is not (a process's, set at exec): left as it was.
	for k, v := range map[string]string{"MainPID": pid, "MemoryMax": "33554432", "MemoryHigh": "50331648",
		"CPUQuotaPerSecUSec": "1.500000s", "TasksMax": "infinity", "CPUWeight": "200", "IOWeight": "50", "Nice": "5"} {
		if got[k] != v {
			t.Errorf("after SetLimits: %s = %q, want %q", k, got[k], v)
		}
	}
	if err := c.SetLimits(ctx, name, wire.Limits{NOFILE: 1024}, nil); !errors.Is(err, units.ErrInvalid) {
		t.Errorf("SetLimits(NOFILE): %v, want ErrInvalid", err)
	}
	if err := c.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLimits(ctx, name, wire.Limits{MemoryMax: 1 << 30}, nil); !errors.Is(err, units.ErrNoSuchUnit) {
		t.Errorf("SetLimits of a unit that is not loaded: %v, want ErrNoSuchUnit", err)
	}
}

// TestDefaultLimits: the manager's defaults read as numbers (the sandbox's
// user manager has a finite DefaultLimitNOFILE, and DefaultTasksMax is a
// number or infinity).
func TestDefaultLimits(t *testing.T) {
	c := dial(t)
	l, err := c.DefaultLimits()
	if err != nil {
		t.Fatal(err)
	}
	if l.NOFILE == 0 || l.TasksMax == 0 {
		t.Fatalf("DefaultLimits = %+v; want both set", l)
	}
	out, err := exec.CommandContext(testCtx(t), "systemctl", "--user", "show", "-P", "DefaultLimitNOFILE").Output()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(l.NOFILE) && !(l.NOFILE == wire.Infinity && strings.TrimSpace(string(out)) == "infinity") {
		t.Errorf("DefaultLimitNOFILE: systemctl says %q (%v), DefaultLimits %d", out, err, l.NOFILE)
	}
}
