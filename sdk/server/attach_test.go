package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

// fakeDaemon answers one request per connection on a unix socket with code
// and records the request lines; each line is also sent on requests before
// the reply is written.
type fakeDaemon struct {
	mu       sync.Mutex
	lines    []string
	requests chan string
}

func startFakeDaemon(t *testing.T, code byte, reply string) (*fakeDaemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socketley.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{requests: make(chan string, 16)}
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
				select {
				case d.requests <- line:
				default: // nobody waits for this many
				}
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
				var logs logSink
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
				if got := receive(t, d.requests, "the attach request"); got != want {
					t.Errorf("attach request: got %q, want %q", got, want)
				}
				if tt.wantRun != nil {
					if err := receive(t, errc, "Run to return after a required attach failed"); !errors.Is(err, tt.wantRun) {
						t.Fatalf("Run: got %v, want %v", err, tt.wantRun)
					}
					return
				}
				c := dial(t, s)
				c.send(t, "still serving")
				if got := c.line(t); got != "still serving" {
					t.Fatalf("got %q", got)
				}
				if tt.wantLog != "" {
					logs.waitFor(t, tt.wantLog)
				}
				if err := s.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatalf("Run: %v", err)
				}
				if got := d.got(); len(got) != 1 {
					t.Errorf("daemon requests: got %q, want the attach only", got)
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
	// An echo does not prove that Run has got past the point where it would
	// start the attach. Shutdown returns once Run is done, and Run waits for
	// its attach goroutine, whose request the daemon records before it
	// replies: from here on, an attach Run had started is in d.got(). (Only
	// a broken Run whose attach goroutine did not even dial before the
	// engine had stopped would slip through.)
	ctx, cancel := context.WithTimeout(context.Background(), failsafe)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.got(); len(got) != 0 {
		t.Errorf("daemon requests: got %q, want none", got)
	}
}
