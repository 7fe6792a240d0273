package control

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// serveOnce listens on sock and answers one request with code and text.
func serveOnce(t *testing.T, sock string, code byte, text string) {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := wire.ReadLine(bufio.NewReader(c)); err != nil {
			return
		}
		_ = wire.WriteReply(c, code, []byte(text+"\n"))
	}()
}

// staleSocket leaves a socket file nobody listens on (connect: ECONNREFUSED).
func staleSocket(t *testing.T, sock string) {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close()
}

// TestLineRetryingUntilTheDaemonListens: a missing or refusing socket is
// retried until the daemon listens; the test brings the daemon up only
// after the first failed try (an event, not a delay). A refusal by the
// daemon itself is not retried, and the retries end at ctx's deadline.
func TestLineRetryingUntilTheDaemonListens(t *testing.T) {
	tests := []struct {
		name    string
		before  func(t *testing.T, sock string) // the socket before the first try
		up      bool                            // bring the daemon up after the first failed try
		code    byte                            // its reply
		wantErr error
		retries bool
	}{
		{"missing socket, daemon appears", func(*testing.T, string) {}, true, wire.CodeOK, nil, true},
		{"refusing socket, daemon restarts", staleSocket, true, wire.CodeOK, nil, true},
		{"daemon refuses the attach", func(t *testing.T, s string) { serveOnce(t, s, wire.CodeInvalid, "no") }, false, 0, ErrRefused, false},
		{"daemon never comes", staleSocket, false, 0, ErrUnreachable, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s.sock")
			tt.before(t, sock)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if !tt.up {
				var c2 context.CancelFunc
				ctx, c2 = context.WithTimeout(ctx, 100*time.Millisecond)
				defer c2()
			}
			failed := make(chan error, 64)
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				c := &Client{Socket: sock}
				code, _, err := c.LineRetrying(ctx, "attach server x 1 --pid 1", func(err error) {
					select {
					case failed <- err:
					default:
					}
				})
				if err == nil && code != 0 {
					err = &ReplyError{Code: code, Message: "refused"}
				}
				done <- result{code, err}
			}()
			if tt.up {
				if err := <-failed; !errors.Is(err, ErrUnreachable) {
					t.Fatalf("first try: %v, want ErrUnreachable", err)
				}
				_ = os.Remove(sock)
				serveOnce(t, sock, tt.code, "attached")
			}
			r := <-done
			if tt.wantErr == nil && r.err != nil || tt.wantErr != nil && !errors.Is(r.err, tt.wantErr) {
				t.Fatalf("got %v, want %v", r.err, tt.wantErr)
			}
			if got := len(failed) > 0 || tt.up; got != tt.retries {
				t.Fatalf("retried %v, want %v", got, tt.retries)
			}
		})
	}
}

// TestDaemonNotThere classifies errors: only dial failures that a starting
// daemon explains are retried.
func TestDaemonNotThere(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	dial := func(sock string) error {
		_, _, err := (&Client{Socket: sock}).Line(t.Context(), "version")
		return err
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"missing socket", dial(filepath.Join(dir, "none.sock")), true},
		{"refused", dial(stale), true},
		{"permission denied", &UnreachableError{Socket: "s", Err: os.ErrPermission}, false},
		{"daemon's refusal", &ReplyError{Code: 1, Message: "no"}, false},
		{"timeout", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := daemonNotThere(tt.err); got != tt.want {
				t.Fatalf("daemonNotThere(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
