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

// noRefusal runs do while a client connects to port again and again, each
// time sending a line and reading the answer (want(reply) must hold), and
// fails the test if any connection is refused or goes unanswered: the
// zero-downtime promise of --listen. It returns the number of connections
// answered while do ran.
func noRefusal(t *testing.T, port int, want func(reply string) bool, do func()) int {
	t.Helper()
	stop := make(chan struct{})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- result{n, nil}
				return
			default:
			}
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout)
			if err != nil {
				done <- result{n, fmt.Errorf("connection %d: %w", i, err)}
				return
			}
			_ = conn.SetDeadline(time.Now().Add(waitTimeout))
			line := fmt.Sprintf("loop%d", i)
			_, err = fmt.Fprintf(conn, "%s\n", line)
			var reply string
			if err == nil {
				reply, err = bufio.NewReader(conn).ReadString('\n')
			}
			conn.Close()
			if err != nil || !want(strings.TrimSpace(reply)) {
				done <- result{n, fmt.Errorf("connection %d: reply %q, %v", i, reply, err)}
				return
			}
			n++
		}
	}()
	do()
	close(stop)
	r := <-done
	if r.err != nil {
		t.Fatalf("a client was refused or unanswered: %v", r.err)
	}
	return r.n
}

// TestListenLifecycle: a plain C program that serves fd 3 (sd_listen_fds)
// under add --listen. kill -9, restart, upgrade, a failed upgrade (switched
// back), a daemon restart, a daemon killed and a simulated reboot keep or
// restore the socket and every connection is answered (during restart and
// upgrade a client connects without pause and is never refused); stop and
// remove close the port; a port in use and a bad address register nothing.
func TestListenLifecycle(t *testing.T) {
	e := newEnv(t)
	bin := testenv.ListenEcho(t)
	dir := t.TempDir()
	v2 := script(t, dir, "v2", "exec "+bin+" B")
	broken := script(t, dir, "broken", "echo broken >&2; exit 1")
	port := freeTCPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)

	out := e.ok("add", bin, "--name", "lc", "-s", "--listen", listen, "--", "A")
	if !strings.HasPrefix(out, "lc: started (unit socketley-lc.service, pid ") {
		t.Fatalf("add -s --listen: %q", out)
	}
	if got := askLine(t, port, "one"); got != "A:one" {
		t.Fatalf("first request: %q", got)
	}
	// The service of a socket: the exe link runs, no start limit (it would
	// fail the socket), and Restart=no on the daemon's backoff (which then
	// restarts it) or the policy with systemd's own backoff (254).
	wantRestart := "no"
	if strings.Contains(e.log.String(), `msg="restart backoff: systemd's own`) {
		wantRestart = "on-failure"
	}
	link := filepath.Join(e.state, "exe", "lc")
	if got := unitProp(t, "lc", "Restart"); got != wantRestart {
		t.Fatalf("Restart=%s, want %s", got, wantRestart)
	}
	if got := unitProp(t, "lc", "StartLimitIntervalUSec"); got != "0" {
		t.Fatalf("StartLimitIntervalUSec=%s, want 0", got)
	}
	if got := unitProp(t, "lc", "ExecStart"); !strings.Contains(got, "path="+link+" ") {
		t.Fatalf("ExecStart=%s, want the exe link %s", got, link)
	}
	out, _, _ = e.run("ls", "-o", "json")
	var all, rts []wire.Runtime
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("ls -o json: %v: %s", err, out)
	}
	for _, r := range all {
		// Other packages' tests share this systemd manager (go test runs
		// packages in parallel): their units show here as orphans.
		if !r.Orphan {
			rts = append(rts, r)
		}
	}
	if len(rts) != 1 || strings.Join(rts[0].Listen, ",") != listen {
		t.Fatalf("ls -o json: listen %v: %s", rts, out)
	}
	if out := e.ok("ls"); !strings.Contains(out, listen+"*") {
		t.Fatalf("ls does not show the listen address in PORT:\n%s", out)
	}
	if out := e.ok("show", "lc"); !strings.Contains(out, "Listen:") || !strings.Contains(out, listen+" (held by systemd: socketley-lc.socket)") {
		t.Fatalf("show has no Listen line:\n%s", out)
	}
	tagged := func(tag string) func(string) bool {
		return func(r string) bool { return strings.HasPrefix(r, tag+":loop") }
	}
	either := func(r string) bool { return tagged("A")(r) || tagged("B")(r) }

	steps := []struct {
		name string
		do   func(t *testing.T)
		want string // the tag of the program that must answer
	}{
		{"kill -9", func(t *testing.T) { killGone(t, mainPID(t, "lc")) }, "A"},
		{"kill -9 again at once", func(t *testing.T) { killGone(t, mainPID(t, "lc")) }, "A"},
		{"restart", func(t *testing.T) {
			n := noRefusal(t, port, tagged("A"), func() { e.ok("restart", "lc") })
			t.Logf("%d connections answered during the restart, none refused", n)
		}, "A"},
		{"upgrade", func(t *testing.T) {
			n := noRefusal(t, port, either, func() {
				out := e.ok("upgrade", "lc", v2, "--timeout", "20s")
				if !strings.HasPrefix(out, "lc: upgraded to "+v2+", running (unit socketley-lc.service, pid ") {
					t.Errorf("upgrade: %q", out)
				}
			})
			t.Logf("%d connections answered during the upgrade, none refused", n)
		}, "B"},
		{"failed upgrade switches back", func(t *testing.T) {
			out, errOut, code := e.run("upgrade", "lc", broken, "--timeout", "5s")
			if code != 1 || !strings.Contains(errOut, "upgrade lc: "+broken+" did not come up: ") ||
				!strings.Contains(errOut, "switched back to "+v2+", running again") || !strings.Contains(errOut, "  broken\n") {
				t.Fatalf("upgrade to a broken binary: exit %d, %s%s; want 1, switched back, and its output", code, out, errOut)
			}
			if r := e.show("lc"); r.Path != v2 || r.Status != wire.StatusRunning {
				t.Fatalf("after the switch back: path %s, status %s", r.Path, r.Status)
			}
		}, "B"},
		{"daemon restart", func(t *testing.T) {
			e.stopDaemon(unix.SIGTERM)
			e.startDaemon()
		}, "B"},
		{"daemon killed: kill -9 of the program is served by the socket alone", func(t *testing.T) {
			e.stopDaemon(unix.SIGKILL)
			killGone(t, mainPID(t, "lc"))
			if got := askLine(t, port, "no daemon"); got != "B:no daemon" {
				t.Fatalf("without a daemon: %q", got)
			}
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
			if got := askLine(t, port, line); got != s.want+":"+line {
				t.Fatalf("after %s: %q, want %s:%s", s.name, got, s.want, line)
			}
		})
	}
	if r := e.show("lc"); r.Path != v2 {
		t.Fatalf("show after the upgrades: path %s, want %s", r.Path, v2)
	}

	t.Run("bad input registers nothing", func(t *testing.T) {
		for _, tc := range []struct{ name, listen, want string }{
			{"inuse", listen, "socketley: add: --listen " + listen + ": cannot listen there: bind: address already in use"},
			{"badaddr", "localhost:80", "the host must be an IP address"},
			{"badport", "70000", "the port must be"},
		} {
			out, errOut, code := e.run("add", bin, "--name", tc.name, "-s", "--listen", tc.listen)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("add --listen %s: exit %d, %s%s; want 1 and %q", tc.listen, code, out, errOut, tc.want)
			}
			if out := e.ok("ls"); strings.Contains(out, tc.name) {
				t.Fatalf("ls after a refused add lists %s:\n%s", tc.name, out)
			}
		}
	})

	e.ok("stop", "lc")
	if !refused(port) {
		t.Fatal("the port still answers after stop")
	}
	e.ok("start", "lc")
	if got := askLine(t, port, "started"); got != "B:started" {
		t.Fatalf("after start: %q", got)
	}
	e.ok("remove", "lc")
	if !refused(port) {
		t.Fatal("the port still answers after remove")
	}
	if _, err := os.Lstat(filepath.Join(e.state, "exe", "lc")); !os.IsNotExist(err) {
		t.Fatalf("exe link after remove: %v", err)
	}
	for _, u := range []string{"socketley-lc.socket", "socketley-lc.service"} {
		if out, _ := exec.Command("systemctl", "--user", "show", "-p", "LoadState", "--value", u).Output(); strings.TrimSpace(string(out)) != "not-found" {
			t.Fatalf("%s after remove: LoadState %s", u, out)
		}
	}
}

// TestListenGoExamples: the Go examples take the socket systemd passes under
// --listen (sdk/server's New, or server.Listen for echo-service, which
// serves with the net package), attach with their port, keep answering
// across kill -9 and an upgrade, and an upgrade to a program that serves
// but never attaches is switched back.
func TestListenGoExamples(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	nonAttaching := testenv.ListenEcho(t)
	for _, ex := range []struct {
		name  string
		send  string
		reply func(string) bool
	}{
		{"echo-service", "x", func(r string) bool { return r == "x" }},
		{"counter-server", "x", func(r string) bool { return r == "[counter] #1: x" }},
		{"kv-server", "GET k", func(r string) bool { return r == "NIL" }},
		// chat-server greets first: the greeting is the reply.
		{"chat-server", "", func(r string) bool { return strings.HasPrefix(r, "* welcome ") }},
	} {
		t.Run(ex.name, func(t *testing.T) {
			bin := filepath.Join(dir, ex.name)
			if out, err := exec.Command("go", "build", "-o", bin, "../../examples/"+ex.name).CombinedOutput(); err != nil {
				t.Fatalf("build %s: %v\n%s", ex.name, err, out)
			}
			port := freeTCPPort(t)
			name := strings.TrimSuffix(ex.name, "-server")
			e.ok("add", bin, "--name", name, "-s", "--attach", "--wait", "--listen", fmt.Sprint(port), "--", "-port", fmt.Sprint(port))
			ask := func(when string) {
				t.Helper()
				if got := askLine(t, port, ex.send); !ex.reply(got) {
					t.Fatalf("%s: reply %q", when, got)
				}
			}
			ask("first")
			if r := e.show(name); r.Type != "server" || r.Port != port {
				t.Fatalf("show: type %q port %d, want server on %d", r.Type, r.Port, port)
			}
			killGone(t, mainPID(t, name))
			ask("after kill -9")
			e.ok("upgrade", name, bin, "--timeout", "20s")
			ask("after upgrade")
			_, errOut, code := e.run("upgrade", name, nonAttaching, "--timeout", "3s")
			if code != 1 || !strings.Contains(errOut, "still unattached after 3s") || !strings.Contains(errOut, "switched back to "+bin+", running again") {
				t.Fatalf("upgrade to a program that never attaches: exit %d, %s", code, errOut)
			}
			ask("after the switch back")
			e.ok("remove", name)
		})
	}
}

// askLine connects to 127.0.0.1:port, sends line (nothing when empty) and
// returns the first reply line. A connection made while the runtime
// restarts waits in the socket systemd holds: the reply is the event the
// test waits for.
func askLine(t *testing.T, port int, line string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout)
	if err != nil {
		t.Fatalf("connect to port %d: %v", port, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if line != "" {
		if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
			t.Fatalf("write to port %d: %v", port, err)
		}
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reply on port %d to %q: %q, %v", port, line, reply, err)
	}
	return strings.TrimSpace(reply)
}
