// Package proc reads what the kernel says about a process: its
// /proc/PID/stat fields, its uids and the credentials of the process at the other
// end of a unix socket (SO_PEERCRED). It is the one parser of each.
package proc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Stat holds the fields of /proc/PID/stat socketley uses.
type Stat struct {
	// State is the state letter (field 3): R, S, D, Z (zombie), X (dead) …
	State byte
	// PPID is the parent's pid (field 4).
	PPID int
	// StartTime is when the process started, in clock ticks since boot
	// (field 22). With the pid it names one process: a reused pid has
	// another start time.
	StartTime uint64
	// UTime and STime are the CPU time spent in user and kernel mode, in
	// clock ticks (fields 14 and 15; see ClockTicks).
	UTime, STime uint64
	// Threads is the number of threads (field 20).
	Threads int
	// RSS is the resident set size in pages (field 24; 0 when the line
	// ends before it).
	RSS uint64
}

// ClockTicks is the kernel's USER_HZ, the unit of the times in
// /proc/PID/stat (sysconf(_SC_CLK_TCK)): 100 on every Linux architecture.
const ClockTicks = 100

// Alive reports whether the process runs: not a zombie (exited, not yet
// reaped) and not dead.
func (s Stat) Alive() bool { return s.State != 'Z' && s.State != 'X' }

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// ParseStat parses the text of a /proc/PID/stat file. The command name
// (field 2) may contain spaces and parentheses: fields are counted from
// after its last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("no command name in %q", b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (start time).
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("%d fields after the command name, want at least 20", len(f))
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return Stat{}, fmt.Errorf("parent pid %q: %w", f[1], err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("start time %q: %w", f[19], err)
	}
	s := Stat{State: f[0][0], PPID: ppid, StartTime: start}
	// f[11] is field 14 (utime), f[12] field 15 (stime), f[17] field 20
	// (num_threads), f[21] field 24 (rss).
	nums := []struct {
		i   int
		dst *uint64
	}{{11, &s.UTime}, {12, &s.STime}, {21, &s.RSS}}
	for _, n := range nums {
		if n.i >= len(f) {
			continue
		}
		v, err := strconv.ParseUint(string(f[n.i]), 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("field %d %q: %w", n.i+3, f[n.i], err)
		}
		*n.dst = v
	}
	th, err := strconv.Atoi(string(f[17]))
	if err != nil {
		return Stat{}, fmt.Errorf("threads %q: %w", f[17], err)
	}
	s.Threads = th
	return s, nil
}

// UIDs returns the real, effective, saved and filesystem uids of pid (the
// Uid: line of /proc/PID/status).
func UIDs(pid int) ([]int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		var out []int
		for _, f := range bytes.Fields(rest) {
			u, err := strconv.Atoi(string(f))
			if err != nil {
				return nil, fmt.Errorf("parse /proc/%d/status: %w", pid, err)
			}
			out = append(out, u)
		}
		if len(out) == 0 {
			break
		}
		return out, nil
	}
	return nil, fmt.Errorf("parse /proc/%d/status: no Uid line", pid)
}

// PeerCred returns the credentials of the process at the other end of c,
// as the kernel recorded them when the connection was made (SO_PEERCRED).
// With fd set, it also calls fd with the socket's descriptor while it is
// held (to read more, e.g. SO_PEERGROUPS).
func PeerCred(c *net.UnixConn, fd func(int)) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(s uintptr) {
		cred, serr = unix.GetsockoptUcred(int(s), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr == nil && fd != nil {
			fd(int(s))
		}
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred, nil
}
