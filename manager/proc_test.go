package manager

import (
	"context"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// awaitResult runs awaitExit for cmd's process in the background.
func awaitResult(ctx context.Context, pid int, start uint64) chan bool {
	done := make(chan bool, 1)
	go func() { done <- awaitExit(ctx, pid, start) }()
	return done
}

func recvBool(t *testing.T, what string, ch chan bool) bool {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("%s: awaitExit did not return", what)
	}
	return false
}

// TestAwaitExit: awaitExit returns when the process exits (the pidfd
// becomes readable; with the fallback, /proc says so), returns false when
// its context ends first, and at once for a process that is already gone or
// whose pid now belongs to another process.
func TestAwaitExit(t *testing.T) {
	for _, path := range []string{"pidfd", "fallback"} {
		t.Run(path, func(t *testing.T) {
			if path == "fallback" {
				old := pidfdOpen
				pidfdOpen = func(int, int) (int, error) { return -1, unix.ENOSYS }
				t.Cleanup(func() { pidfdOpen = old })
			}
			c := child(t)
			pid := c.Process.Pid
			start, err := procStartTime(pid)
			if err != nil {
				t.Fatal(err)
			}

			// The context ends first: not gone.
			ctx, cancel := context.WithCancel(t.Context())
			done := awaitResult(ctx, pid, start)
			cancel()
			if recvBool(t, "context canceled", done) {
				t.Fatal("awaitExit says a live process is gone")
			}

			// Another process with this pid (another start time): gone.
			if !awaitExit(t.Context(), pid, start+1) {
				t.Fatal("awaitExit waits for a process whose pid was reused")
			}

			// The process exits while awaited (it is reaped by exitSignal
			// only after awaitExit saw it exit, as a zombie).
			done = awaitResult(t.Context(), pid, start)
			if err := c.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if !recvBool(t, "process exited", done) {
				t.Fatal("awaitExit returned false for a process that exited")
			}
			_ = exitSignal(t, c)

			// Already gone (and reaped).
			if !awaitExit(t.Context(), pid, start) {
				t.Fatal("awaitExit waits for a process that is gone")
			}
		})
	}
}

// TestAwaitPidfd: the wait itself is on the pidfd, through the runtime's
// poller: it ends when the process exits, and when the context ends.
func TestAwaitPidfd(t *testing.T) {
	c := child(t)
	open := func() int {
		fd, err := unix.PidfdOpen(c.Process.Pid, 0)
		if err != nil {
			t.Fatalf("pidfd_open (Linux ≥ 5.3; the fallback is tested by TestAwaitExit/fallback): %v", err)
		}
		return fd
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if gone, err := awaitPidfd(ctx, open()); gone || err != nil {
		t.Fatalf("canceled: gone %v, err %v; want false, nil", gone, err)
	}
	type res struct {
		gone bool
		err  error
	}
	done := make(chan res, 1)
	fd := open()
	go func() { g, err := awaitPidfd(t.Context(), fd); done <- res{g, err} }()
	_ = c.Process.Kill()
	select {
	case r := <-done:
		if !r.gone || r.err != nil {
			t.Fatalf("exited: gone %v, err %v; want true, nil", r.gone, r.err)
		}
	case <-time.After(testWait):
		t.Fatal("awaitPidfd did not see the exit")
	}
}
