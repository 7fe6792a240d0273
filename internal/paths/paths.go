// Package paths resolves the control-socket and state locations shared by the
// daemon, the CLI and the SDK.
//
// Resolution order for clients (CLI and SDK):
//  1. an explicit path (--socket) or $SOCKETLEY_SOCKET when non-empty;
//  2. an explicit mode (--user / --system);
//  3. the system socket when it exists and the caller may read and write it;
//  4. otherwise the user socket.
package paths

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Mode selects which daemon instance a path belongs to.
type Mode int

// The daemon modes.
const (
	// Auto picks the system daemon when its socket is usable, else the user daemon.
	Auto Mode = iota
	// System is the root daemon on the system bus (the packaged socketley.service).
	System
	// User is a per-user daemon on the user's systemd manager.
	User
)

// String returns "auto", "system" or "user".
func (m Mode) String() string {
	switch m {
	case System:
		return "system"
	case User:
		return "user"
	default:
		return "auto"
	}
}

// SystemSocket is the control socket of the system daemon.
const SystemSocket = "/run/socketley/socketley.sock"

// SystemStateDir is where the system daemon keeps its registry.
const SystemStateDir = "/var/lib/socketley"

// EnvSocket overrides the control socket path for the daemon, the CLI and the SDK.
const EnvSocket = "SOCKETLEY_SOCKET"

// RuntimeDir returns $XDG_RUNTIME_DIR, or /run/user/UID when it is unset.
func RuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	return filepath.Join("/run/user", strconv.Itoa(os.Getuid()))
}

// UserSocket returns the control socket of the calling user's daemon:
// $XDG_RUNTIME_DIR/socketley/socketley.sock.
func UserSocket() string {
	return filepath.Join(RuntimeDir(), "socketley", "socketley.sock")
}

// UserStateDir returns $XDG_STATE_HOME/socketley, defaulting to ~/.local/state/socketley.
func UserStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "socketley"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("user state directory: set XDG_STATE_HOME or HOME: %w", err)
	}
	return filepath.Join(home, ".local", "state", "socketley"), nil
}

// Socket returns the control socket a client should dial. explicit wins, then
// $SOCKETLEY_SOCKET, then the mode; in Auto mode the system socket is used when
// it exists and is readable and writable by the caller.
func Socket(explicit string, mode Mode) string {
	if explicit != "" {
		return explicit
	}
	if env := os.Getenv(EnvSocket); env != "" {
		return env
	}
	switch mode {
	case System:
		return SystemSocket
	case User:
		return UserSocket()
	}
	if unix.Access(SystemSocket, unix.R_OK|unix.W_OK) == nil {
		return SystemSocket
	}
	return UserSocket()
}

// DaemonSocket returns the socket a daemon in mode m listens on: explicit,
// else $SOCKETLEY_SOCKET, else the mode's default.
func DaemonSocket(explicit string, m Mode) string {
	if explicit != "" {
		return explicit
	}
	if env := os.Getenv(EnvSocket); env != "" {
		return env
	}
	if m == System {
		return SystemSocket
	}
	return UserSocket()
}
