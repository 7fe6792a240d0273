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

// TestReuseAfterDaemonClosed: a kept connection the daemon has closed
// since its reply (a refusal that ends the connection, its idle limit, a
// restart) costs the next request nothing: it goes on a new connection.
// But a request the daemon read and then closed the connection on, with
// no reply (it died, or a shutdown cut it), is never sent again: it fails.
// Concurrent requests on one Reuse client all get their replies.
func TestReuseAfterDaemonClosed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var accepted, removes atomic.Int32
	closed := make(chan struct{}, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				// One request per connection, then the daemon closes it.
				defer func() { _ = c.Close(); closed <- struct{}{} }()
				line, err := wire.ReadLine(bufio.NewReader(c))
				if err != nil {
					return
				}
				if strings.Contains(line, `"cmd":"remove"`) {
					removes.Add(1)
					return // read and done, never answered
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
		<-closed // the daemon has closed the connection the client keeps
	}
	if n := accepted.Load(); n != 3 {
		t.Fatalf("%d connections for 3 requests, want 3 (each kept one found closed, then a new one)", n)
	}
	if _, err := c.Do(t.Context(), wire.Request{Cmd: wire.CmdRemove, Names: []string{"web"}}); err == nil {
		t.Fatal("a request the daemon read and never answered: no error")
	}
	if n := removes.Load(); n != 1 {
		t.Fatalf("the remove reached the daemon %d times, want once", n)
	}

	// Concurrent use, against a daemon that keeps its connections.
	c = &Client{Socket: testenv.FakeDaemon(t, func(string) (byte, []byte) { return wire.CodeOK, []byte(`{}`) }), Reuse: true}
	defer c.Close()
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
