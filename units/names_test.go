package units

import (
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

func TestNameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		runtime string
		unit    string
		valid   bool
	}{
		{"plain", "web", "socketley-web.service", true},
		{"dash", "my-app", "socketley-my-app.service", true},
		{"dots", "api.v2", "socketley-api.v2.service", true},
		{"underscore", "job_1", "socketley-job_1.service", true},
		{"colon", "a:b", "socketley-a:b.service", true},
		{"leading digit", "1st", "socketley-1st.service", true},
		{"looks like a suffix", "x.service", "socketley-x.service.service", true},
		{"empty", "", "socketley-.service", false},
		{"at sign", "tmpl@x", "socketley-tmpl@x.service", false},
		{"slash", "a/b", "socketley-a/b.service", false},
		{"backslash", `a\x2d`, `socketley-a\x2d.service`, false},
		{"space", "a b", "socketley-a b.service", false},
		{"non-ascii", "café", "socketley-café.service", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Name(tt.runtime); got != tt.unit {
				t.Errorf("Name(%q) = %q, want %q", tt.runtime, got, tt.unit)
			}
			got, ok := RuntimeName(tt.unit)
			if ok != tt.valid || (ok && got != tt.runtime) {
				t.Errorf("RuntimeName(%q) = %q, %v; want %q, %v", tt.unit, got, ok, tt.runtime, tt.valid)
			}
		})
	}
}

func TestRuntimeNameRejects(t *testing.T) {
	for _, unit := range []string{
		"", "web.service", "socketley-web", "socketley-web.socket", "socketley.service",
		"xsocketley-web.service", "socketley-web.service.d", "socketley-@.service",
	} {
		t.Run(unit, func(t *testing.T) {
			if got, ok := RuntimeName(unit); ok {
				t.Errorf("RuntimeName(%q) = %q, true; want false", unit, got)
			}
		})
	}
}

func TestRuntimeNameLength(t *testing.T) {
	long := make([]byte, maxUnitName-len(Name("")))
	for i := range long {
		long[i] = 'a'
	}
	if _, ok := RuntimeName(Name(string(long))); !ok {
		t.Errorf("a %d-character unit name was rejected", maxUnitName)
	}
	if _, ok := RuntimeName(Name(string(long) + "a")); ok {
		t.Errorf("a %d-character unit name was accepted", maxUnitName+1)
	}
}

func TestUnitPath(t *testing.T) {
	tests := []struct {
		name string
		unit string
		path godbus.ObjectPath
	}{
		{"dash and dot", "socketley-web.service", "/org/freedesktop/systemd1/unit/socketley_2dweb_2eservice"},
		{"underscore", "socketley-a_b.service", "/org/freedesktop/systemd1/unit/socketley_2da_5fb_2eservice"},
		{"colon", "socketley-a:b.service", "/org/freedesktop/systemd1/unit/socketley_2da_3ab_2eservice"},
		{"digits inside", "socketley-v2.service", "/org/freedesktop/systemd1/unit/socketley_2dv2_2eservice"},
		{"leading digit", "1x.service", "/org/freedesktop/systemd1/unit/_31x_2eservice"},
		{"empty", "", "/org/freedesktop/systemd1/unit/_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unitPath(tt.unit)
			if got != tt.path {
				t.Errorf("unitPath(%q) = %q, want %q", tt.unit, got, tt.path)
			}
			if want := godbus.ObjectPath(unitPathBase + sdbus.PathBusEscape(tt.unit)); got != want {
				t.Errorf("unitPath(%q) = %q, go-systemd escapes it as %q", tt.unit, got, want)
			}
			if !got.IsValid() {
				t.Errorf("unitPath(%q) = %q is not a valid object path", tt.unit, got)
			}
			back, ok := unitFromPath(got)
			if !ok || back != tt.unit {
				t.Errorf("unitFromPath(%q) = %q, %v; want %q, true", got, back, ok, tt.unit)
			}
		})
	}
}

func TestUnitFromPathRejects(t *testing.T) {
	for _, p := range []godbus.ObjectPath{
		"/org/freedesktop/systemd1",
		"/org/freedesktop/systemd1/unit/",
		"/org/freedesktop/systemd1/unit/a/b",
		"/org/freedesktop/systemd1/unit/socketley_2",
		"/org/freedesktop/systemd1/unit/socketley_zzweb",
		"/org/freedesktop/systemd1/job/42",
	} {
		t.Run(string(p), func(t *testing.T) {
			if got, ok := unitFromPath(p); ok {
				t.Errorf("unitFromPath(%q) = %q, true; want false", p, got)
			}
		})
	}
}

func TestRuntimeFromPath(t *testing.T) {
	tests := []struct {
		path godbus.ObjectPath
		name string
		ok   bool
	}{
		{"/org/freedesktop/systemd1/unit/socketley_2dweb_2eservice", "web", true},
		{"/org/freedesktop/systemd1/unit/socketley_2dapi_2ev2_2eservice", "api.v2", true},
		{"/org/freedesktop/systemd1/unit/dbus_2eservice", "", false},
		{"/org/freedesktop/systemd1/unit/socketley_2dweb_2esocket", "", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.path), func(t *testing.T) {
			name, ok := runtimeFromPath(tt.path)
			if name != tt.name || ok != tt.ok {
				t.Errorf("runtimeFromPath = %q, %v; want %q, %v", name, ok, tt.name, tt.ok)
			}
		})
	}
}

func TestScopeString(t *testing.T) {
	for s, want := range map[Scope]string{System: "system", User: "user", Scope(7): "scope(7)"} {
		if got := s.String(); got != want {
			t.Errorf("Scope(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
