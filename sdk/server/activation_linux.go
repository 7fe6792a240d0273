//go:build linux

package server

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// listeningTCP reports whether f is a listening TCP socket, and its address.
func listeningTCP(f *os.File) (*net.TCPAddr, bool) {
	fd := int(f.Fd())
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return nil, false
	}
	if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
		return nil, false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, false
	}
	ta := sockaddrToTCP(sa)
	return ta, ta != nil
}

// dupFile duplicates f's descriptor (close-on-exec).
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// inheritedFDs turns an inherited listener into n descriptors for the
// io_uring loops: duplicates of the one socket (its accept queue is shared,
// as with one listener per loop under SO_REUSEPORT), non-blocking, with
// TCP_NODELAY so that accepted sockets inherit it. f is consumed.
func inheritedFDs(f *os.File, n int) ([]int, error) {
	defer f.Close()
	var fds []int
	fail := func(err error) ([]int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, err
	}
	for range max(n, 1) {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err))
		}
		fds = append(fds, fd)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		return fail(os.NewSyscallError("fcntl O_NONBLOCK", err))
	}
	if err := unix.SetsockoptInt(fds[0], unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail(os.NewSyscallError("setsockopt TCP_NODELAY", err))
	}
	return fds, nil
}
