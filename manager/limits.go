package manager

import (
	"fmt"
	"strings"

	"github.com/socketley/socketley/internal/wire"
)

// Limits on what one caller may register. They keep one user of the control
// socket from growing the registry (and so every other user's ls and the
// daemon's memory) without bound; root is not limited by
// MaxRuntimesPerUser. See docs/security.md.
const (
	// DefaultMaxRuntimesPerUser is the CLI's default for
	// socketley daemon --max-runtimes-per-user.
	DefaultMaxRuntimesPerUser = 1000
	// MaxArgs and MaxEnv cap the arguments and environment entries of one
	// runtime; MaxSpecBytes caps their total size with the paths and
	// credentials (the request line, 64 KiB, caps it anyway).
	MaxArgs      = 256
	MaxEnv       = 256
	MaxSpecBytes = 32 << 10
)

// checkSpecSize enforces MaxArgs, MaxEnv and MaxSpecBytes on an add.
func checkSpecSize(s *wire.AddSpec) error {
	if len(s.Args) > MaxArgs {
		return errorf(ErrInvalid, "add: %d arguments; at most %d are accepted (put long configuration in a file the program reads)", len(s.Args), MaxArgs)
	}
	if len(s.Env) > MaxEnv {
		return errorf(ErrInvalid, "add: %d environment entries; at most %d are accepted (put long configuration in a file the program reads)", len(s.Env), MaxEnv)
	}
	n := len(s.Path) + len(s.WorkDir)
	for _, a := range s.Args {
		n += len(a)
	}
	for _, kv := range s.Env {
		n += len(kv)
	}
	for _, c := range s.Credentials {
		n += len(c.ID) + len(c.Path)
	}
	if n > MaxSpecBytes {
		return errorf(ErrInvalid, "add: path, arguments, environment and credentials take %d bytes; at most %d are accepted (put long configuration in a file the program reads; secrets in --credential files)", n, MaxSpecBytes)
	}
	return nil
}

// checkOwned refuses a new entry for a non-root caller who already has
// Config.MaxRuntimesPerUser entries in r. It runs inside update, so two
// concurrent adds cannot both take the last place; it costs O(1).
func (m *Manager) checkOwned(caller Caller, r *Registry, verb string) error {
	limit := m.cfg.MaxRuntimesPerUser
	if limit <= 0 || caller.root() {
		return nil
	}
	if n := r.owned(caller.UID); n >= limit {
		return errorf(ErrLimit, "%s refused: uid %d already has %d runtimes registered, the per-user limit (socketley daemon --max-runtimes-per-user); remove some first (socketley ls, socketley remove NAME)", verb, caller.UID, n)
	}
	return nil
}

// describeLimits is the one-line summary of the limits in the daemon's
// start log.
func (m *Manager) describeLimits() string {
	var b strings.Builder
	if m.cfg.MaxRuntimesPerUser > 0 {
		fmt.Fprintf(&b, "%d runtimes per non-root user", m.cfg.MaxRuntimesPerUser)
	} else {
		b.WriteString("no per-user runtime limit")
	}
	fmt.Fprintf(&b, "; %d args, %d env entries, %d bytes per runtime", MaxArgs, MaxEnv, MaxSpecBytes)
	return b.String()
}
