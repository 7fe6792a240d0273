package remote

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Host
		wantErr string
	}{
		{in: "ssh://web1", want: Host{Name: "web1"}},
		{in: "ssh://web1/", want: Host{Name: "web1"}},
		{in: "ssh://admin@web1.example.com", want: Host{User: "admin", Name: "web1.example.com"}},
		{in: "ssh://admin@10.0.0.5:2222", want: Host{User: "admin", Name: "10.0.0.5", Port: 2222}},
		{in: "ssh://[::1]:22", want: Host{Name: "::1", Port: 22}},
		{in: "ssh://h:65535", want: Host{Name: "h", Port: 65535}},
		{in: "", wantErr: "the host is empty"},
		{in: "web1", wantErr: "has no scheme"},
		{in: "tcp://web1", wantErr: `scheme "tcp" is not supported`},
		{in: "ssh://", wantErr: "the host is missing"},
		{in: "ssh://user@", wantErr: "the host is missing"},
		{in: "ssh://-oProxyCommand=x", wantErr: "starts with '-'"},
		{in: "ssh://-l@h", wantErr: "starts with '-'"},
		{in: "ssh://@h", wantErr: "user name is empty"},
		{in: "ssh://h:0", wantErr: `port "0" is not a port`},
		{in: "ssh://h:65536", wantErr: `port "65536" is not a port`},
		{in: "ssh://h:x", wantErr: "not an ssh address"},
		{in: "ssh://h:", wantErr: "the port after ':' is empty"},
		{in: "ssh://h/run/x.sock", wantErr: "a path is not allowed"},
		{in: "ssh://h?x=1", wantErr: "a query or fragment"},
		{in: "ssh://h#x", wantErr: "a query or fragment"},
		{in: "ssh://u:pw@h", wantErr: "a password is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			// String gives back an address that parses to the same host.
			if again, err := Parse(got.String()); err != nil || again != got {
				t.Fatalf("Parse(%q.String() = %q) = %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestSSHArgs(t *testing.T) {
	tests := []struct {
		name  string
		host  Host
		words []string
		want  []string
	}{
		{"defaults", Host{Name: "web1"}, []string{"socketley", "dial-stdio"},
			[]string{"-o", "BatchMode=yes", "web1", "--", "socketley", "dial-stdio"}},
		{"user and port", Host{User: "admin", Name: "10.0.0.5", Port: 2222}, []string{"socketley", "--user", "dial-stdio"},
			[]string{"-o", "BatchMode=yes", "-p", "2222", "-l", "admin", "10.0.0.5", "--", "socketley", "--user", "dial-stdio"}},
		{"quoted for the remote shell", Host{Name: "h"}, []string{"socketley", "--socket", "/tmp/a b/it's.sock", "dial-stdio"},
			[]string{"-o", "BatchMode=yes", "h", "--", "socketley", "--socket", `'/tmp/a b/it'\''s.sock'`, "dial-stdio"}},
		{"empty word", Host{Name: "h"}, []string{"socketley", ""},
			[]string{"-o", "BatchMode=yes", "h", "--", "socketley", "''"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.host.SSHArgs(tt.words); !slices.Equal(got, tt.want) {
				t.Fatalf("SSHArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

// fakeSSH writes an ssh stand-in that drops everything up to "--" and runs
// the rest with sh, as sshd runs the command with the user's shell.
func fakeSSH(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh")
	script := "#!/bin/sh\nwhile [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\nshift\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// reaped reports whether pid is gone (not even a zombie).
func reaped(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestConn(t *testing.T) {
	ctx := context.Background()
	h := Host{Name: "box"}
	t.Run("echo with half-close", func(t *testing.T) {
		// cat copies until stdin's EOF, then exits: CloseWrite reaches it.
		c, err := Dial(ctx, fakeSSH(t, `exec sh -c "$*"`), h, []string{"cat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("hello\x00")); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "hello\x00" {
			t.Fatalf("read %q, %v", b, err)
		}
		_ = c.Close()
		if !reaped(c.Pid()) {
			t.Fatalf("ssh %d not reaped after Close", c.Pid())
		}
	})
	t.Run("ssh failure carries its stderr", func(t *testing.T) {
		c, err := Dial(ctx, fakeSSH(t, `echo 'Permission denied (publickey).' >&2; exit 255`), h, []string{"socketley", "dial-stdio"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = bufio.NewReader(c).ReadByte()
		var se *SSHError
		if !errors.As(err, &se) || se.Status != 255 || !errors.Is(err, ErrSSH) ||
			!strings.Contains(err.Error(), "Permission denied (publickey).") {
			t.Fatalf("read error = %v, want an *SSHError with status 255 and ssh's words", err)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		// A remote that never answers: the deadline ends the read, Close
		// kills and reaps it.
		c, err := Dial(ctx, fakeSSH(t, `exec sleep 60`), h, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read = %v, want a deadline error", err)
		}
		begin := time.Now()
		_ = c.Close()
		if !reaped(c.Pid()) {
			t.Fatalf("ssh %d not reaped after Close", c.Pid())
		}
		if d := time.Since(begin); d > closeGrace+5*time.Second {
			t.Fatalf("Close took %s", d)
		}
	})
	t.Run("missing ssh", func(t *testing.T) {
		_, err := Dial(ctx, filepath.Join(t.TempDir(), "no-ssh"), h, nil)
		if !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), EnvSSH) {
			t.Fatalf("Dial = %v, want an ErrSSH naming $%s", err, EnvSSH)
		}
	})
}
