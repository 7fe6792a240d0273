package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// TestAddLimits: add's limits reach the unit, show them in systemd's
// syntax, survive a daemon restart (the reconcile's unit has them) and
// bad ones are refused before anything is registered.
func TestAddLimits(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	args := wire.LimitArgs{MemoryMax: "65536K", MemoryHigh: "48M", CPUQuota: "150%", CPUWeight: "50", TasksMax: "infinity", NOFILE: "4096"}
	want := wire.Limits{MemoryMax: 64 << 20, MemoryHigh: 48 << 20, CPUQuota: 150, CPUWeight: 50, TasksMax: wire.Infinity, NOFILE: 4096}
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true, Limits: args}, false, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.specs["web"].Limits; got != want {
		t.Fatalf("unit limits %+v, want %+v", got, want)
	}
	shown := m.view("web").Limits
	if shown != (wire.LimitArgs{MemoryMax: "64M", MemoryHigh: "48M", CPUQuota: "150%", CPUWeight: "50", TasksMax: "infinity", NOFILE: "4096"}) {
		t.Fatalf("shown limits %+v", shown)
	}

	// A reboot drops the unit: the reconcile makes a new one, limits and all.
	if err := f.Stop(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	delete(f.specs, "web")
	m2 := restartDaemon(t, m, f)
	if e, ok := m2.entry("web"); !ok || e.Limits != want {
		t.Fatalf("after a daemon restart: entry %+v", e)
	}
	if got := f.specs["web"].Limits; got != want {
		t.Fatalf("the reconcile's unit has limits %+v, want %+v", got, want)
	}

	for _, tt := range []struct {
		args wire.LimitArgs
		msg  string
	}{
		{wire.LimitArgs{MemoryMax: "64MB"}, `--memory-max "64MB": give bytes`},
		{wire.LimitArgs{CPUQuota: "50"}, `--cpu-quota "50": give a percentage`},
		{wire.LimitArgs{TasksMax: "0"}, `--tasks-max "0"`},
	} {
		before, _ := stateBytes(m2.store)
		_, err := m2.add(t.Context(), me(), wire.AddSpec{Name: "bad", Path: bin, Start: true, Limits: tt.args}, false, 0)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("add %+v: %v, want invalid %q", tt.args, err, tt.msg)
		}
		if _, ok := m2.entry("bad"); ok {
			t.Fatal("refused, yet registered")
		}
		if after, _ := stateBytes(m2.store); string(after) != string(before) {
			t.Fatal("the state changed for a refused add")
		}
	}
}

// TestOldRegistryHasNoLimits: an entry written before limits existed loads
// with none, and its unit gets none.
func TestOldRegistryHasNoLimits(t *testing.T) {
	dir := t.TempDir()
	old := []byte(`{"version":1,"entries":[{"name":"old","managed":true,"path":"/bin/sleep","owner_uid":5,"desired":"running","created":"2026-01-01T00:00:00Z"}]}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, stateFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	reg := loadForTest(t, &Store{dir: dir})
	e, ok := reg.get("old")
	if !ok || !e.Limits.IsZero() {
		t.Fatalf("old entry: %+v, %v", e, ok)
	}
	m, _ := newTestManager(t)
	if l := m.spec(e).Limits; !l.IsZero() {
		t.Fatalf("unit limits %+v, want none", l)
	}
}

// TestSetLimits: set saves the limits, applies the cgroup ones to the
// running unit without a restart (same pid), says nofile waits for the
// next restart (or restarts with --restart, the new unit having it), and
// on a stopped runtime only saves them for its next start.
func TestSetLimits(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true, Limits: wire.LimitArgs{MemoryMax: "64M", CPUQuota: "50%"}}, false, 0); err != nil {
		t.Fatal(err)
	}
	pid := m.view("web").PID
	f.calls = nil

	res, err := m.set(t.Context(), me(), wire.SetSpec{Name: "web", Limits: wire.LimitArgs{MemoryMax: "32M", TasksMax: "100"}})
	if err != nil {
		t.Fatal(err)
	}
	want := wire.Limits{MemoryMax: 32 << 20, CPUQuota: 50, TasksMax: 100}
	if e, _ := m.entry("web"); e.Limits != want {
		t.Fatalf("saved %+v, want %+v", e.Limits, want)
	}
	if got := f.specs["web"].Limits; got != want {
		t.Fatalf("the running unit has %+v, want %+v", got, want)
	}
	if !slices.Equal(f.calls, []string{"set-limits web memory-max 32M, cpu-quota 50%, tasks-max 100"}) {
		t.Fatalf("systemd calls %q: want one SetLimits and no restart", f.calls)
	}
	if v := m.view("web"); v.PID != pid || v.Limits.MemoryMax != "32M" {
		t.Fatalf("view after set: pid %d (was %d), limits %+v", v.PID, pid, v.Limits)
	}
	if !strings.Contains(res.Message, "web: memory-max 32M, tasks-max 100 applied now (no restart)") {
		t.Fatalf("message %q", res.Message)
	}

	// nofile: saved, and said to wait for the next restart; nothing
	// restarted.
	f.calls = nil
	res, err = m.set(t.Context(), me(), wire.SetSpec{Name: "web", Limits: wire.LimitArgs{NOFILE: "1024"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "web: nofile 1024 saved; it takes effect at the next restart (socketley restart web, or set --restart)") {
		t.Fatalf("message %q", res.Message)
	}
	if len(f.calls) != 0 || m.view("web").PID != pid || f.specs["web"].Limits.NOFILE != 0 {
		t.Fatalf("set --nofile without --restart: calls %q, pid %d (was %d)", f.calls, m.view("web").PID, pid)
	}
	// The next restart makes a unit with it.
	if _, err := m.restart(t.Context(), me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.specs["web"].Limits.NOFILE; got != 1024 {
		t.Fatalf("after restart: unit nofile %d, want 1024", got)
	}

	// --restart: at once.
	pid = m.view("web").PID
	res, err = m.set(t.Context(), me(), wire.SetSpec{Name: "web", Limits: wire.LimitArgs{NOFILE: "2048"}, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	if v := m.view("web"); v.PID == pid || f.specs["web"].Limits.NOFILE != 2048 || !strings.Contains(res.Message, "nofile 2048 saved and in effect: restarted") {
		t.Fatalf("set --restart: pid %d (was %d), unit nofile %d, message %q", v.PID, pid, f.specs["web"].Limits.NOFILE, res.Message)
	}

	// A stopped runtime: saved, applied when it starts.
	if _, err := m.stop(t.Context(), me(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	res, err = m.set(t.Context(), me(), wire.SetSpec{Name: "web", Limits: wire.LimitArgs{MemoryHigh: "16M"}, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "memory-high 16M saved; it applies when web starts") || !strings.Contains(res.Message, "not restarted: it is stopped") {
		t.Fatalf("message %q", res.Message)
	}
	if _, ok := f.Snapshot()["web"]; ok {
		t.Fatal("set started a stopped runtime")
	}
	if _, err := m.start(t.Context(), me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.specs["web"].Limits; got.MemoryHigh != 16<<20 || got.MemoryMax != 32<<20 || got.NOFILE != 2048 {
		t.Fatalf("started with %+v", got)
	}
}

// TestSetRefusals: set refuses what it cannot do, with nothing changed.
func TestSetRefusals(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	other := Caller{UID: os.Getuid() + 1, GID: os.Getgid() + 1, PID: os.Getpid()}
	for _, tt := range []struct {
		name   string
		caller Caller
		spec   wire.SetSpec
		class  error
		msg    string
	}{
		{"nothing", me(), wire.SetSpec{Name: "web"}, ErrInvalid, "nothing to change"},
		{"bad value", me(), wire.SetSpec{Name: "web", Limits: wire.LimitArgs{CPUWeight: "10001"}}, ErrInvalid, `--cpu-weight "10001": give a whole number from 1 to 10000`},
		{"pattern", me(), wire.SetSpec{Name: "w*", Limits: wire.LimitArgs{NOFILE: "10"}}, ErrInvalid, "invalid runtime name"},
		{"unknown", me(), wire.SetSpec{Name: "nope", Limits: wire.LimitArgs{NOFILE: "10"}}, ErrNotFound, "nope"},
		{"not the owner", other, wire.SetSpec{Name: "web", Limits: wire.LimitArgs{MemoryMax: "1G"}}, ErrDenied, "runtime belongs to uid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.calls = nil
			before, _ := stateBytes(m.store)
			_, err := m.set(t.Context(), tt.caller, tt.spec)
			if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tt.class, tt.msg)
			}
			if after, _ := stateBytes(m.store); string(after) != string(before) || len(f.calls) != 0 {
				t.Fatalf("a refused set changed something: calls %q", f.calls)
			}
		})
	}

	// systemd refuses the live change: saved, and the reply says so (the
	// next start, or the reconcile, applies it).
	f.setErr = errors.New("org.freedesktop.DBus.Error.Failed: no")
	_, err := m.set(t.Context(), me(), wire.SetSpec{Name: "web", Limits: wire.LimitArgs{MemoryMax: "1G"}})
	if err == nil || !strings.Contains(err.Error(), "memory-max 1G saved, but systemd did not apply it to the unit now") {
		t.Fatalf("got %v", err)
	}
	if e, _ := m.entry("web"); e.Limits.MemoryMax != 1<<30 {
		t.Fatalf("not saved: %+v", e.Limits)
	}
	// The reconcile of an adopted unit applies it.
	f.setErr = nil
	f.calls = nil
	m.reconcile(t.Context())
	if !slices.Contains(f.calls, "set-limits web memory-max 1G") || f.specs["web"].Limits.MemoryMax != 1<<30 {
		t.Fatalf("reconcile calls %q, unit limits %+v", f.calls, f.specs["web"].Limits)
	}
}

// TestLimitsOfNonRootSystemCallers: with the system daemon, a non-root
// caller may restrict its runtime at will but not lift it above the
// manager's defaults (DefaultTasksMax, DefaultLimitNOFILE) or weigh it
// above other services; root may. add and set alike.
func TestLimitsOfNonRootSystemCallers(t *testing.T) {
	user := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	root := Caller{PID: os.Getpid()}
	for _, tt := range []struct {
		name   string
		caller Caller
		args   wire.LimitArgs
		msg    string // "" = accepted
	}{
		{"restricting", user, wire.LimitArgs{MemoryMax: "64M", MemoryHigh: "infinity", CPUQuota: "400%", CPUWeight: "100", TasksMax: "4915", NOFILE: "524288"}, ""},
		{"weight above the default", user, wire.LimitArgs{CPUWeight: "101"}, "--cpu-weight 101: only root may give a weight above 100"},
		{"tasks above the default", user, wire.LimitArgs{TasksMax: "4916"}, "--tasks-max 4916: only root may go above the system manager's default, 4915"},
		{"tasks infinity", user, wire.LimitArgs{TasksMax: "infinity"}, "--tasks-max infinity: only root"},
		{"nofile above the hard limit", user, wire.LimitArgs{NOFILE: "524289"}, "--nofile 524289: only root may go above the system manager's hard limit, 524288"},
		{"nofile infinity", user, wire.LimitArgs{NOFILE: "infinity"}, "--nofile infinity: only root"},
		{"root", root, wire.LimitArgs{CPUWeight: "10000", TasksMax: "infinity", NOFILE: "infinity"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			m.cfg.Mode = paths.System
			lim, _, err := wire.ParseLimits(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			err = m.checkLimits(tt.caller, lim)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want denied %q", err, tt.msg)
			}
			// set: refused before anything changes (the runtime is the caller's).
			setRefused(t, m, tt.caller, wire.SetSpec{Name: "svc", Limits: tt.args})
		})
	}
	// The user daemon applies nothing of this: its systemd is the caller's.
	m, _ := newTestManager(t)
	if err := m.checkLimits(user, wire.Limits{CPUWeight: 10000, NOFILE: wire.Infinity}); err != nil {
		t.Fatalf("user daemon: %v", err)
	}
}

// TestProperties: add's -p settings reach the unit after the --harden
// preset (which they override key by key), are shown, survive a daemon
// restart; set applies the live ones (IOWeight) to the running unit, saves
// the others for the next restart and says which is which; "KEY=" removes
// one; --harden=false turns the preset off for the next unit.
func TestProperties(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	spec := wire.AddSpec{Name: "web", Path: bin, Start: true, Harden: true,
		Properties: []string{"Nice=5", "MemoryDenyWriteExecute=no", "TimeoutStartSec=1min 30s"}}
	if err := spec.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.add(t.Context(), me(), spec, false, 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"MemoryDenyWriteExecute=no", "Nice=5", "TimeoutStartSec=90s"}
	if got := f.specs["web"].Properties; !slices.Equal(got, want) || !f.specs["web"].Harden {
		t.Fatalf("unit properties %q (harden %v), want %q with the preset", got, f.specs["web"].Harden, want)
	}
	if got := m.view("web").Properties; !slices.Equal(got, want) {
		t.Fatalf("shown %q, want %q", got, want)
	}
	pid := m.view("web").PID
	f.calls = nil

	set := wire.SetSpec{Name: "web", Properties: []string{"IOWeight=50", "Nice=", "UMask=27"}, Harden: new(bool)}
	if err := set.Check(); err != nil {
		t.Fatal(err)
	}
	res, err := m.set(t.Context(), me(), set)
	if err != nil {
		t.Fatal(err)
	}
	saved := []string{"IOWeight=50", "MemoryDenyWriteExecute=no", "TimeoutStartSec=90s", "UMask=0027"}
	if e, _ := m.entry("web"); !slices.Equal(e.Properties, saved) || e.Harden {
		t.Fatalf("saved %q (harden %v), want %q without the preset", e.Properties, e.Harden, saved)
	}
	if !slices.Equal(f.calls, []string{"set-limits web  IOWeight=50"}) || m.view("web").PID != pid {
		t.Fatalf("systemd calls %q, pid %d (was %d): want IOWeight set live, no restart", f.calls, m.view("web").PID, pid)
	}
	for _, line := range []string{"web: IOWeight=50 applied now (no restart)",
		"web: Nice back to systemd's default, UMask=0027, no --harden preset saved; it takes effect at the next restart"} {
		if !strings.Contains(res.Message, line) {
			t.Fatalf("message %q lacks %q", res.Message, line)
		}
	}
	m2 := restartDaemon(t, m, f)
	if _, err := m2.restart(t.Context(), me(), []string{"web"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.specs["web"].Properties; !slices.Equal(got, saved) || f.specs["web"].Harden {
		t.Fatalf("after a daemon restart and a restart: unit %q (harden %v), want %q", got, f.specs["web"].Harden, saved)
	}
}

// TestPropertiesOfNonRootSystemCallers: a non-root caller of the system
// daemon may not raise its priority (Nice, OOMScoreAdjust below 0) or I/O
// weight above the default; root may, and so may anyone with the user
// daemon, which refuses ProtectKernelTunables and ProtectKernelLogs instead.
func TestPropertiesOfNonRootSystemCallers(t *testing.T) {
	user := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	root := Caller{PID: os.Getpid()}
	for _, tt := range []struct {
		name   string
		caller Caller
		props  []string
		msg    string // "" = accepted
	}{
		{"restricting", user, []string{"Nice=19", "OOMScoreAdjust=500", "IOWeight=100", "ProtectHome=yes"}, ""},
		{"negative nice", user, []string{"Nice=-5"}, "-p Nice=-5: only root may set this with the system daemon: a negative value raises the priority"},
		{"negative oom score", user, []string{"OOMScoreAdjust=-1"}, "-p OOMScoreAdjust=-1: only root"},
		{"io weight", user, []string{"IOWeight=101"}, "-p IOWeight=101: only root"},
		{"root", root, []string{"Nice=-20", "OOMScoreAdjust=-1000", "IOWeight=10000"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			m.cfg.Mode = paths.System
			err := m.checkProperties(tt.caller, tt.props)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want denied %q", err, tt.msg)
			}
			setRefused(t, m, tt.caller, wire.SetSpec{Name: "svc", Properties: tt.props})
		})
	}
	m, _ := newTestManager(t)
	if err := m.checkProperties(user, []string{"Nice=-20", "ProtectKernelTunables=no"}); err != nil {
		t.Fatalf("user daemon: %v", err)
	}
	// What a user manager fails every start with where it cannot make a
	// user namespace is the system daemon's only.
	for _, kv := range []string{"ProtectKernelTunables=yes", "ProtectKernelLogs=yes"} {
		if err := m.checkProperties(root, []string{kv}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "system daemon only") {
			t.Errorf("user daemon, -p %s: %v, want invalid: system daemon only", kv, err)
		}
	}
	m.cfg.Mode = paths.System
	if err := m.checkProperties(user, []string{"ProtectKernelTunables=yes", "ProtectKernelLogs=yes"}); err != nil {
		t.Fatalf("system daemon: %v", err)
	}
}

// setRefused registers the stopped runtime svc of caller and checks that
// set refuses spec (denied) and saves none of it.
func setRefused(t *testing.T, m *Manager, caller Caller, spec wire.SetSpec) {
	t.Helper()
	if err := m.update(func(r *Registry) error {
		r.put(&Entry{Name: "svc", Managed: true, Path: "/bin/sleep", OwnerUID: caller.UID, Desired: DesiredStopped})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.set(context.Background(), caller, spec); !errors.Is(err, ErrDenied) {
		t.Fatalf("set: %v, want denied", err)
	}
	if e, _ := m.entry("svc"); !e.Limits.IsZero() || len(e.Properties) != 0 {
		t.Fatalf("a refused set saved limits %+v, properties %q", e.Limits, e.Properties)
	}
}
