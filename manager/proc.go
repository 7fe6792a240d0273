package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/proc"
)

// procStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/PID/stat). Together with the pid it identifies one
// process: a reused pid has a different start time.
func procStartTime(pid int) (uint64, error) {
	st, err := proc.ReadStat(pid)
	return st.StartTime, err
}

// sameProcess reports whether pid is still the live process that had
// startTime. A zombie (exited, not yet reaped by its parent) is not alive.
func sameProcess(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := proc.ReadStat(pid)
	return err == nil && st.StartTime == startTime && st.Alive()
}

// pidfdOpen is unix.PidfdOpen; tests replace it to take the fallback of
// awaitExit.
var pidfdOpen = unix.PidfdOpen

// exitPollInterval is how often awaitExit looks at /proc where it cannot wait
// on a pidfd.
const exitPollInterval = 10 * time.Millisecond

// awaitExit waits until the process pid that started at startTime (see
// sameProcess) is gone, or ctx ends; it reports whether it is gone. It
// waits on a pidfd of the process, which becomes readable when the process
// exits (a zombie, as for sameProcess, has exited): no polling. The pidfd is
// opened first and the start time checked after, so the pidfd is known to
// refer to that process and not to one that took over its pid. Where pidfds
// are unavailable (kernel < 5.3, seccomp) or cannot be waited on, it looks
// at /proc every exitPollInterval instead.
func awaitExit(ctx context.Context, pid int, startTime uint64) bool {
	if pid <= 0 {
		return true
	}
	fd, err := pidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		return pollExit(ctx, pid, startTime)
	}
	if !sameProcess(pid, startTime) {
		unix.Close(fd)
		return true
	}
	gone, err := awaitPidfd(ctx, fd)
	if err != nil {
		return pollExit(ctx, pid, startTime)
	}
	return gone
}

// awaitPidfd waits until the pidfd fd is readable (its process exited) or
// ctx ends, through the runtime's poller (epoll), so no thread blocks and
// ctx can end the wait. It takes fd (closes it). An error means the pidfd
// could not be waited on.
func awaitPidfd(ctx context.Context, fd int) (bool, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return false, fmt.Errorf("pidfd nonblocking: %w", err)
	}
	// A non-blocking fd is added to the runtime's poller by NewFile.
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	// Fails with ErrNoDeadline when the fd could not join the poller.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return false, fmt.Errorf("pidfd poll: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("pidfd poll: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	exited := false
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		// Not a read (a pidfd has nothing to read): is it readable now?
		// false makes Read wait until the poller says it is.
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(p, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				perr = err
				return true
			}
			exited = n > 0 && p[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0
			return exited
		}
	})
	switch {
	case perr != nil:
		return false, fmt.Errorf("pidfd poll: %w", perr)
	case exited:
		return true, nil
	case errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("pidfd poll: %w", err)
	}
	return exited, nil
}

// pollExit is awaitExit without a pidfd: it looks at /proc every
// exitPollInterval.
func pollExit(ctx context.Context, pid int, startTime uint64) bool {
	t := time.NewTicker(exitPollInterval)
	defer t.Stop()
	for sameProcess(pid, startTime) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
