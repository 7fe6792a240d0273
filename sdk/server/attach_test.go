package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

// fakeDaemon answers one request per connection on a unix socket with code
// and records the request lines.
type fakeDaemon struct {
	mu    sync.Mutex
	lines []string
}

func startFakeDaemon(t *testing.T, code byte, reply string) (*fakeDaemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socketley.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			line, err := bufio.NewReader(nc).ReadString('\n')
			if err == nil {
				d.mu.Lock()
				d.lines = append(d.lines, line)
				d.mu.Unlock()
				_ = wire.WriteReply(nc, code, []byte(reply))
			}
			nc.Close()
		}
	}()
	return d, path
}

func (d *fakeDaemon) got() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAutoAttach(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		tests := []struct {
			name     string
			code     byte
			reply    string
			required bool
			wantRun  error // nil: keeps serving
			wantLog  string
		}{
			{name: "accepted", code: wire.CodeOK, reply: "ok\n"},
			{name: "refused, serve anyway", code: wire.CodeInvalid, reply: "no such runtime\n", wantLog: "attach to the socketley daemon failed"},
			{name: "refused, required", code: wire.CodeInvalid, reply: "denied\n", required: true, wantRun: sdk.ErrRefused},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d, sock := startFakeDaemon(t, tt.code, tt.reply)
				t.Setenv(sdk.EnvManaged, "1")
				t.Setenv(sdk.EnvName, "x")
				t.Setenv(sdk.EnvSocket, sock)
				var logs syncBuffer
				opts := []Option{WithEngine(eng), WithAttach("default-name"), WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
				if tt.required {
					opts = append(opts, WithAttachRequired())
				}
				s, err := New("127.0.0.1:0", opts...)
				if err != nil {
					t.Fatal(err)
				}
				echo(s)
				errc := make(chan error, 1)
				go func() { errc <- s.Run(context.Background()) }()
				defer func() {
					s.Shutdown(context.Background())
				}()
				want := fmt.Sprintf("attach server x %d --pid %d --managed\n", s.Port(), os.Getpid())
				eventually(t, 5*time.Second, "the attach request", func() bool { return len(d.got()) == 1 })
				if got := d.got()[0]; got != want {
					t.Errorf("attach request: got %q, want %q", got, want)
				}
				if tt.wantRun != nil {
					select {
					case err := <-errc:
						if !errors.Is(err, tt.wantRun) {
							t.Fatalf("Run: got %v, want %v", err, tt.wantRun)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("Run kept serving after a required attach failed")
					}
					return
				}
				c := dial(t, s)
				c.send(t, "still serving")
				if got := c.line(t); got != "still serving" {
					t.Fatalf("got %q", got)
				}
				if tt.wantLog != "" {
					eventually(t, 5*time.Second, "the log line", func() bool { return bytes.Contains([]byte(logs.String()), []byte(tt.wantLog)) })
				}
				if err := s.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatalf("Run: %v", err)
				}
			})
		}
	})
}

func TestNoAttachWhenUnmanaged(t *testing.T) {
	d, sock := startFakeDaemon(t, wire.CodeOK, "ok\n")
	t.Setenv(sdk.EnvManaged, "")
	t.Setenv(sdk.EnvSocket, sock)
	s := serve(t, EngineNet, echo)
	c := dial(t, s)
	c.send(t, "x")
	c.line(t)
	if got := d.got(); len(got) != 0 {
		t.Errorf("daemon requests: got %q, want none", got)
	}
}
