package units

import (
	"context"
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
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	// The listener is this process, not systemd (pid 1 here stands for the
	// pid the bus reports).
	_, _, err = dialPrivate(ctx, ctx, path, 1)
	if err == nil || !strings.Contains(err.Error(), "belongs to pid") {
		t.Errorf("another process at the socket: got %v, want a pid mismatch", err)
	}
	// The right pid, but no answer: the handshake ends at ctx's deadline.
	start := time.Now()
	if _, _, err := dialPrivate(ctx, ctx, path, uint32(os.Getpid())); err == nil {
		t.Error("a silent peer passed the handshake")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("handshake with a silent peer took %v", d)
	}
}
