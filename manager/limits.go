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
// DefaultMaxRuntimesPerUser is the CLI's default for
// socketley daemon --max-runtimes-per-user. The limits of one runtime's
// size are wire.MaxArgs, wire.MaxEnv and wire.MaxSpecBytes.
const DefaultMaxRuntimesPerUser = 1000

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
	fmt.Fprintf(&b, "; %d args, %d env entries, %d bytes per runtime", wire.MaxArgs, wire.MaxEnv, wire.MaxSpecBytes)
	return b.String()
}
