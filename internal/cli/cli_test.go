package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

func TestAddSpec(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("my-app.bin", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("plain", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		flags addFlags
		want  string // resulting name, or the error substring
		err   bool
	}{
		{"default name drops the extension", "./my-app.bin", addFlags{restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "my-app", false},
		{"explicit name", "my-app.bin", addFlags{name: "web", restart: "always", attachTimeout: 1, stopTimeout: 2 * time.Second}, "web", false},
		{"missing file", "./nope", addFlags{restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "no such file", true},
		{"directory", ".", addFlags{restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "is a directory", true},
		{"not executable", "plain", addFlags{restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "not executable", true},
		{"bad name", "my-app.bin", addFlags{name: "a b", restart: "on-failure", attachTimeout: 1, stopTimeout: 2 * time.Second}, "invalid runtime name", true},
		{"bad restart", "my-app.bin", addFlags{restart: "never", attachTimeout: 1, stopTimeout: 2 * time.Second}, "on-failure, always or no", true},
		{"bad env", "my-app.bin", addFlags{restart: "no", env: []string{"=x"}, attachTimeout: 1, stopTimeout: 2 * time.Second}, "KEY=VALUE", true},
		{"negative health", "my-app.bin", addFlags{restart: "no", healthFails: -1, attachTimeout: 1, stopTimeout: 2 * time.Second}, "negative", true},
		{"zero stop timeout", "my-app.bin", addFlags{restart: "no", attachTimeout: 1}, "--stop-timeout 0s: give a positive duration up to 5m", true},
		{"stop timeout too long", "my-app.bin", addFlags{restart: "no", attachTimeout: 1, stopTimeout: 6 * time.Minute}, "--stop-timeout 6m0s", true},
		{"bad workdir", "my-app.bin", addFlags{restart: "no", workdir: "nope", attachTimeout: 1, stopTimeout: 2 * time.Second}, "not a directory", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := tt.flags.spec(tt.path, []string{"--port", "70 70"}, false)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 1 {
					t.Fatalf("got %v (exit %d), want an exit-1 error mentioning %q", err, exitCode(err), tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if spec.Name != tt.want || spec.Path != filepath.Join(dir, "my-app.bin") || spec.Args[1] != "70 70" {
				t.Fatalf("spec = %+v", spec)
			}
			if time.Duration(spec.StopTimeout) != 2*time.Second {
				t.Fatalf("stop timeout %s, want the flag's 2s", time.Duration(spec.StopTimeout))
			}
			if spec.HealthFails != nil {
				t.Fatal("health-fails sent although not set")
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"usage", usageErr("bad"), 1},
		{"refused", &sdk.ReplyError{Code: 1, Message: "unknown runtime"}, 1},
		{"daemon failure", &sdk.ReplyError{Code: 2, Message: "systemd"}, 2},
		{"unreachable", &sdk.UnreachableError{Socket: "/x", Err: errors.New("refused")}, 2},
		{"cobra unknown flag", errors.New("unknown flag: --bogus"), 1},
		{"other", errors.New("boom"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestMainUsageErrors(t *testing.T) {
	t.Setenv("SOCKETLEY_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"ls"}, 2, "socketley daemon --user"},
		{[]string{"ls", "-o", "yaml"}, 1, "table or json"},
		{[]string{"stop"}, 1, "requires at least 1 arg"},
		{[]string{"show", "bad name"}, 1, "invalid runtime name"},
		{[]string{"attach", "server", "x", "0"}, 1, "1 to 65535"},
		{[]string{"--user", "--system", "ls"}, 1, "none of the others"},
		{[]string{"bogus"}, 1, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(t.Context(), tt.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Fatalf("exit %d stderr %q; want exit %d mentioning %q", code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}

func TestCredentialFlags(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		vals []string
		want []wire.Credential
		err  string // part of the error; "" = accepted
	}{
		{"none", nil, nil, ""},
		{"absolute", []string{"token:/etc/app/token"}, []wire.Credential{{ID: "token", Path: "/etc/app/token"}}, ""},
		{"relative, against the cwd", []string{"token:secrets/../token"}, []wire.Credential{{ID: "token", Path: filepath.Join(wd, "token")}}, ""},
		{"colon in the path", []string{"k:/etc/a:b"}, []wire.Credential{{ID: "k", Path: "/etc/a:b"}}, ""},
		{"repeated", []string{"a:/x", "b:/y"}, []wire.Credential{{ID: "a", Path: "/x"}, {ID: "b", Path: "/y"}}, ""},
		{"no colon", []string{"token"}, nil, `--credential "token" is not ID:PATH`},
		{"no ID", []string{":/x"}, nil, "is not ID:PATH"},
		{"no path", []string{"token:"}, nil, "is not ID:PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := credentials(tt.vals)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != 1 {
					t.Fatalf("got %v (exit %d), want an exit-1 error mentioning %q", err, exitCode(err), tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
