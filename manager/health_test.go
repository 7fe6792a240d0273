package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

func TestClassifyReasons(t *testing.T) {
	now := time.Now()
	started := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning}
	attaching := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, ExpectAttach: true, AttachTimeout: wire.Duration(3 * time.Second)}
	unmanaged := &Entry{Name: "x", PID: 42, Port: 80, Type: "server"}
	restarting := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Restart: "on-failure"}
	backingOff := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Restart: "on-failure",
		LastExit: "exit code 3", Backoff: &Backoff{Failures: 4, NextAt: now.Add(1500 * time.Millisecond)}}
	gaveUp := &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Restart: "always", MaxRestarts: 2,
		Backoff: &Backoff{Failures: 3, GaveUp: true}}
	at := func(ago time.Duration) *units.Status {
		return &units.Status{LoadState: "loaded", ActiveState: "active", MainPID: 7, ExecMainStart: now.Add(-ago)}
	}
	tests := []struct {
		name   string
		e      *Entry
		st     *units.Status
		o      observed
		want   wire.Status
		reason string
	}{
		{"attached process alive", unmanaged, nil, observed{}, wire.StatusRunning, ""},
		{"attached process exited", unmanaged, nil, observed{exited: true}, wire.StatusStopped, "attached process 42 exited"},
		{"attached process, port down", unmanaged, nil, observed{portDown: true}, wire.StatusUnhealthy, "port 80 refuses"},
		{"failed: exit code", started, &units.Status{LoadState: "loaded", ActiveState: "failed", Result: "exit-code", ExecMainCode: units.CodeExited, ExecMainStatus: 3}, observed{}, wire.StatusFailed, "exit code 3"},
		{"failed: signal", started, &units.Status{LoadState: "loaded", ActiveState: "failed", Result: "signal", ExecMainCode: units.CodeKilled, ExecMainStatus: 9}, observed{}, wire.StatusFailed, "signal KILL"},
		{"crash-loop names the exit", started, &units.Status{LoadState: "loaded", ActiveState: "failed", Result: "start-limit-hit", ExecMainCode: units.CodeExited, ExecMainStatus: 1}, observed{}, wire.StatusCrashLoop, "start limit hit: it keeps exiting; last exit: exit code 1"},
		{"restarting names the exit", started, &units.Status{LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart", Restarting: true, ExecMainCode: units.CodeExited, ExecMainStatus: 2}, observed{}, wire.StatusRestarting, "exit code 2"},
		{"unit gone while desired running", started, nil, observed{}, wire.StatusStopped, "unit is gone"},
		{"listen service exited cleanly", &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredRunning, Listen: []string{"7070"}},
			&units.Status{LoadState: "loaded", ActiveState: "inactive", ExecMainCode: units.CodeExited}, observed{}, wire.StatusStopped,
			"exited; socketley-x.socket starts it again at the next connection; last exit: exit code 0"},
		{"never attaches: running", started, at(time.Hour), observed{}, wire.StatusRunning, ""},
		{"attach timeout not reached", attaching, at(2 * time.Second), observed{}, wire.StatusStarting, "waiting for pid 7"},
		{"attach timeout passed", attaching, at(4 * time.Second), observed{}, wire.StatusUnhealthy, "pid 7 has not attached after 3s"},
		{"activating, no timestamps yet", attaching, &units.Status{LoadState: "loaded", ActiveState: "activating"}, observed{}, wire.StatusStarting, ""},
		{"failed with a restart policy: backoff pending", restarting, &units.Status{LoadState: "loaded", ActiveState: "failed", Result: "signal", ExecMainCode: units.CodeKilled, ExecMainStatus: 9}, observed{}, wire.StatusCrashLoop, "restart pending; last exit: signal KILL"},
		{"backoff: next start due", backingOff, nil, observed{}, wire.StatusCrashLoop, "4 failed runs in a row; next start in 1.5s; last exit: exit code 3"},
		{"backoff: unit failed meanwhile", backingOff, &units.Status{LoadState: "loaded", ActiveState: "failed", ExecMainCode: units.CodeExited, ExecMainStatus: 1}, observed{}, wire.StatusCrashLoop, "next start in 1.5s; last exit: exit code 1"},
		{"backoff: up again", backingOff, at(time.Second), observed{}, wire.StatusRunning, ""},
		{"gave up", gaveUp, &units.Status{LoadState: "loaded", ActiveState: "failed", ExecMainCode: units.CodeExited, ExecMainStatus: 3}, observed{}, wire.StatusFailed, "gave up after 3 failed runs in a row (--max-restarts 2); fix it, then socketley start x; last exit: exit code 3"},
		{"gave up, desired stopped", &Entry{Name: "x", Managed: true, Started: true, Desired: DesiredStopped, Backoff: &Backoff{GaveUp: true}}, nil, observed{}, wire.StatusStopped, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := classify(tt.e, tt.st, &tt.o, now)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Fatalf("got %s (%q), want %s (%q)", got, reason, tt.want, tt.reason)
			}
		})
	}
}

// closedPort returns a loopback TCP port nothing listens on, and keeps it
// so until the test ends: a port that was merely closed could be taken by
// any process listening meanwhile (other tests run at the same time). It is
// held by sockets bound to 127.0.0.1 and [::1] (the addresses a probe
// dials) that never listen and lack SO_REUSEADDR, so no other socket can
// bind it, on those addresses or a wildcard.
func closedPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		fd4, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd4, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			_ = unix.Close(fd4)
			t.Fatal(err)
		}
		sa, err := unix.Getsockname(fd4)
		if err != nil {
			_ = unix.Close(fd4)
			t.Fatal(err)
		}
		port := sa.(*unix.SockaddrInet4).Port
		fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			_ = unix.Close(fd4)
			t.Fatal(err)
		}
		_ = unix.SetsockoptInt(fd6, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		err = unix.Bind(fd6, &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}})
		if errors.Is(err, unix.EADDRINUSE) {
			// Something holds [::1]:port: try another port.
			_, _ = unix.Close(fd4), unix.Close(fd6)
			continue
		}
		if err != nil {
			// No IPv6 loopback: nothing can listen on [::1] either.
			_ = unix.Close(fd6)
			fd6 = -1
		}
		t.Cleanup(func() {
			_ = unix.Close(fd4)
			if fd6 >= 0 {
				_ = unix.Close(fd6)
			}
		})
		return port
	}
	t.Fatal("no loopback port free on both 127.0.0.1 and [::1] in 100 tries")
	return 0
}

// listenPort listens on loopback until the test ends and returns the port.
func listenPort(t testing.TB, network, addr string) int {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		testenv.Skipf(t, "listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestProbePorts(t *testing.T) {
	v4 := listenPort(t, "tcp4", "127.0.0.1:0")
	any4 := listenPort(t, "tcp4", "0.0.0.0:0")
	closed := closedPort(t)
	ls, err := loopbackListeners()
	if err != nil {
		t.Logf("sock_diag unavailable (%v): probes dial", err)
	} else if !ls[uint16(v4)] || !ls[uint16(any4)] || ls[uint16(closed)] {
		t.Fatalf("sock_diag listeners: %d=%v %d=%v closed %d=%v", v4, ls[uint16(v4)], any4, ls[uint16(any4)], closed, ls[uint16(closed)])
	}
	es := []*Entry{{Name: "v4", Port: v4}, {Name: "any", Port: any4}, {Name: "closed", Port: closed}}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		t.Cleanup(func() { _ = ln.Close() })
		es = append(es, &Entry{Name: "v6", Port: ln.Addr().(*net.TCPAddr).Port})
	}
	down := probePorts(t.Context(), es)
	if len(down) != 1 || !down["closed"] {
		t.Fatalf("down = %v, want only closed", down)
	}
}

// attachedManaged adds a started managed runtime attached by its main pid on port.
func attachedManaged(t *testing.T, m *Manager, f *fakeSystemd, name string, port int, fails *int) int {
	t.Helper()
	// The attach timeout is out of reach, so a runtime restarted by the
	// health check stays "starting" however slowly the test runs.
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: name, Path: exe(t, t.TempDir(), name), Start: true, HealthFails: fails,
		AttachTimeout: wire.Duration(time.Hour)}, false, 0); err != nil {
		t.Fatal(err)
	}
	pid := f.Snapshot()[name].MainPID
	if _, err := m.attach(t.Context(), Caller{PID: pid}, wire.AttachSpec{Type: "server", Name: name, Port: port, PID: pid, Managed: true}); err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestTickRestartsUnhealthy(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	two, zero := 2, 0
	up := listenPort(t, "tcp4", "127.0.0.1:0")
	attachedManaged(t, m, f, "ok", up, nil)
	pid := attachedManaged(t, m, f, "bad", closedPort(t), &two)
	attachedManaged(t, m, f, "never", closedPort(t), &zero)

	m.tick(ctx)
	if v := m.view("bad"); v.Status != wire.StatusUnhealthy || !strings.Contains(v.Reason, "refuses connections") {
		t.Fatalf("after one tick: %s (%s), want unhealthy", v.Status, v.Reason)
	}
	if v := m.view("ok"); v.Status != wire.StatusRunning {
		t.Fatalf("listening runtime: %s (%s)", v.Status, v.Reason)
	}
	m.tick(ctx)
	m.heals.Wait()
	v := m.view("bad")
	if v.PID == pid || v.PID == 0 || v.Restarts != 1 || v.HealthRestarts != 1 {
		t.Fatalf("after %d unhealthy ticks: pid %d (was %d), restarts %d (health %d); want one health restart", 2, v.PID, pid, v.Restarts, v.HealthRestarts)
	}
	if v.Status != wire.StatusStarting {
		t.Fatalf("restarted runtime: %s, want starting until it re-attaches", v.Status)
	}
	calls := strings.Join(f.calls, ",")
	if !strings.Contains(calls, "stop bad,start bad") || strings.Contains(calls, "stop never") || strings.Contains(calls, "stop ok") {
		t.Fatalf("systemd calls: %s", calls)
	}
	for range 5 {
		m.tick(ctx)
	}
	m.heals.Wait()
	if v := m.view("never"); v.Status != wire.StatusUnhealthy || v.Restarts != 0 || v.HealthRestarts != 0 {
		t.Fatalf("health-fails 0: %s restarts %d, want unhealthy and never restarted", v.Status, v.Restarts)
	}
}

func TestTickRestartsOverdueAttach(t *testing.T) {
	m, f := newTestManager(t)
	one := 1
	// An hour: the first tick is within it however slowly the test runs;
	// then the process is made to have started two hours ago.
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "late", Path: exe(t, t.TempDir(), "late"), Start: true,
		ExpectAttach: true, AttachTimeout: wire.Duration(time.Hour), HealthFails: &one}, false, 0); err != nil {
		t.Fatal(err)
	}
	m.tick(t.Context())
	if v := m.view("late"); v.Status != wire.StatusStarting {
		t.Fatalf("within the attach timeout: %s", v.Status)
	}
	st := f.Snapshot()["late"]
	st.ExecMainStart = time.Now().Add(-2 * time.Hour)
	f.set(st)
	if v := m.view("late"); v.Status != wire.StatusUnhealthy || !strings.Contains(v.Reason, "has not attached after 1h0m0s") {
		t.Fatalf("attach overdue: %s (%s)", v.Status, v.Reason)
	}
	m.tick(t.Context())
	m.heals.Wait()
	if v := m.view("late"); v.Restarts != 1 || v.PID == st.MainPID || v.Status != wire.StatusStarting {
		t.Fatalf("after the restart: %+v", v)
	}
}

func TestWaitRunning(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	bin := exe(t, t.TempDir(), "w")

	// The wait returns only once the process ran for settleTime: a bound
	// from below, which no delay can break.
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "plain", Path: bin, Start: true}, true, testWait); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(f.Snapshot()["plain"].ExecMainStart); d < settleTime {
		t.Fatalf("add --wait of a runtime that does not attach returned %s after its process started, want ≥ %s", d, settleTime)
	}

	// The attach timeout is out of reach: the wait ends by its own timeout,
	// with the runtime still starting.
	_, err := m.add(ctx, me(), wire.AddSpec{Name: "mute", Path: bin, Start: true, ExpectAttach: true,
		AttachTimeout: wire.Duration(time.Hour)}, true, 300*time.Millisecond)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "still unattached after 300ms") || replyCode(err) != wire.CodeInvalid {
		t.Fatalf("wait for an attach that never comes: %v", err)
	}

	// The unit fails as soon as it started (systemd records exit code 7):
	// the wait fails and names the exit code.
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "crash", Path: bin}, false, 0); err != nil {
		t.Fatal(err)
	}
	f.onStart = func(st units.Status) {
		st.ActiveState, st.SubState, st.MainPID = "failed", "failed", 0
		st.Result, st.ExecMainCode, st.ExecMainStatus = "exit-code", units.CodeExited, 7
		f.set(st)
	}
	_, err = m.start(ctx, me(), []string{"crash"}, true, testWait)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exit code 7") {
		t.Fatalf("start --wait of a crashing runtime: %v", err)
	}
}

// serveTest serves m's control socket until the test ends.
func serveTest(t *testing.T, m *Manager) {
	t.Helper()
	sock, err := m.listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.serve(ctx, sock.ln); close(done) }()
	t.Cleanup(func() { cancel(); sock.close(); <-done })
}

// TestSocketReadDeadline: a client that sends nothing is dropped.
func TestSocketReadDeadline(t *testing.T) {
	old := readDeadline
	t.Cleanup(func() { readDeadline = old }) // runs after the server stopped
	readDeadline = 200 * time.Millisecond
	m, _ := newTestManager(t)
	serveTest(t, m)
	c, err := net.Dial("unix", m.cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(testWait))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection: read %d %v, want EOF from the daemon", n, err)
	}
}

// TestSocketLimits serves the real control socket with a fake systemd and
// sends oversize and malformed input.
func TestSocketLimits(t *testing.T) {
	// The idle connections held below must not be dropped by the read
	// deadline, however long opening all of them takes.
	old := readDeadline
	t.Cleanup(func() { readDeadline = old }) // runs after the servers stopped
	readDeadline = 10 * testWait
	m, _ := newTestManager(t)
	serveTest(t, m)
	if fi, err := os.Stat(m.cfg.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("user-mode socket mode: %v %v, want 0600", fi.Mode().Perm(), err)
	}

	send := func(line string) (byte, string) {
		t.Helper()
		c, err := net.Dial("unix", m.cfg.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testWait))
		if _, err := c.Write([]byte(line)); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
		b, err := readAll(c)
		if err != nil {
			t.Fatalf("read reply: %v", err)
		}
		if len(b) < 2 || b[len(b)-1] != 0 {
			t.Fatalf("reply %q is not a frame", b)
		}
		return b[0], string(b[1 : len(b)-1])
	}
	tests := []struct {
		name string
		line string
		code byte
		msg  string
	}{
		{"line too long", strings.Repeat("a", wire.MaxLine+10) + "\n", wire.CodeInvalid, "longer than"},
		{"too many words", "stop" + strings.Repeat(" x", wire.MaxTokens+1) + "\n", wire.CodeInvalid, "too many words"},
		{"malformed JSON", "{\"cmd\":\n", wire.CodeInvalid, "malformed JSON"},
		{"unknown JSON field", "{\"cmd\":\"ls\",\"evil\":1}\n", wire.CodeInvalid, "unknown field"},
		{"unknown command", "frobnicate\n", wire.CodeInvalid, "unknown command"},
		{"binary junk", "\x00\x01\xff\xfe attach\n", wire.CodeInvalid, "unknown command"},
		{"attach without pid", "attach server x 80\n", wire.CodeInvalid, "--pid is required"},
		{"crlf", "ls\r\n", wire.CodeOK, "NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := send(tt.line)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Fatalf("got %d %q, want %d mentioning %q", code, msg, tt.code, tt.msg)
			}
		})
	}

	// More than maxConns connections at once: the extra one is turned away
	// with a message, the others still work. A daemon of its own: the
	// connections above free their slots only when the daemon has seen them
	// close, which nothing announces.
	m2, _ := newTestManager(t)
	serveTest(t, m2)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := range maxConns {
		c, err := net.Dial("unix", m2.cfg.Socket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// A round trip proves the daemon accepted it and holds its slot.
		_ = c.SetDeadline(time.Now().Add(testWait))
		if _, err := c.Write([]byte("version\n")); err != nil {
			t.Fatal(err)
		}
		if b, err := readFrame(c); err != nil || len(b) == 0 || b[0] != wire.CodeOK {
			t.Fatalf("connection %d: %q %v, want a version reply", i+1, b, err)
		}
	}
	c, err := net.Dial("unix", m2.cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(testWait))
	_, _ = c.Write([]byte("ls\n"))
	if b, err := readFrame(c); err != nil || len(b) < 2 || b[0] != wire.CodeInvalid || !strings.Contains(string(b), "too many connections") {
		t.Fatalf("connection %d: %q %v, want a refusal naming the reason", maxConns+1, b, err)
	}
	_ = c.Close()
	// Freeing a slot: the daemon sees the close asynchronously and nothing
	// announces it, so poll (each refused try proves it is not free yet).
	_ = conns[0].Close()
	conns = conns[1:]
	eventually(t, "a slot to free up", func() bool {
		code, _ := sendQuiet(m2.cfg.Socket, "ls\n")
		return code == wire.CodeOK
	})
}

func sendQuiet(sock, line string) (byte, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testWait))
	if _, err := c.Write([]byte(line)); err != nil {
		return 0, err
	}
	b, err := readFrame(c)
	if err != nil || len(b) == 0 {
		return 0, fmt.Errorf("no reply: %w", err)
	}
	return b[0], nil
}

// readFrame reads one reply frame (up to and including its NUL).
func readFrame(c net.Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if i := strings.IndexByte(string(out[min(1, len(out)):]), 0); i >= 0 {
			return out[:i+2], nil
		}
		if err != nil {
			return out, err
		}
	}
}

// readAll reads until the daemon closes or a frame is complete.
func readAll(c net.Conn) ([]byte, error) { return readFrame(c) }

// FuzzDispatch feeds arbitrary request lines, in both forms, to a daemon
// with a fake systemd: no panic, and every reply code is 0, 1 or 2.
func FuzzDispatch(f *testing.F) {
	for _, s := range []string{
		"attach server x 1 --pid 2 --managed", "ls", "ps", "stats", "stop a*", "remove x", "show nope",
		`{"cmd":"attach","attach":{"type":"server","name":"x","port":80,"pid":1}}`,
		`{"cmd":"add","add":{"name":"x","path":"/bin/sh"}}`, `{"cmd":"start","names":["*"],"wait":true,"timeout":"1ms"}`,
		`{"cmd":`, "{}", "add /bin/sh --name y", "start y", "remove *",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	fk := newFake()
	m, err := New(Config{Mode: paths.User, Socket: filepath.Join(dir, "s.sock"), StateDir: dir,
		Dial: func(context.Context) (Systemd, error) { return fk, nil }})
	if err != nil {
		f.Fatal(err)
	}
	m.reg = loadForTest(f, m.store)
	m.sd, m.watch = fk, fk
	// Not root, and a pid that is no process: nothing can be attached or signalled.
	caller := Caller{UID: 4242, GID: 4242, PID: 1<<22 + 7}
	f.Fuzz(func(t *testing.T, line string) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		code, payload := m.dispatch(ctx, caller, line)
		if code > wire.CodeFatal {
			t.Fatalf("dispatch(%q) code %d", line, code)
		}
		if code != wire.CodeOK && len(payload) == 0 {
			t.Fatalf("dispatch(%q) failed with code %d and no message", line, code)
		}
	})
}

// TestTickDecidesWhileForgetting: a tick that forgets an exited attached
// process (a registry update, which copies every entry) still decides the
// health of the managed runtimes in the same tick.
func TestTickDecidesWhileForgetting(t *testing.T) {
	m, f := newTestManager(t)
	one := 1
	pid := attachedManaged(t, m, f, "bad", closedPort(t), &one)
	c := child(t)
	if _, err := m.attach(t.Context(), me(), attachSpec("gone", c.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	_ = c.Process.Kill()
	_ = exitSignal(t, c)
	m.tick(t.Context())
	m.heals.Wait()
	if _, ok := m.entry("gone"); ok {
		t.Fatal("exited attached process not forgotten")
	}
	if v := m.view("bad"); v.Restarts != 1 || v.PID == pid {
		t.Fatalf("unhealthy runtime not restarted in the same tick: %+v", v)
	}
}

// lagWatch hides one unit from the snapshot, like a view that lags systemd.
type lagWatch struct {
	*fakeSystemd
	hide atomic.Bool
	name string
}

func (w *lagWatch) Snapshot() map[string]units.Status {
	s := w.fakeSystemd.Snapshot()
	if w.hide.Load() {
		delete(s, w.name)
	}
	return s
}

// TestWaitTrustsSystemdOverALaggingView: a wait does not fail because the
// signal-fed view briefly lacks the unit; systemd is asked before failing.
// The view lags until the wait asks systemd (then it catches up), so the
// test passes only through that question, however the run is timed.
func TestWaitTrustsSystemdOverALaggingView(t *testing.T) {
	m, f := newTestManager(t)
	ctx := t.Context()
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "later", Path: exe(t, t.TempDir(), "later")}, false, 0); err != nil {
		t.Fatal(err)
	}
	w := &lagWatch{fakeSystemd: f, name: "later"}
	m.watch = w
	w.hide.Store(true)
	var asked atomic.Bool
	f.onStatus = func(name string) {
		if name == "later" && w.hide.Load() {
			asked.Store(true)
			w.hide.Store(false)
		}
	}
	if _, err := m.start(ctx, me(), []string{"later"}, true, testWait); err != nil {
		t.Fatalf("start --wait with a lagging view: %v", err)
	}
	if !asked.Load() {
		t.Fatal("the wait never asked systemd while the view lacked the unit")
	}
}

func TestClassifyStartErr(t *testing.T) {
	exited := &units.JobError{Unit: "socketley-x.service", Job: "start", Result: "failed",
		Status: units.Status{Result: "exit-code", ExecMainCode: units.CodeExited, ExecMainStatus: 3}}
	err := fmt.Errorf("add x: %w", classifyStartErr(exited))
	var je *units.JobError
	if !errors.Is(err, ErrFailed) || replyCode(err) != wire.CodeInvalid || !errors.As(err, &je) || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("program exited during start: %v (code %d)", err, replyCode(err))
	}
	other := &units.JobError{Unit: "socketley-x.service", Job: "start", Result: "failed"}
	if err := classifyStartErr(other); errors.Is(err, ErrFailed) || replyCode(err) != wire.CodeFatal {
		t.Fatalf("systemd failure: %v (code %d), want code 2", err, replyCode(err))
	}
}

// TestWaitNeedsAMainProcess: a unit still activating (no main process, no
// start time) is not "running for the settle time" yet.
func TestWaitNeedsAMainProcess(t *testing.T) {
	m, f := newTestManager(t)
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "x", Path: exe(t, t.TempDir(), "x"), Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	st := f.Snapshot()["x"]
	st.ActiveState, st.SubState, st.MainPID, st.ExecMainStart, st.ActiveEnter = "activating", "start", 0, time.Time{}, time.Time{}
	f.set(st)
	// It stays activating: the wait can only end by its timeout (twice the
	// settle time, so counting the settle time from the wait's begin would
	// be caught too).
	if err := m.waitRunning(t.Context(), "x", 2*settleTime); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "not running after") {
		t.Fatalf("wait on a unit that stays activating: %v, want a timeout", err)
	}
	// Once it has a main process, the wait returns after that process has
	// run for the settle time (a bound from below, which no delay breaks).
	st.ActiveState, st.SubState, st.MainPID, st.ExecMainStart, st.ActiveEnter = "active", "running", 5555, time.Now(), time.Now()
	f.set(st)
	if err := m.waitRunning(t.Context(), "x", testWait); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(st.ExecMainStart); d < settleTime {
		t.Fatalf("wait returned %s after the process started, before it had run for %s", d, settleTime)
	}
}
