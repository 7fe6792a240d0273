package server

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/socketley/socketley/internal/activation"
)

// inheritedFiles returns the file descriptors systemd passed to this process
// (LISTEN_FDS/LISTEN_PID naming this process, sd_listen_fds(3)), read once.
// They stay open for the life of the process: every server that matches one
// takes a duplicate, so a server that shuts down and a new one on the same
// address find the socket again. This is process state by nature (the fds
// are the process's), hence package-level; it is never written after the
// first read. The environment is left as it is, so the program's own
// activation code (if any) sees the same fds.
var inheritedFiles = sync.OnceValue(func() []*os.File { return activation.Files(false) })

// Listen returns a TCP listener on addr ("host:port", as for New) for a
// program that serves with the net package itself rather than with a
// Server: the listening socket systemd passed to the process that matches
// addr (socket activation, as New takes it: a socketley runtime added with
// --listen, or any unit with a .socket), else a new one bound with
// net.Listen("tcp", addr). Closing the listener closes only the process's
// duplicate: the inherited socket stays open, and with it the queue of
// connections that wait while the program restarts.
func Listen(addr string) (net.Listener, error) {
	f, _, err := inheritedListener(addr)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return net.Listen("tcp", addr)
	}
	defer f.Close()
	ln, err := net.FileListener(f) // dups
	if err != nil {
		return nil, fmt.Errorf("listen %s: inherited socket %s: %w", addr, f.Name(), err)
	}
	return ln, nil
}

// WithoutSocketActivation makes New bind its own socket even when systemd
// passed listening sockets to the process (see New).
func WithoutSocketActivation() Option { return func(c *config) { c.noActivation = true } }

// wantAddr is the parsed address given to New: the IP (nil for any) and the
// port (0 for any).
type wantAddr struct {
	ip   net.IP
	port int
}

// parseWant parses New's address the way the listeners would bind it.
func parseWant(addr string) (wantAddr, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return wantAddr{}, fmt.Errorf("listen %s: %w", addr, err)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return wantAddr{}, fmt.Errorf("listen %s: %w", addr, err)
	}
	var w wantAddr
	w.port = port
	if host != "" {
		ta, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return wantAddr{}, fmt.Errorf("listen %s: %w", addr, err)
		}
		w.ip = ta.IP
	}
	return w, nil
}

// matches reports whether a listening socket bound to got serves w: the
// port is equal (or w's is 0), and the host is any (w's or got's) or equal.
func (w wantAddr) matches(got *net.TCPAddr) bool {
	if got == nil || (w.port != 0 && w.port != got.Port) {
		return false
	}
	if len(w.ip) == 0 || w.ip.IsUnspecified() || got.IP.IsUnspecified() {
		return true
	}
	return w.ip.Equal(got.IP)
}

// inheritedListener returns a duplicate (close-on-exec) of the first
// listening TCP socket inherited from systemd that matches addr, and its
// address; nil when there is none (no socket activation, or no match).
func inheritedListener(addr string) (*os.File, *net.TCPAddr, error) {
	files := inheritedFiles()
	if len(files) == 0 {
		return nil, nil, nil
	}
	w, err := parseWant(addr)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		ta, ok := listeningTCP(f)
		if !ok || !w.matches(ta) {
			continue
		}
		dup, err := dupFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: inherited socket %s: %w", addr, f.Name(), err)
		}
		return dup, ta, nil
	}
	return nil, nil, nil
}
