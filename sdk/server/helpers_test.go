package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// allEngines runs fn once per engine, as subtests named after the engine,
// so both engines pass the same suite. The io_uring run is skipped only
// where io_uring is unavailable.
func allEngines(t *testing.T, fn func(t *testing.T, eng Engine)) {
	t.Helper()
	t.Setenv(EnvEngine, "")
	for _, eng := range []Engine{EngineURing, EngineNet} {
		t.Run(string(eng), func(t *testing.T) {
			if eng == EngineURing {
				requireURing(t)
			}
			fn(t, eng)
		})
	}
}

// serve starts a server on 127.0.0.1:0 with eng and opts, lets setup install
// callbacks, runs it, and shuts it down at the end of the test.
func serve(t *testing.T, eng Engine, setup func(s *Server), opts ...Option) *Server {
	t.Helper()
	s, err := New("127.0.0.1:0", append([]Option{WithEngine(eng)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := s.Engine(); got != eng {
		t.Fatalf("Engine: got %s, want %s", got, eng)
	}
	if setup != nil {
		setup(s)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, s *Server) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())), 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{Conn: nc, r: bufio.NewReaderSize(nc, 64<<10)}
}

func (c *client) send(t testing.TB, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (c *client) line(t testing.TB) string {
	t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// expectEOF waits until the server closes the connection.
func (c *client) expectEOF(t testing.TB) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, err := c.r.ReadByte()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection not closed by the server within 10s")
		}
		return // EOF or reset
	}
}

func echo(s *Server) {
	s.OnMessage(func(c *Conn, msg []byte) { _ = c.Send(msg) })
}

// eventually polls cond for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// counter counts calls per connection id.
type counter struct {
	mu sync.Mutex
	m  map[uint64]int
}

func (c *counter) inc(id uint64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[uint64]int)
	}
	c.m[id]++
	c.mu.Unlock()
}

func (c *counter) snapshot() map[uint64]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint64]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

func (c *counter) total() int {
	n := 0
	for _, v := range c.snapshot() {
		n += v
	}
	return n
}

func settleGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: got %d, want <= %d\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireURing skips t where the io_uring engine cannot run.
func requireURing(t *testing.T) {
	t.Helper()
	t.Setenv(EnvEngine, "")
	s, err := New("127.0.0.1:0", WithEngine(EngineURing))
	if errors.Is(err, ErrEngineUnavailable) {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown(context.Background())
}
