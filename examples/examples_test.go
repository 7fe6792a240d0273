// Standalone tests of the example programs: each is built with plain
// `go build`, started on a free port without any socketley daemon, exercised
// over TCP and stopped with SIGTERM, which must end it cleanly (exit 0).
// The managed side (socketley add, kill -9, stop/start) is covered by the
// scenarios in examples/managed, run by `make examples-test`.
package examples_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects a program's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var portRE = regexp.MustCompile(`(?:listening on |addr=)\S*:(\d+)`)

// proc is one running example program.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	addr   string
	exited chan error
}

// binDir holds the example binaries, built by TestMain with plain go build.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socketley-examples-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, ex := range []string{"echo-service", "chat-server", "counter-server"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, ex), "./"+ex).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./%s: %v\n%s", ex, err, out)
			os.Exit(2)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// start runs the example DIR on a free port, standalone: no SOCKETLEY_*
// variables, and a daemon socket that does not exist.
func start(t *testing.T, dir string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, dir), "-port", "0")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKETLEY_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "SOCKETLEY_SOCKET="+filepath.Join(t.TempDir(), "no-daemon.sock"))
	p := &proc{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", dir, p.stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := portRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.addr = "127.0.0.1:" + m[1]
			return p
		}
		select {
		case err := <-p.exited:
			t.Fatalf("%s exited at startup: %v\n%s", dir, err, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log its port within 10s:\n%s", dir, p.stderr.String())
		}
	}
}

// terminate sends SIGTERM and requires a clean exit within 10 s.
func (p *proc) terminate(wantLog string) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		p.t.Fatal("still running 10s after SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), wantLog) {
		p.t.Fatalf("stderr lacks %q:\n%s", wantLog, p.stderr.String())
	}
}

// client is one TCP connection reading lines.
type client struct {
	t     *testing.T
	c     net.Conn
	lines chan string
}

func (p *proc) dial() *client {
	p.t.Helper()
	c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = c.Close() })
	cl := &client{t: p.t, c: c, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			cl.lines <- sc.Text()
		}
		close(cl.lines)
	}()
	return cl
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.c, "%s\n", line); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads the next line and requires it to be want.
func (c *client) expect(want string) {
	c.t.Helper()
	select {
	case got, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("connection closed, want %q", want)
		}
		if got != want {
			c.t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no line within 5s, want %q", want)
	}
}

// expectPrefix reads the next line and requires the prefix.
func (c *client) expectPrefix(prefix string) {
	c.t.Helper()
	select {
	case got := <-c.lines:
		if !strings.HasPrefix(got, prefix) {
			c.t.Fatalf("got %q, want a line starting with %q", got, prefix)
		}
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no line within 5s, want %q...", prefix)
	}
}

// quiet requires that nothing arrives for a while.
func (c *client) quiet() {
	c.t.Helper()
	select {
	case got, ok := <-c.lines:
		if ok {
			c.t.Fatalf("unexpected line %q", got)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// closed requires the server to close the connection.
func (c *client) closed() {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.lines:
			if !ok {
				return
			}
		case <-time.After(5 * time.Second):
			c.t.Fatal("connection still open 5s after the server shut down")
		}
	}
}

func TestEchoService(t *testing.T) {
	p := start(t, "echo-service")
	if !strings.Contains(p.stderr.String(), "not attached") {
		t.Fatalf("without a daemon the attach should fail and be logged:\n%s", p.stderr.String())
	}
	a, b := p.dial(), p.dial()
	a.send("hello socketley")
	b.send("second client")
	a.expect("hello socketley")
	b.expect("second client")
	a.quiet()
	p.terminate("stopped")
	a.closed()
	b.closed()
}

func TestChatServer(t *testing.T) {
	p := start(t, "chat-server")
	// A silent connection, like a port check: nobody hears of it.
	probe := p.dial()
	probe.expectPrefix("* welcome user-1")
	_ = probe.c.Close()
	a := p.dial()
	a.expectPrefix("* welcome user-2")
	b := p.dial()
	b.expectPrefix("* welcome user-3")
	c := p.dial()
	c.expectPrefix("* welcome user-4")

	a.send("hello all")
	b.expect("[user-2] hello all")
	c.expect("[user-2] hello all")
	b.send("/nick bob")
	b.expect("* you are now bob")
	a.expect("* user-3 is now bob")
	c.expect("* user-3 is now bob")
	b.send("hi from bob")
	a.expect("[bob] hi from bob")
	c.expect("[bob] hi from bob")
	// Exactly once, and never back to the sender.
	a.quiet()
	b.quiet()
	c.quiet()

	_ = c.c.Close()
	a.send("still here")
	b.expect("[user-2] still here")
	p.terminate("chat-server stopped")
	a.closed()
	b.closed()
}

func TestCounterServer(t *testing.T) {
	p := start(t, "counter-server")
	a := p.dial()
	for i, m := range []string{"one", "two", "three"} {
		a.send(m)
		a.expect(fmt.Sprintf("[counter] #%d: %s", i+1, m))
	}
	// A second connection counts on its own; the first one goes on.
	b := p.dial()
	b.send("fresh")
	b.expect("[counter] #1: fresh")
	a.send("four")
	a.expect("[counter] #4: four")
	p.terminate("counter-server stopped")
	a.closed()
	b.closed()

	// A restarted server starts from #1 again.
	p = start(t, "counter-server")
	c := p.dial()
	c.send("again")
	c.expect("[counter] #1: again")
	p.terminate("counter-server stopped")
}
