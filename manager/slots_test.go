package manager

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// socketGroupForTests is the socket group of the system-mode daemons below;
// the fake callers are members.
const socketGroupForTests = 4000

// fakeUIDServer serves a system-mode daemon whose callers' uids come from
// their (abstract) local addresses, "@sl-test-PID-UID-N", so that one
// process can be many users; an unnamed client is itself (root in CI).
func fakeUIDServer(t *testing.T) *Manager {
	t.Helper()
	m, _ := newTestManager(t)
	m.cfg.Mode = paths.System
	m.group = socketGroupForTests
	m.credOf = func(c *net.UnixConn) (Caller, error) {
		a, _ := c.RemoteAddr().(*net.UnixAddr)
		if a == nil || !strings.HasPrefix(a.Name, "@sl-test-") {
			return peerCred(c)
		}
		f := strings.Split(a.Name, "-")
		uid, err := strconv.Atoi(f[len(f)-2])
		if err != nil {
			return Caller{}, err
		}
		return Caller{UID: uid, GID: socketGroupForTests, PID: os.Getpid()}, nil
	}
	serveTest(t, m)
	return m
}

var dialSeq atomic.Int64

// dialAs connects to m's socket as uid (see fakeUIDServer); the connection
// is closed when the test ends.
func dialAs(t *testing.T, m *Manager, uid int) *net.UnixConn {
	t.Helper()
	laddr := &net.UnixAddr{Net: "unix", Name: fmt.Sprintf("@sl-test-%d-%d-%d", os.Getpid(), uid, dialSeq.Add(1))}
	c, err := net.DialUnix("unix", laddr, &net.UnixAddr{Net: "unix", Name: m.cfg.Socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// noReply is request's code when no reply frame came.
const noReply = 255

// request sends line on c and returns the reply's code and text.
func request(t *testing.T, c net.Conn, line string) (byte, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(testWait))
	if _, err := c.Write([]byte(line)); err != nil {
		return noReply, "write: " + err.Error()
	}
	b, err := readFrame(c)
	if err != nil || len(b) < 2 {
		return noReply, fmt.Sprintf("no reply: %q %v", b, err)
	}
	return b[0], string(b[1 : len(b)-1])
}

// TestIdleClientsDoNotStarveOthers: 200 idle connections of one user and
// 50 of another that trickle newlines hold at most maxConnsPerUID slots
// each; other users, root and attaches still get served, also once the
// shared slots are all taken.
func TestIdleClientsDoNotStarveOthers(t *testing.T) {
	old := readDeadline
	t.Cleanup(func() { readDeadline = old }) // runs after the server stopped
	readDeadline = 10 * testWait             // nothing here may end by the idle limit
	m := fakeUIDServer(t)

	const idler, trickler = 4242, 4243
	for range 200 {
		dialAs(t, m, idler)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	for range 50 {
		c := dialAs(t, m, trickler)
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := c.Write([]byte("\n")); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	// Connections are accepted in the order they were made, so these come
	// after all of the above.
	t0 := time.Now()
	code, msg := request(t, dialAs(t, m, 4244), "ls\n")
	t.Logf("ls of another user with 250 connections open: %v", time.Since(t0))
	if code != wire.CodeOK {
		t.Fatalf("ls of another user: %d %q, want it answered", code, msg)
	}
	// One more of the idle user is refused, naming the per-user limit once
	// a refusing goroutine is free (the 200 refused connections before it
	// occupy them until their own refusals end; nothing announces that).
	var last string
	eventually(t, "the idle user's refusal to name the per-user limit", func() bool {
		code, msg := request(t, dialAs(t, m, idler), "ls\n")
		if code == wire.CodeOK {
			t.Fatalf("one more connection of the idle user was served: %q", msg)
		}
		last = msg
		return code == wire.CodeInvalid && strings.Contains(msg, "per-user limit")
	})
	t.Logf("refusal: %s", last)

	// Other users take every shared slot; the next user is turned away
	// for ls, but root and an attach are still served.
	for uid := 5000; ; uid++ {
		filled := false
		for range maxConnsPerUID {
			c := dialAs(t, m, uid)
			if code, msg := request(t, c, "version\n"); code != wire.CodeOK {
				if !strings.Contains(msg, "too many connections") {
					t.Fatalf("filling the shared slots: %d %q", code, msg)
				}
				filled = true
				break
			}
		}
		if filled {
			break
		}
		if uid > 5000+maxConns {
			t.Fatal("the shared slots never filled up")
		}
	}
	t0 = time.Now()
	code, msg = request(t, dialAs(t, m, 0), "ls\n")
	t.Logf("ls of root with every shared slot taken: %v", time.Since(t0))
	if code != wire.CodeOK {
		t.Fatalf("root's ls with the shared slots full: %d %q, want it answered", code, msg)
	}
	// An attach of a pid that is not the caller's: refused for that reason,
	// not for lack of a slot.
	code, msg = request(t, dialAs(t, m, 7000), "attach server web 8080 --pid 1\n")
	if strings.Contains(msg, "too many connections") || code == noReply {
		t.Fatalf("attach with the shared slots full: %d %q, want it handled", code, msg)
	}
	if code, msg := request(t, dialAs(t, m, 7001), "ls\n"); code != wire.CodeInvalid || !strings.Contains(msg, "too many connections") {
		t.Fatalf("ls of a new user with the shared slots full: %d %q, want too many connections", code, msg)
	}
}

// TestNewlinesDoNotResetTheIdleLimit: a client that sends only empty lines
// is closed by the idle limit, which only a complete request resets.
func TestNewlinesDoNotResetTheIdleLimit(t *testing.T) {
	old := readDeadline
	t.Cleanup(func() { readDeadline = old })
	readDeadline = 300 * time.Millisecond
	m, _ := newTestManager(t)
	serveTest(t, m)
	c, err := net.Dial("unix", m.cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := c.Write([]byte("\n")); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(testWait))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a client sending only newlines: read %d %v, want EOF from the daemon", n, err)
	}
}
