package manager

import (
	"net"
	"os"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/proc"
)

// Caller identifies the process at the other end of a control connection,
// read once from SO_PEERCRED at accept. PIDs are reused: any decision on a
// pid is re-checked against systemd or the process start time when acted on.
type Caller struct {
	UID, GID, PID int
	// Groups are the peer's supplementary groups (SO_PEERGROUPS).
	Groups []int
}

// root reports whether the caller is uid 0.
func (c Caller) root() bool { return c.UID == 0 }

// peerCred reads the peer's credentials from the socket.
func peerCred(c *net.UnixConn) (Caller, error) {
	var groups []int
	cred, err := proc.PeerCred(c, func(fd int) { groups = peerGroups(fd) })
	if err != nil {
		return Caller{}, err
	}
	return Caller{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid), Groups: groups}, nil
}

// peerGroups returns the peer's supplementary groups (SO_PEERGROUPS, Linux
// ≥ 4.13), or nil when the kernel cannot tell. A peer with more groups than
// the first buffer holds gets a second call with the size the kernel asked for.
func peerGroups(fd int) []int {
	n := 64
	for range 2 {
		buf := make([]uint32, n)
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == unix.ERANGE && int(size/4) > n {
			n = int(size / 4)
			continue
		}
		if errno != 0 {
			return nil
		}
		out := make([]int, 0, size/4)
		for _, g := range buf[:size/4] {
			out = append(out, int(g))
		}
		return out
	}
	return nil
}

// authorizeConn decides whether the caller may use the socket at all, from
// its peer credentials (not only the socket's file mode, which a wrong
// umask, a chmod or an inherited descriptor could widen).
// User mode: the daemon's own uid (and root). System mode: root or a member
// of the socket group (primary or supplementary).
func (m *Manager) authorizeConn(c Caller) error {
	if c.root() {
		return nil
	}
	if m.cfg.Mode == paths.User {
		if c.UID == os.Getuid() {
			return nil
		}
		return errorf(ErrDenied, "this socketley daemon belongs to uid %d; uid %d may not use it (run your own: socketley daemon --user)", os.Getuid(), c.UID)
	}
	gid := m.socketGID()
	if gid >= 0 && (c.GID == gid || slices.Contains(c.Groups, gid)) {
		return nil
	}
	return errorf(ErrDenied, "uid %d is not root and not in group %q (sudo usermod -aG %s $USER, then log in again)", c.UID, m.cfg.SocketGroup, m.cfg.SocketGroup)
}

// authorizeEntry decides whether the caller may change e. Root may change
// everything; others only the runtimes they own.
func authorizeEntry(c Caller, e *Entry, verb string) error {
	if c.root() || c.UID == e.OwnerUID {
		return nil
	}
	return errorf(ErrDenied, "%s %s: runtime belongs to uid %d, you are uid %d", verb, e.Name, e.OwnerUID, c.UID)
}
