package units

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// fullSpec sets every field of Spec that properties renders.
func fullSpec() Spec {
	return Spec{
		Name:               "web",
		Path:               "/bin/sh",
		Args:               []string{"-c", `echo "$HOME" 100% \ done`, "", "a b", ";", "tab\there"},
		Env:                []string{"A=1", "B=x y", `C="q" \ %n`},
		WorkingDirectory:   "/srv/web 1",
		User:               "www",
		Restart:            wire.RestartOnFailure,
		RestartSec:         250 * time.Millisecond,
		StartLimitBurst:    3,
		StartLimitInterval: 10 * time.Second,
		StopTimeout:        5 * time.Second,
		Credentials:        []Credential{{ID: "token", Path: "/etc/web/token"}},
		EnvFiles:           []string{"/etc/web/env", "/etc/web/100%"},
		Harden:             true,
		Limits: wire.Limits{MemoryMax: 512 << 20, MemoryHigh: wire.Infinity, CPUQuota: 50, CPUWeight: 200,
			TasksMax: 64, NOFILE: 4096},
		Properties: []string{"Description=web 50% of it", "IOWeight=50", "KillSignal=SIGINT", "LimitCORE=0",
			"MemoryDenyWriteExecute=no", "MemorySwapMax=1G", "Nice=5", "OOMScoreAdjust=-5", "RuntimeMaxSec=infinity",
			"TimeoutStartSec=90", "UMask=0027"},
	}
}

func TestServiceFileLines(t *testing.T) {
	f, err := ServiceFile(fullSpec(), System)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		section []string
		line    string
	}{
		{f.Unit, "Description=web 50%% of it"},
		{f.Unit, "StartLimitBurst=3"},
		{f.Unit, "StartLimitIntervalSec=10s"},
		{f.Unit, "CollectMode=inactive"},
		{f.Service, `ExecStart=:/bin/sh -c "echo \"$HOME\" 100%% \\ done" "" "a b" ";" "tab\there"`},
		{f.Service, "Type=exec"},
		{f.Service, "SyslogIdentifier=socketley-web"},
		{f.Service, "Environment=A=1"},
		{f.Service, `Environment="B=x y"`},
		{f.Service, `Environment="C=\"q\" \\ %%n"`},
		{f.Service, "EnvironmentFile=/etc/web/env"},
		{f.Service, "EnvironmentFile=/etc/web/100%%"},
		{f.Service, "WorkingDirectory=/srv/web 1"},
		{f.Service, "User=www"},
		{f.Service, "Restart=on-failure"},
		{f.Service, "RestartSec=250ms"},
		{f.Service, "TimeoutStopSec=5s"},
		{f.Service, "LoadCredential=token:/etc/web/token"},
		{f.Service, "MemoryMax=536870912"},
		{f.Service, "MemoryHigh=infinity"},
		{f.Service, "CPUQuota=50%"},
		{f.Service, "CPUWeight=200"},
		{f.Service, "TasksMax=64"},
		{f.Service, "LimitNOFILE=4096"},
		{f.Service, "LimitCORE=0"},
		{f.Service, "MemoryAccounting=yes"},
		{f.Service, "KillMode=control-group"},
		{f.Service, "SendSIGKILL=yes"},
		// --harden, with -p overriding it.
		{f.Service, "NoNewPrivileges=yes"},
		{f.Service, "ProtectSystem=strict"},
		{f.Service, "MemoryDenyWriteExecute=no"},
		{f.Service, "RestrictNamespaces=yes"},
		{f.Service, "SystemCallArchitectures=native"},
		{f.Service, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"},
		{f.Service, "SystemCallFilter=@system-service"},
		{f.Service, "SystemCallFilter=~@privileged @resources"},
		{f.Service, "SystemCallErrorNumber=EPERM"},
		{f.Service, "CapabilityBoundingSet="},
		{f.Service, "AmbientCapabilities="},
		{f.Service, "UMask=0027"},
		{f.Service, "ProtectKernelTunables=yes"},
		{f.Service, `ReadWritePaths="/srv/web 1"`},
		// -p settings.
		{f.Service, "IOWeight=50"},
		{f.Service, "KillSignal=SIGINT"},
		{f.Service, "MemorySwapMax=1073741824"},
		{f.Service, "Nice=5"},
		{f.Service, "OOMScoreAdjust=-5"},
		{f.Service, "RuntimeMaxSec=infinity"},
		{f.Service, "TimeoutStartSec=90s"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if !slices.Contains(tt.section, tt.line) {
				t.Errorf("missing %q in\n%s", tt.line, f)
			}
		})
	}
	for _, l := range f.Service {
		if strings.HasPrefix(l, "UMask=") && l != "UMask=0027" {
			t.Errorf("the preset's UMask not overridden by -p: %s", l)
		}
	}
}

// TestServiceFileEveryProperty checks that each D-Bus property of a Spec
// becomes one setting (LimitX and LimitXSoft: one), in order.
func TestServiceFileEveryProperty(t *testing.T) {
	for _, scope := range []Scope{System, User} {
		spec := fullSpec()
		if scope == User {
			spec.User = ""
		}
		props, err := properties(spec, scope)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ServiceFile(spec, scope)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, l := range slices.Concat(f.Unit, f.Service) {
			k, _, _ := strings.Cut(l, "=")
			keys = append(keys, k)
		}
		for _, p := range props {
			name := p.Name
			switch {
			case strings.HasSuffix(name, "Soft"):
				continue
			case name == "ExecStartEx":
				name = "ExecStart"
			case name == "EnvironmentFiles":
				name = "EnvironmentFile"
			case name == "CPUQuotaPerSecUSec":
				name = "CPUQuota"
			case strings.HasSuffix(name, "USec"):
				name = strings.TrimSuffix(name, "USec") + "Sec"
			}
			if !slices.Contains(keys, name) {
				t.Errorf("scope %v: property %s has no setting in\n%s", scope, p.Name, f)
			}
		}
	}
}

func TestServiceFileRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Spec)
	}{
		{"user in the user scope", func(s *Spec) {}},
		{"trailing backslash", func(s *Spec) { s.User = ""; s.WorkingDirectory = `/srv/x\` }},
		{"no path", func(s *Spec) { s.User = ""; s.Path = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fullSpec()
			tt.edit(&s)
			if _, err := ServiceFile(s, User); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestQuoteWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain-word_1.2:3=4,5+6@7", "plain-word_1.2:3=4,5+6@7"},
		{"50%", "50%%"},
		{"", `""`},
		{"a b", `"a b"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"$HOME", `"$HOME"`},
		{"'", `"'"`},
		{";", `";"`},
		{"a\nb", `"a\nb"`},
		{"\x01", `"\x01"`},
		{"ü", `"ü"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := quoteWord(tt.in); got != tt.want {
				t.Errorf("quoteWord(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestSocketFile(t *testing.T) {
	f, err := SocketFile("web", []string{"8080", "127.0.0.1:9090"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ListenStream=8080", "ListenStream=127.0.0.1:9090", "TriggerLimitIntervalSec=0"} {
		if !slices.Contains(f.Socket, want) {
			t.Errorf("missing %s in\n%s", want, f)
		}
	}
}

// TestUnitFileVerify runs systemd-analyze verify on the files of a spec
// with every setting: systemd reads every line without a complaint.
func TestUnitFileVerify(t *testing.T) {
	sa := testenv.RequireTool(t, "systemd-analyze", "systemd")
	for _, scope := range []Scope{System, User} {
		t.Run(map[Scope]string{System: "system", User: "user"}[scope], func(t *testing.T) {
			dir := t.TempDir()
			spec := fullSpec()
			spec.User, spec.Credentials, spec.EnvFiles = "", nil, nil
			spec.WorkingDirectory = dir
			spec.StartLimitBurst, spec.StartLimitInterval, spec.NoStartLimit = 0, 0, true
			svc, err := ServiceFile(spec, scope)
			if err != nil {
				t.Fatal(err)
			}
			svc.Unit = append(svc.Unit, "Requires="+SocketName("web"), "After="+SocketName("web"))
			svc.Install = []string{"WantedBy=multi-user.target"}
			sock, err := SocketFile("web", []string{"127.0.0.1:18080"})
			if err != nil {
				t.Fatal(err)
			}
			sock.Install = []string{"WantedBy=sockets.target"}
			svcPath, sockPath := filepath.Join(dir, Name("web")), filepath.Join(dir, SocketName("web"))
			if err := os.WriteFile(svcPath, []byte(svc.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sockPath, []byte(sock.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"verify", "--man=no"}
			if scope == User {
				args = append(args, "--user")
			}
			cmd := exec.Command(sa, append(args, svcPath, sockPath)...)
			// A user manager's verify needs a runtime directory.
			cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "XDG_RUNTIME_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s\n--- %s\n%s--- %s\n%s", err, out, svcPath, svc, sockPath, sock)
			}
		})
	}
}
