package units

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
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
		Restart:            RestartOnFailure,
		RestartSec:         250 * time.Millisecond,
		StartLimitBurst:    3,
		StartLimitInterval: 10 * time.Second,
		StopTimeout:        5 * time.Second,
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
		{"Environment", "as", []string{"A=1", "B=x=y"}},
		{"WorkingDirectory", "s", "/srv/web"},
		{"User", "s", "www"},
		{"Restart", "s", "on-failure"},
		{"RestartUSec", "t", uint64(250000)},
		{"StartLimitBurst", "u", uint32(3)},
		{"StartLimitIntervalUSec", "t", uint64(10000000)},
		{"TimeoutStopUSec", "t", uint64(5000000)},
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
	t.Run("ExecStart", func(t *testing.T) {
		p, ok := m["ExecStart"]
		if !ok {
			t.Fatal("ExecStart missing")
		}
		if got := p.Value.Signature().String(); got != "a(sasb)" {
			t.Fatalf("ExecStart signature: got %s, want a(sasb)", got)
		}
		// Inspect the struct through reflection: path, argv, ignore-failure.
		v := reflect.ValueOf(p.Value.Value())
		if v.Len() != 1 {
			t.Fatalf("ExecStart: got %d commands, want 1", v.Len())
		}
		cmd := v.Index(0)
		if got := cmd.Field(0).String(); got != "/usr/bin/web" {
			t.Errorf("ExecStart path: got %q, want /usr/bin/web", got)
		}
		if got := cmd.Field(1).Interface().([]string); !slices.Equal(got, []string{"/usr/bin/web", "-p", "8080"}) {
			t.Errorf("ExecStart argv: got %q, want [/usr/bin/web -p 8080]", got)
		}
		if cmd.Field(2).Bool() {
			t.Error("ExecStart ignore-failure flag: got true, want false (true turns failures into success)")
		}
	})
}

func TestPropertiesDefaults(t *testing.T) {
	props, err := properties(Spec{Name: "min", Path: "/bin/sleep", Description: "d"}, User)
	if err != nil {
		t.Fatalf("properties: %v", err)
	}
	m := propMap(t, props)
	for _, name := range []string{"Environment", "WorkingDirectory", "User", "Restart", "RestartUSec",
		"StartLimitBurst", "StartLimitIntervalUSec", "TimeoutStopUSec"} {
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
	props, err := properties(Spec{Name: "z", Path: "/bin/true", Restart: RestartOnFailure}, User)
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
