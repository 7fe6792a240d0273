package units

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrivateSocket(t *testing.T) {
	if got := privateSocket(System); got != "/run/systemd/private" {
		t.Errorf("system: %q", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := privateSocket(User); got != "/run/user/1000/systemd/private" {
		t.Errorf("user: %q", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got := privateSocket(User); got != "" {
		t.Errorf("user without XDG_RUNTIME_DIR: %q, want none", got)
	}
}

func TestDialPrivateChecksPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent: never answers the handshake
		}
	}()
	// The listener is this process, not systemd (pid 1 here stands for the
	// pid the bus reports).
	_, _, err = dialPrivate(t.Context(), t.Context(), path, 1)
	if err == nil || !strings.Contains(err.Error(), "belongs to pid") {
		t.Errorf("another process at the socket: got %v, want a pid mismatch", err)
	}
	// The right pid, but no answer: the handshake ends at ctx's deadline.
	// The connection's life does not end, so only that deadline can end it;
	// without it the handshake would hang, and the bound below (which only
	// keeps the test from hanging) would end the test.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		conn, _, err := dialPrivate(ctx, t.Context(), path, uint32(os.Getpid()))
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a silent peer: got %v, want the handshake to end at the deadline", err)
		}
	case <-time.After(hangBound):
		t.Fatalf("the handshake with a silent peer still runs %v after its deadline", hangBound)
	}
}
