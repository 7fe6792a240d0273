package units

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/socketley/socketley/internal/wire"
)

func propMap(t *testing.T, props []sdbus.Property) map[string]sdbus.Property {
	t.Helper()
	m := make(map[string]sdbus.Property, len(props))
	for _, p := range props {
		if _, dup := m[p.Name]; dup {
			t.Errorf("property %s set twice", p.Name)
		}
		m[p.Name] = p
	}
	return m
}

func TestPropertiesSignatures(t *testing.T) {
	spec := Spec{
		Name:               "web",
		Path:               "/usr/bin/web",
		Args:               []string{"-p", "8080"},
		Env:                []string{"A=1", "B=x=y"},
		WorkingDirectory:   "/srv/web",
		User:               "www",
		Restart:            wire.RestartOnFailure,
		RestartSec:         250 * time.Millisecond,
		StartLimitBurst:    3,
		StartLimitInterval: 10 * time.Second,
		StopTimeout:        5 * time.Second,
		Credentials:        []Credential{{ID: "token", Path: "/etc/web/token"}, {ID: "tls.key", Path: "/etc/web/key.pem"}},
		EnvFiles:           []string{"/etc/web/env", "/etc/web/more env"},
	}
	props, err := properties(spec, System)
	if err != nil {
		t.Fatalf("properties: %v", err)
	}
	m := propMap(t, props)
	tests := []struct {
		name  string
		sig   string
		value any
	}{
		{"Description", "s", "socketley runtime web"},
		{"Type", "s", "exec"},
		{"CollectMode", "s", "inactive"},
		{"SyslogIdentifier", "s", "socketley-web"},
		{"Environment", "as", []string{"A=1", "B=x=y"}},
		{"WorkingDirectory", "s", "/srv/web"},
		{"User", "s", "www"},
		{"Restart", "s", "on-failure"},
		{"RestartUSec", "t", uint64(250000)},
		{"StartLimitBurst", "u", uint32(3)},
		{"StartLimitIntervalUSec", "t", uint64(10000000)},
		{"TimeoutStopUSec", "t", uint64(5000000)},
		{"KillMode", "s", "control-group"},
		{"SendSIGKILL", "b", true},
		{"LoadCredential", "a(ss)", []Credential{{ID: "token", Path: "/etc/web/token"}, {ID: "tls.key", Path: "/etc/web/key.pem"}}},
		// ignore-errors false: a missing file fails the start.
		{"EnvironmentFiles", "a(sb)", []envFile{{Path: "/etc/web/env"}, {Path: "/etc/web/more env"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := m[tt.name]
			if !ok {
				t.Fatalf("property %s missing", tt.name)
			}
			if got := p.Value.Signature().String(); got != tt.sig {
				t.Errorf("%s signature: got %s, want %s", tt.name, got, tt.sig)
			}
			if got := p.Value.Value(); !reflect.DeepEqual(got, tt.value) {
				t.Errorf("%s value: got %#v, want %#v", tt.name, got, tt.value)
			}
		})
	}
	t.Run("ExecStartEx", func(t *testing.T) {
		if _, ok := m["ExecStart"]; ok {
			t.Fatal("plain ExecStart set: systemd would expand $VAR in the arguments")
		}
		p, ok := m["ExecStartEx"]
		if !ok {
			t.Fatal("ExecStartEx missing")
		}
		if got := p.Value.Signature().String(); got != "a(sasas)" {
			t.Fatalf("ExecStartEx signature: got %s, want a(sasas)", got)
		}
		cmds, ok := p.Value.Value().([]execCommandEx)
		if !ok || len(cmds) != 1 {
			t.Fatalf("ExecStartEx: got %#v, want one command", p.Value.Value())
		}
		if cmds[0].Path != "/usr/bin/web" {
			t.Errorf("ExecStartEx path: got %q, want /usr/bin/web", cmds[0].Path)
		}
		if !slices.Equal(cmds[0].Argv, []string{"/usr/bin/web", "-p", "8080"}) {
			t.Errorf("ExecStartEx argv: got %q, want [/usr/bin/web -p 8080]", cmds[0].Argv)
		}
		// no-env-expand only; "ignore-failure" would turn failures into success.
		if !slices.Equal(cmds[0].Flags, []string{"no-env-expand"}) {
			t.Errorf("ExecStartEx flags: got %q, want [no-env-expand]", cmds[0].Flags)
		}
	})
}

func TestStopWait(t *testing.T) {
	tests := []struct {
		name string
		stop time.Duration
		want time.Duration
	}{
		{"systemd default", 0, 190 * time.Second},
		{"1s", time.Second, 12 * time.Second},
		{"10s", 10 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StopWait(tt.stop)
			if got != tt.want {
				t.Errorf("StopWait(%s) = %s, want %s", tt.stop, got, tt.want)
			}
			// SIGTERM, the stop timeout, SIGKILL, up to the stop timeout again.
			if eff := tt.stop; eff > 0 && got <= 2*eff {
				t.Errorf("StopWait(%s) = %s does not exceed twice the stop timeout", tt.stop, got)
			}
		})
	}
}

func TestPropertiesDefaults(t *testing.T) {
	props, err := properties(Spec{Name: "min", Path: "/bin/sleep", Description: "d"}, User)
	if err != nil {
		t.Fatalf("properties: %v", err)
	}
	m := propMap(t, props)
	for _, name := range []string{"Environment", "WorkingDirectory", "User", "Restart", "RestartUSec",
		"StartLimitBurst", "StartLimitIntervalUSec", "TimeoutStopUSec", "LoadCredential", "EnvironmentFiles"} {
		if _, ok := m[name]; ok {
			t.Errorf("property %s set for a zero Spec field; want systemd's default", name)
		}
	}
	if got := m["Description"].Value.Value(); got != "d" {
		t.Errorf("Description: got %v, want d", got)
	}
	if got := m["Type"].Value.Value(); got != "exec" {
		t.Errorf("Type: got %v, want exec", got)
	}
}

func TestPropertiesInvalid(t *testing.T) {
	ok := Spec{Name: "web", Path: "/bin/true"}
	tests := []struct {
		name  string
		edit  func(*Spec)
		scope Scope
		want  string
	}{
		{"empty name", func(s *Spec) { s.Name = "" }, System, "runtime name"},
		{"template name", func(s *Spec) { s.Name = "a@b" }, System, "runtime name"},
		{"no path", func(s *Spec) { s.Path = "" }, System, "no executable path"},
		{"bad restart", func(s *Spec) { s.Restart = "sometimes" }, System, "Restart=sometimes"},
		{"bad env", func(s *Spec) { s.Env = []string{"NOVALUE"} }, System, "KEY=VALUE"},
		{"empty env key", func(s *Spec) { s.Env = []string{"=x"} }, System, "KEY=VALUE"},
		{"user in user scope", func(s *Spec) { s.User = "www" }, User, "needs the system manager"},
		{"negative", func(s *Spec) { s.RestartSec = -time.Second }, System, "negative"},
		{"negative steps", func(s *Spec) { s.RestartSteps = -1 }, System, "negative"},
		{"no start limit and a burst", func(s *Spec) { s.NoStartLimit, s.StartLimitBurst = true, 1 }, System, "NoStartLimit with a start limit"},
		{"steps without a delay", func(s *Spec) { s.RestartSteps, s.RestartMaxDelay = 3, time.Second }, System, "needs 0 < RestartSec"},
		{"steps with the cap below the delay", func(s *Spec) {
			s.RestartSteps, s.RestartSec, s.RestartMaxDelay = 3, time.Second, time.Second
		}, System, "needs 0 < RestartSec"},
		{"credential ID with a slash", func(s *Spec) { s.Credentials = []Credential{{ID: "a/b", Path: "/x"}} }, User, "bad ID"},
		{"credential ID ..", func(s *Spec) { s.Credentials = []Credential{{ID: "..", Path: "/x"}} }, User, "bad ID"},
		{"relative credential path", func(s *Spec) { s.Credentials = []Credential{{ID: "t", Path: "x"}} }, User, "not absolute"},
		{"relative env file", func(s *Spec) { s.EnvFiles = []string{"env"} }, User, "--env-file \"env\": the path is not absolute"},
		{"env file with a newline", func(s *Spec) { s.EnvFiles = []string{"/a\nb"} }, User, "newline or NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			_, err := properties(s, tt.scope)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an ErrInvalid error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// A zero RestartSec with a Restart= policy means "at once": RestartUSec=0 is
// sent, never left to systemd's default of 100 ms.
func TestPropertiesZeroRestartSec(t *testing.T) {
	props, err := properties(Spec{Name: "z", Path: "/bin/true", Restart: wire.RestartOnFailure}, User)
	if err != nil {
		t.Fatalf("properties: %v", err)
	}
	m := propMap(t, props)
	v, ok := m["RestartUSec"]
	if !ok {
		t.Fatal("RestartUSec not set for Restart=on-failure with RestartSec 0; systemd would wait 100 ms")
	}
	if got := v.Value.Value(); got != uint64(0) {
		t.Errorf("RestartUSec = %v, want 0", got)
	}
}

// The native backoff (systemd ≥ 254): RestartSteps (u), RestartMaxDelayUSec
// (t) and StartLimitIntervalUSec=0 for "no start limit".
func TestPropertiesNativeBackoff(t *testing.T) {
	props, err := properties(Spec{Name: "n", Path: "/bin/true", Restart: wire.RestartAlways, RestartSec: time.Millisecond,
		RestartSteps: 15, RestartMaxDelay: 30 * time.Second, NoStartLimit: true}, User)
	if err != nil {
		t.Fatalf("properties: %v", err)
	}
	m := propMap(t, props)
	for name, want := range map[string]any{
		"RestartUSec":            uint64(1000),
		"RestartSteps":           uint32(15),
		"RestartMaxDelayUSec":    uint64(30_000_000),
		"StartLimitIntervalUSec": uint64(0),
	} {
		p, ok := m[name]
		if !ok {
			t.Errorf("%s not set", name)
			continue
		}
		if got := p.Value.Value(); got != want {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	if _, ok := m["StartLimitBurst"]; ok {
		t.Error("StartLimitBurst set with no start limit")
	}
	// Without steps, neither 254-only property is sent (252 refuses them).
	props, err = properties(Spec{Name: "n", Path: "/bin/true", Restart: wire.RestartAlways}, User)
	if err != nil {
		t.Fatal(err)
	}
	m = propMap(t, props)
	for _, name := range []string{"RestartSteps", "RestartMaxDelayUSec"} {
		if _, ok := m[name]; ok {
			t.Errorf("%s sent without RestartSteps", name)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"252.38-1~deb12u1", 252},
		{"254", 254},
		{"v257.1", 257},
		{" 255.4-1ubuntu8 ", 255},
		{"", 0},
		{"systemd", 0},
		{"0", 0},
		{"-1", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVersion(tc.in)
			if got != tc.want || (err != nil) != (tc.want == 0) {
				t.Fatalf("ParseVersion(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestPropertiesLimits: each limit is its D-Bus property with signature t
// (org.freedesktop.systemd1(5)), CPU quota in µs per second, infinity as
// UINT64_MAX; LimitNOFILE sets soft and hard; accounting is on for every
// unit; an unset limit sends nothing.
func TestPropertiesLimits(t *testing.T) {
	spec := Spec{Name: "web", Path: "/bin/true", Limits: wire.Limits{
		MemoryMax: 64 << 20, MemoryHigh: wire.Infinity, CPUQuota: 250, CPUWeight: 50, TasksMax: 100, NOFILE: 4096}}
	props, err := properties(spec, User)
	if err != nil {
		t.Fatal(err)
	}
	m := propMap(t, props)
	for name, want := range map[string]any{
		"MemoryMax": uint64(64 << 20), "MemoryHigh": uint64(1<<64 - 1), "CPUQuotaPerSecUSec": uint64(2_500_000),
		"CPUWeight": uint64(50), "TasksMax": uint64(100), "LimitNOFILE": uint64(4096), "LimitNOFILESoft": uint64(4096),
		"MemoryAccounting": true, "CPUAccounting": true, "TasksAccounting": true,
	} {
		p, ok := m[name]
		if !ok {
			t.Errorf("property %s missing", name)
			continue
		}
		if got := p.Value.Value(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v (%s), want %#v", name, got, p.Value.Signature(), want)
		}
	}

	props, err = properties(Spec{Name: "web", Path: "/bin/true", Limits: wire.Limits{CPUQuota: 1}}, User)
	if err != nil {
		t.Fatal(err)
	}
	m = propMap(t, props)
	if got := m["CPUQuotaPerSecUSec"].Value.Value(); got != uint64(10_000) {
		t.Errorf("1%% of one CPU: CPUQuotaPerSecUSec = %v, want 10000 (10 ms per second)", got)
	}
	for _, name := range []string{"MemoryMax", "MemoryHigh", "CPUWeight", "TasksMax", "LimitNOFILE", "LimitNOFILESoft"} {
		if _, ok := m[name]; ok {
			t.Errorf("property %s set without its limit", name)
		}
	}
	if _, ok := m["MemoryAccounting"]; !ok {
		t.Error("MemoryAccounting missing on a unit without limits")
	}
	// What SetLimits sends: the cgroup limits only.
	for _, p := range limitProperties(spec.Limits) {
		if strings.HasPrefix(p.Name, "Limit") {
			t.Errorf("limitProperties sends %s: systemd refuses it on a loaded unit", p.Name)
		}
	}
}
