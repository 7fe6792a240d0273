package manager

import "github.com/socketley/socketley/internal/wire"

// Runtimes returns the runtime view `ls` gets (orphan units included, in
// name order) for the metrics, built from the registry and the unit
// watch's cache: no D-Bus call. ok is false while the daemon is not
// connected to systemd (starting, reconnecting), when the view would lack
// the units' states. Safe for concurrent use; the caller owns the slice
// (its Args and Env share the registry's, which nobody changes).
func (m *Manager) Runtimes() (rts []wire.Runtime, ok bool) {
	m.mu.RLock()
	ok = m.reg != nil && m.sd != nil
	m.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return m.list(false), true
}
