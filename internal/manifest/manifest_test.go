package manifest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

const full = `version: 1
runtimes:
  - name: api
    path: bin/api
    args: ["--port", "7070", "$HOME %d"]
    state: stopped
    env: {A: "b c", EMPTY: ""}
    env_files: [/etc/api.env]
    credentials: {token: secrets/token}
    workdir: /srv/api
    restart: always
    restart_sec: 100ms
    restart_max_delay: 1m
    restart_reset: 5s
    max_restarts: 4
    stop_timeout: 20s
    attach: true
    attach_timeout: 3s
    health_fails: 0
    listen: [7070, "127.0.0.1:8080"]
    limits: {memory_max: 512M, memory_high: 256M, cpu_quota: 50%, cpu_weight: 200, tasks_max: 64, nofile: 4096}
    harden: true
    properties: {Nice: 5, TimeoutStartSec: 2min}
  - name: web
    path: /usr/bin/web
`

// TestParseFull: every setting of a runtime reaches the add request, in
// add's canonical form, paths resolved against the file's directory.
func TestParseFull(t *testing.T) {
	got, err := Parse("socketley.yaml", "/etc/socketley", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	want := wire.AddSpec{Name: "api", Path: "/etc/socketley/bin/api", Args: []string{"--port", "7070", "$HOME %d"},
		Env: []string{"A=b c", "EMPTY="}, EnvFiles: []string{"/etc/api.env"},
		Credentials: []wire.Credential{{ID: "token", Path: "/etc/socketley/secrets/token"}}, WorkDir: "/srv/api",
		Restart: wire.RestartAlways, RestartSec: wire.Duration(100 * time.Millisecond), RestartMaxDelay: wire.Duration(time.Minute),
		RestartReset: wire.Duration(5 * time.Second), MaxRestarts: 4, StopTimeout: wire.Duration(20 * time.Second),
		ExpectAttach: true, AttachTimeout: wire.Duration(3 * time.Second), HealthFails: &zero,
		Listen: []string{"7070", "127.0.0.1:8080"},
		Limits: wire.LimitArgs{MemoryMax: "512M", MemoryHigh: "256M", CPUQuota: "50%", CPUWeight: "200", TasksMax: "64", NOFILE: "4096"},
		Harden: true, Properties: []string{"Nice=5", "TimeoutStartSec=120s"}}
	if len(got) != 2 || got[0].State != StateStopped || got[1].State != StateRunning || got[0].Line != 3 {
		t.Fatalf("runtimes %+v", got)
	}
	if !reflect.DeepEqual(got[0].Spec, want) {
		t.Fatalf("spec\n%+v\nwant\n%+v", got[0].Spec, want)
	}
}

// TestParseProblems: a bad manifest is refused with every problem, each
// with its line and field.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each a problem's String, in order
	}{
		{"not yaml", "runtimes: [", []string{"f.yaml:1: not YAML:"}},
		{"empty", "", []string{"f.yaml: empty"}},
		{"no runtimes", "version: 1\n", []string{"f.yaml:1: runtimes: missing"}},
		{"future version", "version: 2\nruntimes: []\n", []string{"f.yaml:1: version: version 2: this socketley reads version 1"}},
		{"unknown top field", "runtime: []\n", []string{"f.yaml:1: runtime: unknown field; the fields are runtimes, version", "f.yaml:1: runtimes: missing"}},
		{"everything wrong at once", `runtimes:
  - name: a
    path: /bin/a
    colour: red
    max_restarts: many
    limits: {memory_max: 64MB, swap: 1G}
  - name: a
    path: /bin/b
  - path: /bin/c
  - name: d
    path: /bin/d
    restart_sec: soon
    state: paused
`, []string{
			"f.yaml:4: runtimes[0].colour: unknown field",
			"f.yaml:5: runtimes[0].max_restarts: wrong type",
			"f.yaml:6: runtimes[0].limits.swap: unknown field; the fields are cpu_quota, cpu_weight, memory_high, memory_max, nofile, tasks_max",
			"f.yaml:9: runtimes[2].name: missing",
			"f.yaml:12: runtimes[3].restart_sec: \"soon\" is not a duration",
			"f.yaml:13: runtimes[3].state: \"paused\": give running (the default) or stopped",
		}},
		{"bad value after the types", "runtimes:\n  - name: a\n    path: /bin/a\n    limits: {memory_max: 64MB}\n", []string{
			"f.yaml:4: runtimes[0].limits.memory_max: --memory-max \"64MB\""}},
		{"twice", "runtimes:\n  - {name: a, path: /bin/a}\n  - {name: a, path: /bin/b}\n", []string{
			"f.yaml:3: runtimes[1].name: a is given twice (first on line 2)"}},
		{"a key twice", "runtimes:\n  - name: a\n    name: b\n    path: /bin/a\n", []string{"f.yaml:3: runtimes[0].name: given twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", "/", []byte(tt.in))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %v, want Problems", err)
			}
			if len(ps) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(ps), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ps[i].String(), w) {
					t.Errorf("problem %d: %q, want it to begin %q", i, ps[i], w)
				}
			}
		})
	}
}

// TestParseForAnotherHost: parsed for another host (no directory: apply
// -H), every relative path is a problem with its line and field; the same
// file resolves them locally.
func TestParseForAnotherHost(t *testing.T) {
	in := `runtimes:
  - name: a
    path: bin/a
    workdir: /srv/a
    env_files: [/etc/a.env, a.env]
    credentials: {key: secrets/key}
  - name: b
    path: /usr/bin/b
    workdir: .
`
	want := []string{
		`f.yaml:3: runtimes[0].path: "bin/a" is relative: applied to another host (-H)`,
		`f.yaml:5: runtimes[0].env_files: "a.env" is relative`,
		`f.yaml:6: runtimes[0].credentials: "secrets/key" is relative`,
		`f.yaml:9: runtimes[1].workdir: "." is relative`,
	}
	_, err := Parse("f.yaml", "", []byte(in))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != len(want) {
		t.Fatalf("error %v, want %d problems", err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d: %q, want it to begin %q", i, ps[i], w)
		}
	}
	got, err := Parse("f.yaml", "/home/me", []byte(in))
	if err != nil || got[0].Spec.Path != "/home/me/bin/a" || got[1].Spec.WorkDir != "/home/me" {
		t.Fatalf("parsed locally: %+v, %v", got, err)
	}
}

// TestRenderParsesBack: export's manifest of a runtime, read back, is the
// add request that registered it, for every setting; defaults are left
// out of the file.
func TestRenderParsesBack(t *testing.T) {
	want, err := Parse("f", "/etc/socketley", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	var rts []wire.Runtime
	for _, d := range want {
		s := d.Spec
		desired := "running"
		if d.State == StateStopped {
			desired = "stopped"
		}
		rts = append(rts, wire.Runtime{Name: s.Name, Managed: true, Desired: desired, Path: s.Path, Args: s.Args, Env: s.Env,
			WorkDir: s.WorkDir, Restart: s.Restart, RestartSec: s.RestartSec, RestartMaxDelay: s.RestartMaxDelay,
			RestartReset: s.RestartReset, MaxRestarts: s.MaxRestarts, StopTimeout: s.StopTimeout, User: s.RunAs,
			Credentials: s.Credentials, EnvFiles: s.EnvFiles, Harden: s.Harden, Limits: s.Limits, Properties: s.Properties,
			ExpectAttach: s.ExpectAttach, AttachTimeout: s.AttachTimeout, HealthFails: s.HealthFails, Listen: s.Listen})
	}
	// The daemon shows the default stop timeout filled in.
	rts[1].StopTimeout = wire.Duration(wire.DefaultStopTimeout)
	out, err := Render(rts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "stop_timeout: 10s") {
		t.Errorf("a default is written out:\n%s", out)
	}
	back, err := Parse("-", "/elsewhere", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if steps := Plan(back, rts, true); len(steps) != 2 || steps[0].Action != Unchanged || steps[1].Action != Unchanged {
		t.Fatalf("plan of the exported manifest against the runtimes it came from: %v\n%s", steps, out)
	}
	if _, err := Render([]wire.Runtime{{Name: "x", Managed: true, Redacted: true}}); err == nil || !strings.Contains(err.Error(), "withheld") {
		t.Fatalf("a redacted runtime: %v", err)
	}
	if _, err := Render([]wire.Runtime{{Name: "x"}}); err == nil || !strings.Contains(err.Error(), "not a managed runtime") {
		t.Fatalf("an attached runtime: %v", err)
	}
}

// TestPlan: create, unchanged, change (what set changes, the state),
// replace (the rest), remove with prune only, never an attached process.
func TestPlan(t *testing.T) {
	m := func(yaml string) []Desired {
		t.Helper()
		d, err := Parse("f", "/", []byte("runtimes:\n"+yaml))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	have := []wire.Runtime{
		{Name: "same", Managed: true, Desired: "running", Path: "/bin/same", StopTimeout: wire.Duration(wire.DefaultStopTimeout)},
		{Name: "limits", Managed: true, Desired: "running", Path: "/bin/l", Limits: wire.LimitArgs{MemoryMax: "64M"}},
		{Name: "stopme", Managed: true, Desired: "running", Path: "/bin/s"},
		{Name: "args", Managed: true, Desired: "running", Path: "/bin/a", Args: []string{"-v"}},
		{Name: "extra", Managed: true, Desired: "running", Path: "/bin/e"},
		{Name: "unlimit", Managed: true, Desired: "running", Path: "/bin/u", Limits: wire.LimitArgs{CPUQuota: "50%"}},
		{Name: "attached", Desired: "running", PID: 5},
	}
	want := m(`  - {name: same, path: /bin/same}
  - {name: limits, path: /bin/l, limits: {memory_max: 128M}, properties: {Nice: 3}}
  - {name: stopme, path: /bin/s, state: stopped}
  - {name: args, path: /bin/a, args: [-q]}
  - {name: new, path: /bin/n}
  - {name: unlimit, path: /bin/u}
`)
	for _, prune := range []bool{false, true} {
		var got []string
		for _, s := range Plan(want, have, prune) {
			got = append(got, s.String())
		}
		exp := []string{"unchanged same", "change    limits: limits, properties", "change    stopme: state",
			"replace   args: args (it restarts with the new settings)", "create    new",
			"replace   unlimit: limits (it restarts with the new settings)"}
		if prune {
			exp = append(exp, "remove    extra")
		}
		if !slices.Equal(got, exp) {
			t.Errorf("prune %v:\n%s\nwant\n%s", prune, strings.Join(got, "\n"), strings.Join(exp, "\n"))
		}
	}
}
