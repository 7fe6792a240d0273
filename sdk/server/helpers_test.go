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

	"github.com/socketley/socketley/internal/testenv"
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
		ctx, cancel := context.WithTimeout(context.Background(), failsafe)
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
	nc, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())), failsafe)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	// A hang fails the test instead of blocking it until the go test timeout.
	_ = nc.SetDeadline(time.Now().Add(failsafe))
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
	_ = c.SetReadDeadline(time.Now().Add(failsafe))
	for {
		_, err := c.r.ReadByte()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection not closed by the server within %v", failsafe)
		}
		return // EOF or reset
	}
}

func echo(s *Server) {
	s.OnMessage(func(c *Conn, msg []byte) { _ = c.Send(msg) })
}

// failsafe bounds every wait in this package for something that must
// happen. It only turns a hang into a failure with a message: a correct run
// never comes near it, even with -race on a loaded 2-core machine, so no
// test depends on it being long enough. Tests synchronise on events (a
// callback, a log line, a channel), never on elapsed time.
const failsafe = time.Minute

// eventually polls cond until it holds, failing the test after failsafe.
// It is only for state that has no event to wait on (the fd table, the
// goroutine count, an engine's internal state) and that, once reached,
// stays reached, so the polling interval cannot make the test fail.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failsafe)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", failsafe, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive waits for a value on ch, failing the test after failsafe.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(failsafe):
		t.Fatalf("timed out after %v waiting for %s", failsafe, what)
		panic("unreachable")
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testenv.Skipf(t, "no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// counter counts calls per connection id; waitTotal blocks until a number
// of calls was reached.
type counter struct {
	mu      sync.Mutex
	m       map[uint64]int
	n       int
	changed chan struct{} // closed by the next inc
}

func (c *counter) inc(id uint64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[uint64]int)
	}
	c.m[id]++
	c.n++
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitTotal blocks until at least n calls were counted, failing the test
// after failsafe.
func (c *counter) waitTotal(t testing.TB, n int, what string) {
	t.Helper()
	timeout := time.NewTimer(failsafe)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		if c.n >= n {
			c.mu.Unlock()
			return
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out after %v waiting for %s: %d of %d calls", failsafe, what, c.total(), n)
		}
	}
}

// logSink is a log destination safe for concurrent writes that lets a test
// wait for a line.
type logSink struct{ testenv.LogBuffer }

// waitFor blocks until the log contains sub, failing the test after
// failsafe.
func (s *logSink) waitFor(t testing.TB, sub string) {
	t.Helper()
	timeout := time.NewTimer(failsafe)
	defer timeout.Stop()
	for {
		text, changed := s.Next()
		if strings.Contains(text, sub) {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out after %v waiting for %q in the log:\n%s", failsafe, sub, s.String())
		}
	}
}

// settleGoroutines waits until at most want goroutines are left. It polls:
// goroutines that end after Run returned (Run's helpers, the test's own
// Run goroutine) signal nothing when they are gone.
func settleGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(failsafe)
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
		testenv.Skipf(t, "io_uring unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown(context.Background())
}
