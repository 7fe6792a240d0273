package export

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

func managed(edit func(*wire.Runtime)) wire.Runtime {
	rt := wire.Runtime{Name: "web", Managed: true, Path: "/bin/sh", Args: []string{"-c", "exec sleep 100"},
		Restart: wire.RestartOnFailure, StopTimeout: wire.Duration(10 * time.Second)}
	if edit != nil {
		edit(&rt)
	}
	return rt
}

func TestSpecRestartMapping(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*wire.Runtime)
		restart   wire.RestartPolicy
		sec       time.Duration
		burst     int
		interval  time.Duration
		noLimit   bool
		backoffIn bool // the RestartSteps= comment
	}{
		{"for ever: no start limit, at least 100ms", nil, wire.RestartOnFailure, 100 * time.Millisecond, 0, 0, true, true},
		{"for ever with a longer delay", func(r *wire.Runtime) { r.RestartSec = wire.Duration(2 * time.Second) },
			wire.RestartOnFailure, 2 * time.Second, 0, 0, true, true},
		{"max restarts: N+1 starts in (N+1)(reset+sec)", func(r *wire.Runtime) {
			r.Restart, r.MaxRestarts, r.RestartReset, r.RestartSec = wire.RestartAlways, 3, wire.Duration(5*time.Second), wire.Duration(time.Second)
		}, wire.RestartAlways, time.Second, 4, 24 * time.Second, false, true},
		{"max restarts, default reset", func(r *wire.Runtime) { r.MaxRestarts = 1 },
			wire.RestartOnFailure, 0, 2, 2 * wire.DefaultRestartReset, false, true},
		{"no restart", func(r *wire.Runtime) { r.Restart = wire.RestartNo }, wire.RestartNo, 0, 0, 0, false, false},
		{"no restart, listen: no start limit", func(r *wire.Runtime) { r.Restart, r.Listen = wire.RestartNo, []string{"8080"} },
			wire.RestartNo, 0, 0, 0, true, false},
		{"listen ignores max restarts", func(r *wire.Runtime) { r.MaxRestarts, r.Listen = 3, []string{"8080"} },
			wire.RestartOnFailure, 100 * time.Millisecond, 0, 0, true, true},
		{"empty policy is the default", func(r *wire.Runtime) { r.Restart = "" }, wire.DefaultRestart, 100 * time.Millisecond, 0, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := managed(tt.edit)
			s, err := Spec(rt)
			if err != nil {
				t.Fatal(err)
			}
			if s.Restart != tt.restart || s.RestartSec != tt.sec || s.StartLimitBurst != tt.burst ||
				s.StartLimitInterval != tt.interval || s.NoStartLimit != tt.noLimit {
				t.Errorf("Restart=%s RestartSec=%s burst=%d interval=%s noLimit=%v, want %s %s %d %s %v",
					s.Restart, s.RestartSec, s.StartLimitBurst, s.StartLimitInterval, s.NoStartLimit,
					tt.restart, tt.sec, tt.burst, tt.interval, tt.noLimit)
			}
			files, err := Systemd(rt, units.User, "v1")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(files[0].Text, "#   RestartSteps="); got != tt.backoffIn {
				t.Errorf("RestartSteps comment: %v, want %v\n%s", got, tt.backoffIn, files[0].Text)
			}
		})
	}
}

func TestSpecSettings(t *testing.T) {
	rt := managed(func(r *wire.Runtime) {
		r.Env = []string{"A=1"}
		r.WorkDir = "/srv"
		r.User = "www"
		r.Credentials = []wire.Credential{{ID: "tok", Path: "/etc/tok"}}
		r.EnvFiles = []string{"/etc/env"}
		r.Harden = true
		r.Limits = wire.LimitArgs{MemoryMax: "64M", NOFILE: "1024"}
		r.Properties = []string{"Nice=3"}
	})
	s, err := Spec(rt)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Env, ",") != "A=1" || s.WorkingDirectory != "/srv" || s.User != "www" || len(s.Credentials) != 1 ||
		s.Credentials[0] != (units.Credential{ID: "tok", Path: "/etc/tok"}) || s.EnvFiles[0] != "/etc/env" || !s.Harden ||
		s.Limits.MemoryMax != 64<<20 || s.Limits.NOFILE != 1024 || s.Properties[0] != "Nice=3" ||
		s.StopTimeout != 10*time.Second || s.Path != "/bin/sh" || strings.Join(s.Args, " ") != "-c exec sleep 100" {
		t.Errorf("spec %+v", s)
	}
	for _, kv := range s.Env {
		if strings.HasPrefix(kv, "SOCKETLEY_") {
			t.Errorf("exported %s", kv)
		}
	}
	if _, err := Systemd(rt, units.User, "v1"); !errors.Is(err, units.ErrInvalid) || !strings.Contains(err.Error(), "User=www") {
		t.Errorf("User= in the user scope: %v", err)
	}
	files, err := Systemd(rt, units.System, "v1")
	if err != nil || len(files) != 1 || !strings.Contains(files[0].Text, "\nUser=www\n") ||
		!strings.Contains(files[0].Text, "\nWantedBy=multi-user.target\n") {
		t.Fatalf("system scope: %v %v", err, files)
	}
}

func TestNotExportable(t *testing.T) {
	tests := []struct {
		name string
		rt   wire.Runtime
		want string
	}{
		{"attached", wire.Runtime{Name: "a", Managed: false, Path: "/bin/x"}, "attached process"},
		{"orphan", wire.Runtime{Name: "o", Orphan: true}, "orphan unit"},
		{"redacted", managed(func(r *wire.Runtime) { r.Redacted, r.OwnerUID = true, 1000 }), "uid 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Systemd(tt.rt, units.User, "v1")
			if !errors.Is(err, ErrNotExportable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrNotExportable with %q", err, tt.want)
			}
		})
	}
}

func TestRenderSkipsOrRefuses(t *testing.T) {
	rts := []wire.Runtime{managed(nil), {Name: "att", Path: "/bin/x"}}
	var stderr bytes.Buffer
	files, err := render(rts, []string{"*"}, units.User, &stderr)
	if err != nil || len(files) != 1 || files[0].Name != "socketley-web.service" || !strings.Contains(stderr.String(), "skipped att") {
		t.Errorf("pattern: %v %v %q", err, files, stderr.String())
	}
	if _, err := render(rts, []string{"web", "att"}, units.User, &stderr); err == nil || !strings.Contains(err.Error(), "att: not exportable") {
		t.Errorf("named: %v", err)
	}
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	files := []File{{"socketley-a.service", "A\n"}, {"socketley-a.socket", "S\n"}}
	var out bytes.Buffer
	if err := writeDir(&out, dir, files, false); err != nil {
		t.Fatal(err)
	}
	if err := writeDir(&out, dir, []File{{"socketley-a.service", "B\n"}, {"socketley-b.service", "B\n"}}, false); err == nil ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("existing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "socketley-b.service")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused export wrote a file: %v", err)
	}
	if err := writeDir(&out, dir, []File{{"socketley-a.service", "B\n"}}, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "socketley-a.service")); string(b) != "B\n" {
		t.Errorf("--force: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("files left: %v", ents)
	}
	var stdout bytes.Buffer
	if err := writeStdout(&stdout, files); err != nil || stdout.String() != "# socketley-a.service\nA\n\n# socketley-a.socket\nS\n" {
		t.Errorf("stdout: %v %q", err, stdout.String())
	}
}

// TestSystemdVerify: systemd-analyze verify is clean on the exported files
// of a runtime with every setting, for both managers.
func TestSystemdVerify(t *testing.T) {
	sa := testenv.RequireTool(t, "systemd-analyze", "systemd")
	for _, scope := range []units.Scope{units.System, units.User} {
		t.Run(map[units.Scope]string{units.System: "system", units.User: "user"}[scope], func(t *testing.T) {
			dir := t.TempDir()
			rt := managed(func(r *wire.Runtime) {
				r.Args = []string{"-c", `echo "$1" 100%`, "--", "a b", "$HOME"}
				r.Env = []string{"A=x y", `B="q"`}
				r.WorkDir = dir
				r.Harden = true
				r.Restart, r.MaxRestarts = wire.RestartAlways, 5
				r.Limits = wire.LimitArgs{MemoryMax: "64M", MemoryHigh: "32M", CPUQuota: "50%", CPUWeight: "50", TasksMax: "32", NOFILE: "1024"}
				r.Properties = []string{"Nice=3", "KillSignal=SIGINT", "TimeoutStartSec=1min"}
				r.Listen = []string{"127.0.0.1:18081", "[::1]:18082"}
				if scope == units.System {
					r.User = "daemon"
				}
			})
			files, err := Systemd(rt, scope, "v1")
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"verify", "--man=no"}
			if scope == units.User {
				args = append(args, "--user")
			}
			var text strings.Builder
			for _, f := range files {
				p := filepath.Join(dir, f.Name)
				if err := os.WriteFile(p, []byte(f.Text), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, p)
				text.WriteString("--- " + f.Name + "\n" + f.Text)
			}
			cmd := exec.Command(sa, args...)
			cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "XDG_RUNTIME_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, text.String())
			}
		})
	}
}
