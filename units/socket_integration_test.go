//go:build integration

package units_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
	"golang.org/x/sys/unix"
)

// freePort returns a port on 127.0.0.1 that nobody listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ask connects to addr, sends line and returns the reply (the listen-echo
// program answers "TAG:line" and closes). A connection made while the
// service is down waits in the socket's queue, so the reply is the event.
func ask(t *testing.T, addr, line string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, hangBound)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hangBound))
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		t.Fatalf("write %s: %v", addr, err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reply from %s to %q: %q, %v", addr, line, reply, err)
	}
	return strings.TrimSpace(reply)
}

// newSocketName is newName whose cleanup also stops the socket (first: a
// listening socket would start the service again).
func newSocketName(t *testing.T, c *units.Conn) string {
	t.Helper()
	name := newName(t, c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangBound)
		defer cancel()
		if err := c.StopSocket(ctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// TestSocketListen follows a runtime with a listen socket through its life:
// the socket starts the service on the first connection, a kill -9 and a
// stop of the service keep the socket (connections wait and are answered),
// and stopping the socket closes the port.
func TestSocketListen(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t)
	bin := testenv.ListenEcho(t)
	name := newSocketName(t, c)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	spec := units.Spec{Name: name, Path: bin, Args: []string{"A"}, Restart: wire.RestartNo,
		StartLimitBurst: 1, StartLimitInterval: time.Minute}

	if err := c.StartSocket(ctx, spec, []string{addr}); err != nil {
		t.Fatalf("StartSocket: %v", err)
	}
	if ok, err := c.SocketActive(ctx, name); err != nil || !ok {
		t.Fatalf("SocketActive = %t, %v; want true", ok, err)
	}
	// Again: an active socket is left alone.
	if err := c.StartSocket(ctx, spec, []string{addr}); err != nil {
		t.Fatalf("StartSocket of an active socket: %v", err)
	}
	// The service is loaded, not started: the first connection starts it.
	if got := ask(t, addr, "first"); got != "A:first" {
		t.Fatalf("first connection: %q, want A:first", got)
	}
	if err := c.StartLoaded(ctx, name); err != nil {
		t.Fatalf("StartLoaded of a running service: %v", err)
	}
	st, err := c.Status(ctx, name)
	if err != nil || st.MainPID <= 0 {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	// kill -9: the service fails (Restart=no); the next connection waits
	// in the socket's queue and starts it again, however often.
	for i := range 7 {
		killAndWait(t, st.MainPID)
		line := fmt.Sprintf("after-kill-%d", i)
		if got := ask(t, addr, line); got != "A:"+line {
			t.Fatalf("after kill -9 #%d: %q", i+1, got)
		}
		if st, err = c.Status(ctx, name); err != nil || st.MainPID <= 0 {
			t.Fatalf("Status after kill #%d: %+v, %v", i+1, st, err)
		}
	}
	// Stop the service: the socket keeps listening and keeps it loaded.
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := ask(t, addr, "after-stop"); got != "A:after-stop" {
		t.Fatalf("after stop: %q", got)
	}
	if err := c.StopSocket(ctx, name); err != nil {
		t.Fatalf("StopSocket: %v", err)
	}
	if err := c.Stop(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
		t.Fatalf("Stop after StopSocket: %v", err)
	}
	if ok, err := c.SocketActive(ctx, name); err != nil || ok {
		t.Fatalf("SocketActive after StopSocket = %t, %v; want false", ok, err)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after StopSocket", addr)
	}
	// Both again, as after a reboot.
	if err := c.StartSocket(ctx, spec, []string{addr}); err != nil {
		t.Fatalf("StartSocket after stop: %v", err)
	}
	if err := c.StartLoaded(ctx, name); err != nil {
		t.Fatalf("StartLoaded: %v", err)
	}
	if got := ask(t, addr, "again"); got != "A:again" {
		t.Fatalf("after a new start: %q", got)
	}
}

// killAndWait sends SIGKILL to pid and returns once the process is gone
// (its pidfd polls readable): a connection made before that could still be
// accepted by the dying process and reset.
func killAndWait(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(hangBound/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("waiting for pid %d to exit: %d, %v", pid, n, err)
		}
		return
	}
}

func TestSocketListenErrors(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t)
	bin := testenv.ListenEcho(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name   string
		listen []string
		check  func(error) bool
		want   string
	}{
		{"port in use", []string{busy.Addr().String()}, func(err error) bool {
			var je *units.JobError
			return errors.As(err, &je) && je.Result == units.JobFailed
		}, "a *JobError with result failed"},
		{"bad address", []string{"localhost:80"}, func(err error) bool { return errors.Is(err, units.ErrInvalid) }, "ErrInvalid"},
		{"no address", nil, func(err error) bool { return errors.Is(err, units.ErrInvalid) }, "ErrInvalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := newSocketName(t, c)
			err := c.StartSocket(ctx, units.Spec{Name: name, Path: bin}, tc.listen)
			if !tc.check(err) {
				t.Fatalf("StartSocket: %v; want %s", err, tc.want)
			}
			if ok, serr := c.SocketActive(ctx, name); serr != nil || ok {
				t.Fatalf("SocketActive after a failed start = %t, %v", ok, serr)
			}
		})
	}
}

// TestSocketServiceLeftovers: StartSocket over a service of the same name
// that is already loaded. A running one is refused (systemd will not start
// a socket whose service is active) with ErrUnitExists and left running; a
// failed one (a failed unit stays loaded) is cleared and created again from
// the spec given, so the socket's service has the new properties.
func TestSocketServiceLeftovers(t *testing.T) {
	c := dial(t)
	ctx := testCtx(t)
	bin := testenv.ListenEcho(t)
	name := newSocketName(t, c)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	// Running without its socket.
	if err := c.Start(ctx, units.Spec{Name: name, Path: "/bin/sleep", Args: []string{"1000"}}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	spec := units.Spec{Name: name, Path: bin, Args: []string{"B"}, Restart: wire.RestartNo, NoStartLimit: true}
	if err := c.StartSocket(ctx, spec, []string{addr}); !errors.Is(err, units.ErrUnitExists) {
		t.Fatalf("StartSocket over a running service: %v; want ErrUnitExists", err)
	}
	if st, err := c.Status(ctx, name); err != nil || st.ActiveState != units.ActiveActive {
		t.Fatalf("the running service after the refusal: %+v, %v", st, err)
	}
	if err := c.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// Failed: listen-echo without a socket exits 3 at once.
	if err := c.Start(ctx, units.Spec{Name: name, Path: bin, Args: []string{"A"}}); err != nil {
		var je *units.JobError
		if !errors.As(err, &je) {
			t.Fatalf("Start: %v", err)
		}
	}
	deadline := time.Now().Add(hangBound)
	for {
		st, err := c.Status(ctx, name)
		if err == nil && st.ActiveState == units.ActiveFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service never failed: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.StartSocket(ctx, spec, []string{addr}); err != nil {
		t.Fatalf("StartSocket over a failed service: %v", err)
	}
	if got := ask(t, addr, "new"); got != "B:new" {
		t.Fatalf("reply %q: want B:new (the service made again from the new spec)", got)
	}
}
