//go:build integration

package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"golang.org/x/sys/unix"
)

// askPort connects to 127.0.0.1:port, sends line and returns the reply line.
// A connection made while the runtime restarts waits in the socket systemd
// holds: the reply is the event the test waits for.
func askPort(t *testing.T, port int, line string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout)
	if err != nil {
		t.Fatalf("connect to port %d: %v", port, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		t.Fatalf("write to port %d: %v", port, err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reply on port %d to %q: %q, %v", port, line, reply, err)
	}
	return strings.TrimSpace(reply)
}

// refused reports whether nothing listens on 127.0.0.1:port.
func refused(port int) bool {
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err == nil {
		conn.Close()
		return false
	}
	return true
}

// freeTCPPort returns a loopback port nobody listened on a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// killGone sends SIGKILL to pid and returns once it has exited (pidfd), so
// that the next connection cannot be accepted by the dying process.
func killGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(waitTimeout/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("pid %d did not exit: %v", pid, err)
		}
		return
	}
}

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestListenLifecycle: a plain C program that serves fd 3 (sd_listen_fds)
// under add --listen. kill -9, restart, upgrade, a failed upgrade (switched
// back), a daemon restart and a simulated reboot keep or restore the socket
// and every connection is answered; stop and remove close the port; a port
// in use and a bad address register nothing.
func TestListenLifecycle(t *testing.T) {
	e := newEnv(t)
	bin := testenv.ListenEcho(t)
	dir := t.TempDir()
	v2 := script(t, dir, "v2", "exec "+bin+" B")
	broken := script(t, dir, "broken", "echo broken >&2; exit 1")
	port := freeTCPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)

	if out, errOut, code := e.run("add", bin, "--name", "lc", "-s", "--listen", listen, "--", "A"); code != 0 {
		t.Fatalf("add --listen: exit %d: %s%s", code, out, errOut)
	}
	if got := askPort(t, port, "one"); got != "A:one" {
		t.Fatalf("first request: %q", got)
	}
	out, _, _ := e.run("ls", "-o", "json")
	var rts []wire.Runtime
	if err := json.Unmarshal([]byte(out), &rts); err != nil || len(rts) != 1 || strings.Join(rts[0].Listen, ",") != listen {
		t.Fatalf("ls -o json: listen %v (%v): %s", rts, err, out)
	}
	if out, _, _ := e.run("show", "lc"); !strings.Contains(out, "Listen:") || !strings.Contains(out, listen) {
		t.Fatalf("show has no Listen line:\n%s", out)
	}

	steps := []struct {
		name string
		do   func(t *testing.T)
		want string // the tag of the program that must answer
	}{
		{"kill -9", func(t *testing.T) { killGone(t, mainPID(t, "lc")) }, "A"},
		{"kill -9 again at once", func(t *testing.T) { killGone(t, mainPID(t, "lc")) }, "A"},
		{"restart", func(t *testing.T) { e.ok("restart", "lc") }, "A"},
		{"upgrade", func(t *testing.T) { e.ok("upgrade", "lc", v2, "--timeout", "20s") }, "B"},
		{"failed upgrade switches back", func(t *testing.T) {
			out, errOut, code := e.run("upgrade", "lc", broken, "--timeout", "5s")
			if code != 1 || !strings.Contains(errOut, "switched back to "+v2) {
				t.Fatalf("upgrade to a broken binary: exit %d, %s%s; want 1 and switched back", code, out, errOut)
			}
		}, "B"},
		{"daemon restart", func(t *testing.T) {
			e.stopDaemon(unix.SIGTERM)
			e.startDaemon()
		}, "B"},
		{"reboot", func(t *testing.T) {
			e.stopDaemon(unix.SIGKILL)
			if out, err := exec.Command("systemctl", "--user", "stop", "socketley-lc.socket", "socketley-lc.service").CombinedOutput(); err != nil {
				t.Fatalf("systemctl stop: %v: %s", err, out)
			}
			if !refused(port) {
				t.Fatal("the port still answers with both units stopped")
			}
			e.startDaemon()
		}, "B"},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			line := fmt.Sprintf("step%d", i)
			if got := askPort(t, port, line); got != s.want+":"+line {
				t.Fatalf("after %s: %q, want %s:%s", s.name, got, s.want, line)
			}
		})
	}
	if out, _, _ := e.run("show", "lc"); !strings.Contains(out, "Path:") || !strings.Contains(out, v2) {
		t.Fatalf("show after the upgrades: want path %s:\n%s", v2, out)
	}

	t.Run("bad input registers nothing", func(t *testing.T) {
		for _, tc := range []struct{ name, listen, want string }{
			{"inuse", listen, "cannot listen there"},
			{"badaddr", "localhost:80", "the host must be an IP address"},
			{"badport", "70000", "the port must be"},
		} {
			out, errOut, code := e.run("add", bin, "--name", tc.name, "-s", "--listen", tc.listen)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("add --listen %s: exit %d, %s%s; want 1 and %q", tc.listen, code, out, errOut, tc.want)
			}
			if out, _, _ := e.run("ls"); strings.Contains(out, tc.name) {
				t.Fatalf("ls after a refused add lists %s:\n%s", tc.name, out)
			}
		}
	})

	e.ok("stop", "lc")
	if !refused(port) {
		t.Fatal("the port still answers after stop")
	}
	e.ok("start", "lc")
	if got := askPort(t, port, "started"); got != "B:started" {
		t.Fatalf("after start: %q", got)
	}
	e.ok("remove", "lc")
	if !refused(port) {
		t.Fatal("the port still answers after remove")
	}
	if _, err := os.Lstat(filepath.Join(e.state, "exe", "lc")); !os.IsNotExist(err) {
		t.Fatalf("exe link after remove: %v", err)
	}
}

// TestListenGoExample: examples/counter-server (sdk/server) takes the socket
// systemd passes under --listen and keeps answering across kill -9.
func TestListenGoExample(t *testing.T) {
	e := newEnv(t)
	bin := filepath.Join(t.TempDir(), "counter-server")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/counter-server").CombinedOutput(); err != nil {
		t.Fatalf("build counter-server: %v\n%s", err, out)
	}
	port := freeTCPPort(t)
	e.ok("add", bin, "--name", "cnt", "-s", "--listen", fmt.Sprint(port), "--", "-port", fmt.Sprint(port))
	if got := askPort(t, port, "x"); got != "[counter] #1: x" {
		t.Fatalf("reply %q", got)
	}
	killGone(t, mainPID(t, "cnt"))
	if got := askPort(t, port, "y"); got != "[counter] #1: y" {
		t.Fatalf("reply after kill -9: %q", got)
	}
	e.ok("upgrade", "cnt", bin, "--timeout", "20s")
	if got := askPort(t, port, "z"); got != "[counter] #1: z" {
		t.Fatalf("reply after upgrade: %q", got)
	}
}
