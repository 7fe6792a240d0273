// Package activation reads the sockets systemd passes to a
// socket-activated process (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES, descriptors from 3 on).
//
// It does what go-systemd's activation.Files does, without that package's
// dependency on crypto/tls (for its TLS listeners), which would add
// crypto/tls, crypto/x509 and their package initialisation to every
// command of the CLI and to every program built with the SDK's server.
package activation

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenFDsStart is SD_LISTEN_FDS_START.
const listenFDsStart = 3

// Files returns the descriptors passed to this process, in order, named
// by LISTEN_FDNAMES (else "LISTEN_FD_N"), each marked close-on-exec; nil
// when none were passed to this process (LISTEN_PID is another's). With
// unsetEnv the three variables are removed, so that a child process does
// not take the descriptors for its own.
func Files(unsetEnv bool) []*os.File {
	if unsetEnv {
		defer func() {
			_ = os.Unsetenv("LISTEN_PID")
			_ = os.Unsetenv("LISTEN_FDS")
			_ = os.Unsetenv("LISTEN_FDNAMES")
		}()
	}
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	files := make([]*os.File, 0, n)
	for i := range n {
		fd := listenFDsStart + i
		syscall.CloseOnExec(fd)
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files
}

// Listeners returns a net.Listener for each passed descriptor, in order;
// an entry is nil where the descriptor is not a listening socket. The
// descriptors are consumed (net.FileListener duplicates them).
func Listeners() ([]net.Listener, error) {
	files := Files(true)
	lns := make([]net.Listener, len(files))
	for i, f := range files {
		if ln, err := net.FileListener(f); err == nil {
			lns[i] = ln
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	return lns, nil
}
