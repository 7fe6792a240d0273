package units

import (
	"reflect"
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// TestPropertiesHarden: Spec.Harden adds the preset of docs/harden.md with
// systemd 252's names and D-Bus types, the working directory writable;
// ProtectKernelTunables and ProtectKernelLogs in the system manager only,
// PrivateUsers in a user manager only. Without Harden none is set.
func TestPropertiesHarden(t *testing.T) {
	common := []struct {
		name  string
		sig   string
		value any
	}{
		{"NoNewPrivileges", "b", true},
		{"ProtectSystem", "s", "strict"},
		{"ProtectHome", "s", "read-only"},
		{"PrivateTmp", "b", true},
		{"PrivateDevices", "b", true},
		{"ProtectKernelModules", "b", true},
		{"ProtectControlGroups", "b", true},
		{"ProtectClock", "b", true},
		{"ProtectHostname", "b", true},
		{"ProtectProc", "s", "invisible"},
		{"ProcSubset", "s", "pid"},
		{"RestrictSUIDSGID", "b", true},
		{"LockPersonality", "b", true},
		{"RestrictNamespaces", "t", uint64(0)},
		{"RestrictRealtime", "b", true},
		{"MemoryDenyWriteExecute", "b", true},
		{"RemoveIPC", "b", true},
		{"KeyringMode", "s", "private"},
		{"SystemCallArchitectures", "as", []string{"native"}},
		{"RestrictAddressFamilies", "(bas)", addressFamilies{Allow: true, Families: []string{"AF_UNIX", "AF_INET", "AF_INET6"}}},
		{"SystemCallErrorNumber", "i", int32(1)},
		{"CapabilityBoundingSet", "t", uint64(0)},
		{"AmbientCapabilities", "t", uint64(0)},
		{"UMask", "u", uint32(0o077)},
		{"ReadWritePaths", "as", []string{"/srv/web"}},
	}
	for _, scope := range []Scope{System, User} {
		spec := Spec{Name: "web", Path: "/usr/bin/web", WorkingDirectory: "/srv/web", Harden: true}
		props, err := properties(spec, scope)
		if err != nil {
			t.Fatal(err)
		}
		var filters []systemCallFilter
		m := map[string]sdbus.Property{}
		for _, p := range props {
			if p.Name == "SystemCallFilter" {
				if got := p.Value.Signature().String(); got != "(bas)" {
					t.Errorf("SystemCallFilter signature %s, want (bas)", got)
				}
				filters = append(filters, p.Value.Value().(systemCallFilter))
				continue
			}
			if _, dup := m[p.Name]; dup {
				t.Errorf("%s: property %s set twice", scope, p.Name)
			}
			m[p.Name] = p
		}
		want := []systemCallFilter{{Allow: true, Calls: []string{"@system-service"}}, {Allow: false, Calls: []string{"@privileged", "@resources"}}}
		if !reflect.DeepEqual(filters, want) {
			t.Errorf("%s: SystemCallFilter %v, want %v", scope, filters, want)
		}
		byScope := []struct {
			name string
			set  bool
		}{
			{"ProtectKernelTunables", scope == System},
			{"ProtectKernelLogs", scope == System},
			{"PrivateUsers", scope == User},
		}
		for _, b := range byScope {
			p, ok := m[b.name]
			if ok != b.set || ok && p.Value.Value() != true {
				t.Errorf("%s: %s set %v (%v), want set %v to true", scope, b.name, ok, p.Value, b.set)
			}
		}
		for _, tt := range common {
			p, ok := m[tt.name]
			if !ok {
				t.Errorf("%s: %s missing", scope, tt.name)
				continue
			}
			if got := p.Value.Signature().String(); got != tt.sig {
				t.Errorf("%s: %s signature %s, want %s", scope, tt.name, got, tt.sig)
			}
			if got := p.Value.Value(); !reflect.DeepEqual(got, tt.value) {
				t.Errorf("%s: %s = %#v, want %#v", scope, tt.name, got, tt.value)
			}
		}
	}

	// No working directory: nothing writable under ProtectSystem=strict
	// but what systemd gives; no --harden: no preset at all.
	props, err := properties(Spec{Name: "web", Path: "/usr/bin/web", Harden: true}, User)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range props {
		if p.Name == "ReadWritePaths" {
			t.Errorf("ReadWritePaths %v without a working directory", p.Value)
		}
	}
	props, err = properties(Spec{Name: "web", Path: "/usr/bin/web", WorkingDirectory: "/srv/web"}, System)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range props {
		for _, tt := range common {
			if p.Name == tt.name || p.Name == "SystemCallFilter" {
				t.Errorf("%s set without Harden", p.Name)
			}
		}
	}
}

// TestHardenOverriddenByProperties: a -p setting replaces the preset's
// value of the same property (sent once, with the setting's value and
// D-Bus type), and the other properties of the preset stay.
func TestHardenOverriddenByProperties(t *testing.T) {
	spec := Spec{Name: "web", Path: "/usr/bin/node", Harden: true,
		Properties: []string{"MemoryDenyWriteExecute=no", "UMask=0022", "Nice=5", "TimeoutStartSec=infinity", "LimitCORE=1M", "KillSignal=SIGINT"}}
	props, err := properties(spec, System)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"MemoryDenyWriteExecute": false, "UMask": uint32(0o022), "Nice": int32(5),
		"TimeoutStartUSec": uint64(1<<64 - 1), "LimitCORE": uint64(1 << 20), "LimitCORESoft": uint64(1 << 20),
		"KillSignal": int32(2), "NoNewPrivileges": true}
	seen := map[string]int{}
	for _, p := range props {
		seen[p.Name]++
		if w, ok := want[p.Name]; ok && !reflect.DeepEqual(p.Value.Value(), w) {
			t.Errorf("%s = %#v, want %#v", p.Name, p.Value.Value(), w)
		}
	}
	for name := range want {
		if seen[name] != 1 {
			t.Errorf("%s sent %d times, want once", name, seen[name])
		}
	}
	if _, err := properties(Spec{Name: "web", Path: "/x", Properties: []string{"ExecStartPre=/bin/sh"}}, System); err == nil {
		t.Error("a key outside the allow-list reached the unit")
	}
}
