package wire

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAddSpecCheck: every rule of an add request refuses with class invalid
// and a message naming the flag; valid requests are normalized.
func TestAddSpecCheck(t *testing.T) {
	ok := func() AddSpec { return AddSpec{Name: "web", Path: "/usr/bin/web"} }
	neg := -1
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("K%d=v", i)
		}
		return out
	}
	tests := []struct {
		name string
		edit func(s *AddSpec)
		msg  string // "" = valid
	}{
		{"minimal", func(*AddSpec) {}, ""},
		{"bad name", func(s *AddSpec) { s.Name = "-x" }, "invalid runtime name"},
		{"relative path", func(s *AddSpec) { s.Path = "bin/web" }, `path "bin/web" is not absolute`},
		{"NUL in an argument", func(s *AddSpec) { s.Args = []string{"a\x00b"} }, "NUL byte"},
		{"too many args", func(s *AddSpec) { s.Args = many(MaxArgs + 1) }, fmt.Sprintf("%d arguments; at most %d", MaxArgs+1, MaxArgs)},
		{"args at the limit", func(s *AddSpec) { s.Args = many(MaxArgs) }, ""},
		{"too many env", func(s *AddSpec) { s.Env = many(MaxEnv + 1) }, fmt.Sprintf("%d --env entries; at most %d", MaxEnv+1, MaxEnv)},
		{"too many bytes", func(s *AddSpec) { s.Args = []string{strings.Repeat("a", MaxSpecBytes)} }, fmt.Sprintf("at most %d are accepted", MaxSpecBytes)},
		{"env without =", func(s *AddSpec) { s.Env = []string{"NOEQ"} }, `--env "NOEQ" is not KEY=VALUE`},
		{"env empty key", func(s *AddSpec) { s.Env = []string{"=v"} }, "KEY=VALUE"},
		{"env blank in key", func(s *AddSpec) { s.Env = []string{"A B=v"} }, "KEY=VALUE"},
		{"env newline", func(s *AddSpec) { s.Env = []string{"A=x\ny"} }, "newline or NUL"},
		{"env reserved", func(s *AddSpec) { s.Env = []string{"SOCKETLEY_NAME=x"} }, "reserved"},
		{"credential bad id", func(s *AddSpec) { s.Credentials = []Credential{{ID: "a/b", Path: "/k"}} }, `bad ID "a/b"`},
		{"credential dot", func(s *AddSpec) { s.Credentials = []Credential{{ID: "..", Path: "/k"}} }, "bad ID"},
		{"credential twice", func(s *AddSpec) { s.Credentials = []Credential{{ID: "k", Path: "/a"}, {ID: "k", Path: "/b"}} }, "given twice"},
		{"credential relative", func(s *AddSpec) { s.Credentials = []Credential{{ID: "k", Path: "k"}} }, "not absolute"},
		{"env file", func(s *AddSpec) { s.EnvFiles = []string{"/etc/app.env", "/etc/other env"} }, ""},
		{"env file relative", func(s *AddSpec) { s.EnvFiles = []string{"app.env"} }, `--env-file "app.env": the path is not absolute`},
		{"env file empty", func(s *AddSpec) { s.EnvFiles = []string{""} }, `--env-file "": the path is not absolute`},
		{"env file newline", func(s *AddSpec) { s.EnvFiles = []string{"/etc/a\nb"} }, "--env-file \"/etc/a\\nb\": the path contains a newline or NUL"},
		{"env file NUL", func(s *AddSpec) { s.EnvFiles = []string{"/etc/a\x00b"} }, "newline or NUL"},
		{"too many env files", func(s *AddSpec) { s.EnvFiles = make([]string, MaxEnvFiles+1) }, "17 --env-file paths; at most 16"},
		{"relative workdir", func(s *AddSpec) { s.WorkDir = "srv" }, `--workdir "srv" is not absolute`},
		{"bad restart", func(s *AddSpec) { s.Restart = "never" }, `--restart "never": use on-failure, always or no`},
		{"systemd-only restart", func(s *AddSpec) { s.Restart = RestartOnAbort }, "use on-failure, always or no"},
		{"negative restart-sec", func(s *AddSpec) { s.RestartSec = Duration(-time.Second) }, "--restart-sec -1s is negative"},
		{"negative max delay", func(s *AddSpec) { s.RestartMaxDelay = Duration(-time.Second) }, "--restart-max-delay -1s"},
		{"short reset", func(s *AddSpec) { s.RestartReset = Duration(time.Millisecond) }, "--restart-reset 1ms is below 1s"},
		{"negative max restarts", func(s *AddSpec) { s.MaxRestarts = -1 }, "--max-restarts -1"},
		{"negative stop timeout", func(s *AddSpec) { s.StopTimeout = Duration(-time.Second) }, "--stop-timeout -1s"},
		{"long stop timeout", func(s *AddSpec) { s.StopTimeout = Duration(MaxStopTimeout + time.Second) }, "--stop-timeout 5m1s"},
		{"stop timeout at the limit", func(s *AddSpec) { s.StopTimeout = Duration(MaxStopTimeout) }, ""},
		{"negative attach timeout", func(s *AddSpec) { s.AttachTimeout = Duration(-time.Second) }, "--attach-timeout -1s"},
		{"negative health fails", func(s *AddSpec) { s.HealthFails = &neg }, "--health-fails -1"},
		{"bad listen", func(s *AddSpec) { s.Listen = []string{"localhost:80"} }, `--listen "localhost:80": the host must be an IP address`},
		{"too many listen", func(s *AddSpec) {
			for i := range MaxListen + 1 {
				s.Listen = append(s.Listen, fmt.Sprint(7000+i))
			}
		}, fmt.Sprintf("%d --listen addresses; at most %d", MaxListen+1, MaxListen)},
		{"limits", func(s *AddSpec) { s.Limits = LimitArgs{MemoryMax: "64M", CPUQuota: "200%", NOFILE: "infinity"} }, ""},
		{"bad memory-max", func(s *AddSpec) { s.Limits.MemoryMax = "64MB" }, `--memory-max "64MB": give bytes`},
		{"bad cpu-weight", func(s *AddSpec) { s.Limits.CPUWeight = "0" }, `--cpu-weight "0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok()
			tt.edit(&s)
			err := s.Check()
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Check() = %v, want an error containing %q", err, tt.msg)
			}
			if !errors.Is(err, ErrInvalid) || ClassOf(err) != ClassInvalid {
				t.Fatalf("Check() = %v: class %q, want invalid", err, ClassOf(err))
			}
		})
	}
}

// TestAddSpecCheckNormalizes: the path and credential paths are cleaned,
// the default policy filled in, listen addresses put in systemd's form
// without duplicates, limits in canonical form.
func TestAddSpecCheckNormalizes(t *testing.T) {
	s := AddSpec{Name: "web", Path: "/usr//bin/../bin/web", Credentials: []Credential{{ID: "k", Path: "/etc/./k"}},
		EnvFiles: []string{"/etc//app.env", "/etc/app.env", "/etc/b.env"},
		Listen:   []string{"7070", "[::1]:80", "7070", "127.0.0.1:81"}, Limits: LimitArgs{MemoryMax: "1048576"}}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.EnvFiles, []string{"/etc/app.env", "/etc/b.env"}) {
		t.Errorf("env files %q, want cleaned without duplicates", s.EnvFiles)
	}
	if s.Path != "/usr/bin/web" || s.Credentials[0].Path != "/etc/k" || s.Restart != DefaultRestart || s.Limits.MemoryMax != "1M" {
		t.Fatalf("not normalized: %+v", s)
	}
	if want := []string{"7070", "[::1]:80", "127.0.0.1:81"}; !slices.Equal(s.Listen, want) {
		t.Fatalf("Listen = %q, want %q", s.Listen, want)
	}
}

// TestNormalizeListen: the accepted forms, in systemd's spelling, and the
// refusals with what is wrong.
func TestNormalizeListen(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"7070", "7070", ""},
		{"0.0.0.0:80", "0.0.0.0:80", ""},
		{"[::]:80", "[::]:80", ""},
		{"[0:0::1]:443", "[::1]:443", ""},
		{"65535", "65535", ""},
		{"0", "", "1–65535"},
		{"65536", "", "1–65535"},
		{"070", "", "not a number"},
		{"http", "", "not a number"},
		{":80", "", "empty host"},
		{"localhost:80", "", "IP address, not a name"},
		{"[fe80::1%eth0]:80", "", "IP address"},
		{"1.2.3.4", "", "not a number"},
		{"::1:80", "", "too many colons"},
		{"-1", "", "1–65535"},
		{"127.0.0.1:", "", "not a number"},
		{"", "", "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeListen(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || ClassOf(err) != ClassInvalid {
					t.Fatalf("NormalizeListen(%q) = %q, %v; want an invalid error mentioning %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeListen(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestParseRestartPolicy: the three policies, "" as the default, and a
// refusal listing them.
func TestParseRestartPolicy(t *testing.T) {
	for _, p := range RestartPolicies {
		if got, err := ParseRestartPolicy(string(p)); err != nil || got != p {
			t.Errorf("ParseRestartPolicy(%q) = %q, %v", p, got, err)
		}
	}
	if got, err := ParseRestartPolicy(""); err != nil || got != DefaultRestart {
		t.Errorf(`ParseRestartPolicy("") = %q, %v`, got, err)
	}
	if _, err := ParseRestartPolicy("sometimes"); err == nil || !strings.Contains(err.Error(), "on-failure, always or no") {
		t.Errorf("ParseRestartPolicy(sometimes) = %v", err)
	}
	for _, p := range []RestartPolicy{"", "no", "always", "on-failure", "on-abort", "on-watchdog", "on-success", "on-abnormal"} {
		if !p.Systemd() {
			t.Errorf("%q.Systemd() = false", p)
		}
	}
	if RestartPolicy("sometimes").Systemd() {
		t.Error(`"sometimes".Systemd() = true`)
	}
}

// TestModeOf: the MODE of each kind of runtime.
func TestModeOf(t *testing.T) {
	for _, tt := range []struct {
		managed, orphan bool
		want            Mode
	}{{true, false, ModeUnit}, {false, false, ModeAttach}, {false, true, ModeOrphan}, {true, true, ModeOrphan}} {
		if got := ModeOf(tt.managed, tt.orphan); got != tt.want {
			t.Errorf("ModeOf(%v, %v) = %q, want %q", tt.managed, tt.orphan, got, tt.want)
		}
	}
}

// TestCheckCredentialID: IDs systemd accepts and need no quoting.
func TestCheckCredentialID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"token", true}, {"tls.key", true}, {"db-pass_2@prod", true}, {strings.Repeat("a", 255), true},
		{"", false}, {".", false}, {"..", false}, {"a/b", false}, {"a:b", false}, {"a b", false},
		{"tok\n", false}, {"é", false}, {strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := CheckCredentialID(tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckCredentialID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), CredentialIDRule) {
				t.Fatalf("error %v does not state the rule", err)
			}
		})
	}
}
