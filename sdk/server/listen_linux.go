//go:build linux

package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenBacklog is the listen(2) backlog; the kernel caps it at somaxconn.
const listenBacklog = 4096

// listenLoops binds n listening sockets to addr with SO_REUSEPORT, one per
// io_uring loop, so the kernel spreads incoming connections over the loops
// by hash. An empty host listens on all addresses, IPv6 and IPv4, like
// package net does.
//
// SO_REUSEPORT alone would let a second copy of the program bind the same
// port without error and take a share of its connections. So, unless share
// is set (WithReusePort), the port is first claimed with a probe socket
// bound without SO_REUSEPORT: the kernel refuses that bind with EADDRINUSE
// when any socket listens on the port, SO_REUSEPORT or not, as it refuses
// package net's listener. The probe stays bound (it never listens, so it
// accepts nothing) until the loops' sockets listen, then is closed. With
// port 0 the probe picks the port. Two copies started at the same instant
// can still both pass their probes before either listens; and a foreign
// program of the same user that sets SO_REUSEPORT itself can join the
// group, which the net engine's plain listener would refuse.
func listenLoops(addr string, n int, share bool) ([]int, *net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	var fds []int
	fail := func(err error) ([]int, *net.TCPAddr, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	port := ta.Port
	if !share {
		probe, err := listenOne(ta.IP, port, ta.Zone, false, false)
		if err != nil {
			return fail(err)
		}
		defer unix.Close(probe)
		if port == 0 {
			sa, err := unix.Getsockname(probe)
			if err != nil {
				return fail(os.NewSyscallError("getsockname", err))
			}
			port = sockaddrToTCP(sa).Port
		}
	}
	for i := 0; i < n; i++ {
		fd, err := listenOne(ta.IP, port, ta.Zone, true, true)
		if err != nil {
			return fail(err)
		}
		fds = append(fds, fd)
		if port == 0 {
			sa, err := unix.Getsockname(fd)
			if err != nil {
				return fail(os.NewSyscallError("getsockname", err))
			}
			port = sockaddrToTCP(sa).Port
		}
	}
	sa, err := unix.Getsockname(fds[0])
	if err != nil {
		return fail(os.NewSyscallError("getsockname", err))
	}
	return fds, sockaddrToTCP(sa), nil
}

// listenOne binds one socket, with SO_REUSEPORT when share is set, and
// makes it listen when listen is set.
func listenOne(ip net.IP, port int, zone string, share, listen bool) (int, error) {
	family := unix.AF_INET6
	if ip4 := ip.To4(); ip4 != nil {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil && family == unix.AF_INET6 && len(ip) == 0 && errors.Is(err, unix.EAFNOSUPPORT) {
		family = unix.AF_INET
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	setup := func() error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
		if share {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
			}
		}
		// Accepted sockets inherit TCP_NODELAY from the listener.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return os.NewSyscallError("setsockopt TCP_NODELAY", err)
		}
		var sa unix.Sockaddr
		if family == unix.AF_INET {
			s4 := &unix.SockaddrInet4{Port: port}
			if ip4 := ip.To4(); ip4 != nil {
				copy(s4.Addr[:], ip4)
			}
			sa = s4
		} else {
			s6 := &unix.SockaddrInet6{Port: port}
			if len(ip) == 0 || ip.IsUnspecified() {
				// Dual stack, as package net does for ":port".
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
					return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
				}
			}
			copy(s6.Addr[:], ip.To16())
			if zone != "" {
				if ifi, err := net.InterfaceByName(zone); err == nil {
					s6.ZoneId = uint32(ifi.Index)
				}
			}
			sa = s6
		}
		if err := unix.Bind(fd, sa); err != nil {
			return os.NewSyscallError("bind", err)
		}
		if !listen {
			return nil
		}
		if err := unix.Listen(fd, listenBacklog); err != nil {
			return os.NewSyscallError("listen", err)
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// listenConfig returns the net engine's listen configuration: with share,
// its socket gets SO_REUSEPORT (see WithReusePort).
func listenConfig(share bool) *net.ListenConfig {
	if !share {
		return &net.ListenConfig{}
	}
	return &net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", serr)
		}
		return nil
	}}
}

func sockaddrToTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return nil
}
