//go:build !linux

package server

// engineIdle reports whether the net engine has nothing to do for c: its
// writer has emptied the queue and waits to be kicked.
func engineIdle(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.kicked && len(c.pending) == 0
}
