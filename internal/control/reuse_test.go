package control

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
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
	ls(c) // still usable, but keeps nothing from now on
	if n := dials(); n != 6 || !closed(5) {
		t.Fatalf("after Close: %d dials (want 6), the new one closed after its reply: %t", n, closed(5))
	}
}

// TestReuseAfterDaemonClosed: a daemon that closes a connection after its
// reply (a refusal that ends the connection, its idle limit, a restart)
// costs a reused request nothing: it is sent again on a new connection.
// Concurrent requests on one Reuse client all get their replies.
func TestReuseAfterDaemonClosed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close() // one request per connection
				if _, err := wire.ReadLine(bufio.NewReader(c)); err != nil {
					return
				}
				_ = wire.WriteReply(c, wire.CodeOK, []byte(`{}`))
			}()
		}
	}()
	c := &Client{Socket: sock, Reuse: true}
	defer c.Close()
	for i := range 3 {
		if _, err := c.Do(t.Context(), wire.Request{Cmd: wire.CmdList}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Fatalf("%d connections for 3 requests, want 3 (each reused one found closed, then a new one)", n)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 8 {
				if _, err := c.Do(t.Context(), wire.Request{Cmd: wire.CmdList}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
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
