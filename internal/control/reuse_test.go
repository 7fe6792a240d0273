package control

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestReuse: a Reuse client sends request after request on one
// connection, also after a refusal (a reply is a reply); it drops a
// connection whose request was cancelled, one idle for ReuseIdle, and the
// idle one on Close. Without Reuse each request dials.
func TestReuse(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release) })
	sock := testenv.FakeDaemon(t, func(line string) (byte, []byte) {
		switch {
		case strings.Contains(line, `"cmd":"stop"`):
			arrived <- struct{}{}
			<-release // answered only after the client gave up
		case strings.Contains(line, `"cmd":"show"`):
			return wire.CodeInvalid, []byte(`{"error":"no such runtime: x","class":"not-found"}`)
		}
		return wire.CodeOK, []byte(`{}`)
	})
	var mu sync.Mutex
	var conns []*trackedConn
	client := func(reuse bool) *Client {
		return &Client{Socket: sock, Reuse: reuse, Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				return nil, err
			}
			tc := &trackedConn{Conn: c}
			mu.Lock()
			conns = append(conns, tc)
			mu.Unlock()
			return tc, nil
		}}
	}
	dials := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	closed := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return conns[i].closed.Load()
	}
	ls := func(c *Client) {
		t.Helper()
		if _, err := c.Do(t.Context(), wire.Request{Cmd: wire.CmdList}); err != nil {
			t.Fatal(err)
		}
	}

	c := client(false)
	ls(c)
	ls(c)
	if n := dials(); n != 2 || !closed(0) || !closed(1) {
		t.Fatalf("without Reuse: %d dials (want 2), all closed: %t %t", n, closed(0), closed(1))
	}

	c = client(true)
	ls(c)
	ls(c)
	if _, err := c.Do(t.Context(), wire.Request{Cmd: wire.CmdShow, Names: []string{"x"}}); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("show x: %v, want not found", err)
	}
	ls(c)
	if n := dials(); n != 3 || closed(2) {
		t.Fatalf("with Reuse: %d dials (want 3: one more), kept open: %t", n, !closed(2))
	}

	// A cancelled request: its connection (whose reply may still come) is
	// closed, and the next request dials.
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, wire.Request{Cmd: wire.CmdStop, Names: []string{"x"}})
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stop: %v", err)
	}
	if !closed(2) {
		t.Fatal("the connection of the cancelled request was not closed")
	}
	ls(c)
	if n := dials(); n != 4 {
		t.Fatalf("after the cancelled request: %d dials, want 4", n)
	}

	// Idle for ReuseIdle: closed and dialed anew.
	c.mu.Lock()
	c.idleAt = c.idleAt.Add(-ReuseIdle)
	c.mu.Unlock()
	ls(c)
	if n := dials(); n != 5 || !closed(3) {
		t.Fatalf("after ReuseIdle: %d dials (want 5), the old one closed: %t", n, closed(3))
	}

	if err := c.Close(); err != nil || !closed(4) {
		t.Fatalf("Close: %v, the kept connection closed: %t", err, closed(4))
	}
	ls(c) // still usable
	if n := dials(); n != 6 {
		t.Fatalf("after Close: %d dials, want 6", n)
	}
	_ = c.Close()
}

// trackedConn records that it was closed.
type trackedConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *trackedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}
