package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// The activation tests re-exec the test binary as a child that inherits a
// listening socket as fd 3, with LISTEN_FDS set, the way systemd starts a
// socket-activated service. The child (TestActivationChild) sets LISTEN_PID
// to its own pid (systemd sets it between fork and exec, which exec.Cmd
// cannot), creates a server, prints one line with the outcome and echoes
// lines prefixed with its tag until its stdin closes.
const (
	envChild    = "SOCKETLEY_TEST_ACTIVATION_CHILD" // the address the child passes to New
	envChildPID = "SOCKETLEY_TEST_ACTIVATION_PID"   // "self": set LISTEN_PID to the child's pid
	envChildTag = "SOCKETLEY_TEST_ACTIVATION_TAG"
	// envChildNet makes the child serve with Listen and the net package
	// instead of a Server.
	envChildNet = "SOCKETLEY_TEST_ACTIVATION_NET"
)

func TestActivationChild(t *testing.T) {
	addr := os.Getenv(envChild)
	if addr == "" {
		testenv.Skip(t, "only run as the child of TestSocketActivation")
	}
	if os.Getenv(envChildPID) == "self" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	tag := os.Getenv(envChildTag)
	if os.Getenv(envChildNet) != "" {
		listenChild(addr, tag)
		return
	}
	s, err := New(addr, WithoutAttach())
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		return
	}
	s.OnMessage(func(c *Conn, msg []byte) { _ = c.Send(fmt.Appendf(nil, "%s:%s", tag, msg)) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	fmt.Printf("READY activated=%t port=%d engine=%s\n", s.Activated(), s.Port(), s.Engine())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	cancel()
	if err := <-done; err != nil {
		fmt.Printf("RUN %v\n", err)
	}
}

// listenChild is TestActivationChild serving with Listen: one line per
// connection, answered with the tag, until stdin closes.
func listenChild(addr, tag string) {
	ln, err := Listen(addr)
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		return
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for r := bufio.NewReader(c); ; {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s:%s", tag, line)
				}
			}()
		}
	}()
	fmt.Printf("READY port=%d engine=listen\n", ln.Addr().(*net.TCPAddr).Port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	ln.Close()
}

// child is a running TestActivationChild.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready string // the READY line (or ERROR)
}

// startChild runs the child with f (when non-nil) as fd 3 and LISTEN_FDS=1,
// and waits for its first line.
func startChild(t *testing.T, eng Engine, addr, tag string, f *os.File, pid string) *child {
	t.Helper()
	var files []*os.File
	if f != nil {
		files = []*os.File{f}
	}
	return startChildFiles(t, eng, addr, tag, files, pid)
}

// startChildFiles runs the child with files as fd 3, 4, … and LISTEN_FDS
// set to their number (none: no socket activation), and waits for its
// first line. Engine "listen" makes the child serve with Listen.
func startChildFiles(t *testing.T, eng Engine, addr, tag string, files []*os.File, pid string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestActivationChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), envChild+"="+addr, envChildTag+"="+tag, envChildPID+"="+pid, EnvEngine+"="+string(eng))
	if eng == "listen" {
		cmd.Env = append(cmd.Env, envChildNet+"=1", EnvEngine+"=")
	}
	if len(files) > 0 {
		cmd.ExtraFiles = files
		names := make([]string, len(files))
		for i := range names {
			names[i] = "test"
		}
		cmd.Env = append(cmd.Env, fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
		if pid != "self" {
			cmd.Env = append(cmd.Env, "LISTEN_PID="+pid)
		}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { c.stop(t) })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: no first line: %v", err)
	}
	c.ready = strings.TrimSpace(line)
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return c
}

// stop closes the child's stdin (it shuts down) and waits for it to exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if c.stdin == nil {
		return
	}
	c.stdin.Close()
	c.stdin = nil
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
}

// roundTrip sends line on conn and returns the reply line.
func roundTrip(t *testing.T, conn net.Conn, line string) string {
	t.Helper()
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(failsafe))
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read reply to %q: %v", line, err)
	}
	return strings.TrimSpace(reply)
}

// heldSocket is a listening socket the test holds, as systemd holds a
// .socket unit's: its file (for ExtraFiles) and port.
func heldSocket(t *testing.T) (*os.File, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File() // a dup: the socket lives while f is open
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().(*net.TCPAddr).Port
}

// freePort returns a port nobody listens on (it was free a moment ago).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestSocketActivation(t *testing.T) {
	cases := []struct {
		name string
		// addr is New's address, from the held socket's port and a free
		// port nobody listens on.
		addr          func(held, free int) string
		pid           string // LISTEN_PID: "self", or another pid
		wantActivated bool
	}{
		{"matching address", func(h, _ int) string { return fmt.Sprintf("127.0.0.1:%d", h) }, "self", true},
		{"any host, same port", func(h, _ int) string { return fmt.Sprintf(":%d", h) }, "self", true},
		{"port 0 takes the inherited socket", func(int, int) string { return "127.0.0.1:0" }, "self", true},
		{"other port binds its own", func(_, f int) string { return fmt.Sprintf("127.0.0.1:%d", f) }, "self", false},
		{"LISTEN_PID of another process is ignored", func(int, int) string { return "127.0.0.1:0" }, "1", false},
	}
	allEngines(t, func(t *testing.T, eng Engine) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f, port := heldSocket(t)
				addr, want := tc.addr(port, freePort(t)), tc.wantActivated
				// A client connects and writes before the child exists: the
				// connection waits in the held socket's queue.
				early, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatal(err)
				}
				defer early.Close()
				c := startChild(t, eng, addr, "one", f, tc.pid)
				wantReady := fmt.Sprintf("READY activated=%t", want)
				if !strings.HasPrefix(c.ready, wantReady) {
					t.Fatalf("child: %q, want %q…", c.ready, wantReady)
				}
				if !strings.HasSuffix(c.ready, "engine="+string(eng)) {
					t.Fatalf("child: %q, want engine %s", c.ready, eng)
				}
				if !want {
					if strings.Contains(c.ready, fmt.Sprintf("port=%d ", port)) {
						t.Fatalf("child bound itself but reports the held port: %q", c.ready)
					}
					return
				}
				if !strings.Contains(c.ready, fmt.Sprintf("port=%d ", port)) {
					t.Fatalf("child: %q, want port %d", c.ready, port)
				}
				if got := roundTrip(t, early, "queued"); got != "one:queued" {
					t.Fatalf("queued connection: got %q, want one:queued", got)
				}
				// Restart: the child exits, a client connects while nothing
				// serves, the next child answers it.
				c.stop(t)
				gap, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatalf("connect between children: %v", err)
				}
				defer gap.Close()
				if _, err := fmt.Fprintf(gap, "gap\n"); err != nil {
					t.Fatal(err)
				}
				startChild(t, eng, addr, "two", f, tc.pid)
				if got := roundTrip(t, gap, "again"); got != "two:gap" {
					t.Fatalf("connection made between children: got %q, want two:gap", got)
				}
			})
		}
	})
}

func TestWantAddrMatches(t *testing.T) {
	cases := []struct {
		want string
		got  *net.TCPAddr
		ok   bool
	}{
		{":80", &net.TCPAddr{IP: net.IPv6unspecified, Port: 80}, true},
		{":80", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, true},
		{":81", &net.TCPAddr{IP: net.IPv6unspecified, Port: 80}, false},
		{":0", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}, true},
		{"127.0.0.1:80", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, true},
		{"127.0.0.1:80", &net.TCPAddr{IP: net.IPv4zero, Port: 80}, true},
		{"127.0.0.1:80", &net.TCPAddr{IP: net.IPv6unspecified, Port: 80}, true},
		{"127.0.0.1:80", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 80}, false},
		{"[::1]:80", &net.TCPAddr{IP: net.IPv6loopback, Port: 80}, true},
		{"[::1]:80", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, false},
		{"0.0.0.0:80", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, true},
	}
	for _, tc := range cases {
		t.Run(tc.want+" vs "+tc.got.String(), func(t *testing.T) {
			w, err := parseWant(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.matches(tc.got); got != tc.ok {
				t.Fatalf("matches = %t, want %t", got, tc.ok)
			}
		})
	}
	for _, bad := range []string{"nocolon", "127.0.0.1:notaport", "[::1:80"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := parseWant(bad); err == nil {
				t.Fatalf("parseWant(%q): no error", bad)
			}
		})
	}
}

// TestSocketActivationPicksTheMatchingSocket: of two inherited sockets (two
// --listen addresses) a server takes the one of its port, on both engines,
// and Listen does too.
func TestSocketActivationPicksTheMatchingSocket(t *testing.T) {
	check := func(t *testing.T, eng Engine) {
		f1, p1 := heldSocket(t)
		f2, p2 := heldSocket(t)
		c := startChildFiles(t, eng, fmt.Sprintf(":%d", p2), "two", []*os.File{f1, f2}, "self")
		if !strings.Contains(c.ready, fmt.Sprintf("port=%d ", p2)) {
			t.Fatalf("child: %q, want port %d (the second socket; the first is %d)", c.ready, p2, p1)
		}
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p2))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := roundTrip(t, conn, "hi"); got != "two:hi" {
			t.Fatalf("reply %q, want two:hi", got)
		}
	}
	allEngines(t, check)
	t.Run("Listen", func(t *testing.T) { check(t, "listen") })
}

// TestListen: Listen takes the inherited socket (a connection queued before
// the child existed is answered, and port 0 gets the held port), and binds
// its own without one.
func TestListen(t *testing.T) {
	f, port := heldSocket(t)
	early, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	c := startChild(t, "listen", "127.0.0.1:0", "net", f, "self")
	if c.ready != fmt.Sprintf("READY port=%d engine=listen", port) {
		t.Fatalf("child: %q, want the held port %d", c.ready, port)
	}
	if got := roundTrip(t, early, "queued"); got != "net:queued" {
		t.Fatalf("queued connection: %q", got)
	}
	c.stop(t)
	// No socket passed: Listen binds its own.
	c = startChild(t, "listen", "127.0.0.1:0", "own", nil, "self")
	if !strings.HasPrefix(c.ready, "READY port=") || c.ready == fmt.Sprintf("READY port=%d engine=listen", port) {
		t.Fatalf("child without a socket: %q", c.ready)
	}
}
