// Standalone tests of the example programs: each is built with plain
// `go build`, started on a free port without any socketley daemon, exercised
// over TCP and stopped with SIGTERM, which must end it cleanly (exit 0).
// The managed side (socketley add, kill -9, stop/start) is covered by the
// scenarios in examples/managed, run by `make examples-test`.
package examples_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

var portRE = regexp.MustCompile(`(?:listening on |addr=)\S*:(\d+)`)

// proc is one running example program.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testenv.LogBuffer
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
	for _, ex := range []string{"echo-service", "chat-server", "counter-server", "kv-server"} {
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
	return startWith(t, dir, filepath.Join(t.TempDir(), "no-daemon.sock"))
}

// startWith is start with the daemon socket given.
func startWith(t *testing.T, dir, socket string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, dir), "-port", "0")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKETLEY_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "SOCKETLEY_SOCKET="+socket)
	p := &proc{t: t, cmd: cmd, stderr: &testenv.LogBuffer{}, exited: make(chan error, 1)}
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
	m := p.waitLog("its port", func(s string) []string { return portRE.FindStringSubmatch(s) })
	p.addr = "127.0.0.1:" + m[1]
	return p
}

// timeout bounds every wait (a line on stderr or from a client, an exit, a
// close). It only decides how long a broken program takes to fail the test:
// a passing test never waits for it, so it is generous for a loaded machine.
const timeout = 30 * time.Second

// waitLog waits until find matches the program's stderr, woken by each write
// (no polling), and returns the match. It fails the test when the program
// exits first or after timeout.
func (p *proc) waitLog(what string, find func(string) []string) []string {
	p.t.Helper()
	expire := time.NewTimer(timeout)
	defer expire.Stop()
	for {
		s, changed := p.stderr.Next()
		if m := find(s); m != nil {
			return m
		}
		select {
		case <-changed:
		case err := <-p.exited:
			p.exited <- err // for terminate and others
			if m := find(p.stderr.String()); m != nil {
				return m
			}
			p.t.Fatalf("exited (%v) before logging %s:\n%s", err, what, p.stderr.String())
		case <-expire.C:
			p.t.Fatalf("did not log %s within %s:\n%s", what, timeout, p.stderr.String())
		}
	}
}

// waitLine waits for a stderr line containing sub.
func (p *proc) waitLine(sub string) {
	p.t.Helper()
	p.waitLog(strconv.Quote(sub), func(s string) []string {
		if strings.Contains(s, sub) {
			return []string{sub}
		}
		return nil
	})
}

// terminate sends SIGTERM and requires a clean exit.
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
	case <-time.After(timeout):
		p.t.Fatalf("still running %s after SIGTERM", timeout)
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
	c, err := net.DialTimeout("tcp", p.addr, timeout)
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
	case <-time.After(timeout):
		c.t.Fatalf("no line within %s, want %q", timeout, want)
	}
}

// expectPrefix reads the next line and requires the prefix.
func (c *client) expectPrefix(prefix string) {
	c.t.Helper()
	select {
	case got, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("connection closed, want %q...", prefix)
		}
		if !strings.HasPrefix(got, prefix) {
			c.t.Fatalf("got %q, want a line starting with %q", got, prefix)
		}
	case <-time.After(timeout):
		c.t.Fatalf("no line within %s, want %q...", timeout, prefix)
	}
}

// closed requires the server to close the connection, with no line before
// the end: a line still in flight (a duplicate, an echo to the sender) fails.
func (c *client) closed() {
	c.t.Helper()
	select {
	case got, ok := <-c.lines:
		if ok {
			c.t.Fatalf("unexpected line %q, want the connection closed", got)
		}
	case <-time.After(timeout):
		c.t.Fatalf("connection still open %s after the server shut down", timeout)
	}
}

func TestEchoService(t *testing.T) {
	p := start(t, "echo-service")
	// "listening on" comes before the attach attempt: wait for the attach's
	// own outcome. Without a daemon it fails, is logged, and serving goes on.
	p.waitLine("not attached to a socketley daemon")
	if strings.Contains(p.stderr.String(), "attached to the socketley daemon as") {
		t.Fatalf("attached without a daemon:\n%s", p.stderr.String())
	}
	a, b := p.dial(), p.dial()
	a.send("hello socketley")
	b.send("second client")
	a.expect("hello socketley")
	b.expect("second client")
	// Each line is echoed once, to its sender only: anything extra on a
	// connection (a second echo, the other client's line) would be written
	// before the echo of the next line, so the next line read must be it.
	a.send("again from a")
	a.expect("again from a")
	b.send("again from b")
	b.expect("again from b")
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
	// Exactly once, and never back to the sender. A duplicate to a or c, or
	// an echo to b, would be queued by the broadcast of "hi from bob", and a
	// connection's messages are written in the order they are queued (and b's
	// lines are handled in order): so the next line everyone reads must be
	// the one about b's next message.
	b.send("/nick bobby")
	b.expect("* you are now bobby")
	a.expect("* bob is now bobby")
	c.expect("* bob is now bobby")

	// A client gone does not disturb the others; the sender hears nothing
	// back (closed requires the end with no line before it).
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
