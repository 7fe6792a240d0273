package server

import (
	"net"
	"sync"
	"sync/atomic"
)

// Conn is one accepted TCP connection. Its methods are safe for concurrent
// use from any goroutine, including from inside callbacks.
type Conn struct {
	id     uint64
	srv    *Server
	eng    engine
	remote net.Addr

	// stopped is set once the connection starts closing; no message is
	// delivered after it.
	stopped atomic.Bool
	// unterm is set before the final message of a stream that ended
	// without '\n' is delivered.
	unterm atomic.Bool

	mu sync.Mutex // guards the fields below
	// pending holds bytes accepted by Send and not yet taken by the
	// engine, as a list of chunks of chunkSize bytes (a message may span
	// chunks); queued counts them plus those being written.
	pending [][]byte
	queued  int
	closing bool // no more Sends: Close, end of stream or error
	abort   bool // drop queued data and close at once
	kicked  bool // the engine has been told to look at this connection
	values  map[string]any
	// localOn is set while the owning io_uring loop appends its own Sends
	// to pending without mu (see Conn.Send and loop.flushLocal); Sends
	// from other goroutines then go to after, which is queued behind them.
	localOn bool
	after   [][]byte

	// loopG identifies the goroutine of the io_uring loop that owns the
	// connection (see curg); 0 with the net engine, where curg is not
	// available, and once the connection is finished.
	loopG atomic.Uintptr
	// afterSet tells the owning loop that after holds data, so that its
	// own Sends must queue behind it.
	afterSet atomic.Bool

	// Engine-private state; only the engine's goroutines touch it.
	u uringConn
	n netConn
}

// ID returns the connection's id, unique within the Server (starting at 1).
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address (a *net.TCPAddr), or nil if it could
// not be read when the connection was accepted.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Server returns the server the connection belongs to.
func (c *Conn) Server() *Server { return c.srv }

// Unterminated reports whether the message being delivered to OnMessage
// is the final bytes of a stream that the peer ended without a '\n' (Lines
// framing): a peer that wrote a last line without its newline, or one that
// died in the middle of a line. It stays true afterwards (no message follows
// it), so OnDisconnect can ask too. WithDropUnterminated drops such bytes
// instead.
func (c *Conn) Unterminated() bool { return c.unterm.Load() }

// Send queues a copy of msg for the peer and returns without waiting for the
// write; in Lines framing a '\n' is appended. Messages to one connection are
// written in the order of the Send calls and coalesced into as few writes as
// possible, one write in flight at a time. Send returns ErrClosed once the
// connection is closing, and ErrSlowConsumer when the queue cap
// (WithMaxQueue) would be exceeded; in that case the connection is closed
// without flushing.
func (c *Conn) Send(msg []byte) error {
	newline := c.srv.cfg.framing == Lines
	if g := c.loopG.Load(); g != 0 && g == curg() {
		// Called by the connection's own io_uring loop (from a callback):
		// no lock per message, see sendOwned.
		return c.sendOwned(msg, newline)
	}
	return c.send(msg, newline)
}

func (c *Conn) send(msg []byte, newline bool) error {
	n := len(msg)
	if newline {
		n++
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.queued+n > c.srv.cfg.maxQueue {
		c.closing, c.abort = true, true
		c.dropPendingLocked()
		c.stopped.Store(true)
		kick := !c.kicked
		c.kicked = true
		queued := c.queued
		c.mu.Unlock()
		c.srv.log.Warn("slow consumer: send queue full, closing connection",
			"conn", c.id, "remote", addrString(c.remote), "queued", queued, "limit", c.srv.cfg.maxQueue)
		c.eng.kick(c, true, kick)
		return ErrSlowConsumer
	}
	if c.localOn {
		// The loop is appending to pending: queue behind what it adds.
		c.after = c.appendChunks(c.after, msg, newline)
		if !c.afterSet.Load() {
			c.afterSet.Store(true)
		}
	} else {
		c.pending = c.appendChunks(c.pending, msg, newline)
	}
	c.queued += n
	kick := !c.kicked
	c.kicked = true
	c.mu.Unlock()
	if kick {
		c.eng.kick(c, false, true)
	}
	return nil
}

// appendChunks copies b, and a '\n' when newline is set, to the end of
// the chunk list q and returns q. The caller owns q (c.mu held, or the
// owning loop while c.localOn).
func (c *Conn) appendChunks(q [][]byte, b []byte, newline bool) [][]byte {
	need := len(b)
	if newline {
		need++
	}
	if n := len(q); n > 0 {
		last := &q[n-1]
		if cap(*last)-len(*last) >= need {
			*last = append(*last, b...)
			if newline {
				*last = append(*last, '\n')
			}
			return q
		}
	}
	q = c.appendSlow(q, b)
	if newline {
		q = c.appendSlow(q, []byte{'\n'})
	}
	return q
}

// appendSlow copies b across as many new chunks as it needs.
func (c *Conn) appendSlow(q [][]byte, b []byte) [][]byte {
	for len(b) > 0 {
		n := len(q)
		if n == 0 || len(q[n-1]) == cap(q[n-1]) {
			q = append(q, c.srv.getChunk())
			n++
		}
		last := &q[n-1]
		k := min(len(b), cap(*last)-len(*last))
		*last = append(*last, b[:k]...)
		b = b[k:]
	}
	return q
}

// dropPendingLocked forgets the queued data for an abort. While the loop
// owns pending (localOn) it drops pending itself (loop.flushLocal). c.mu
// is held.
func (c *Conn) dropPendingLocked() {
	if !c.localOn {
		c.pending = nil
	}
	c.after = nil
}

// takePending returns the pending chunks and leaves spare (emptied) in
// their place. c.mu is held.
func (c *Conn) takePendingLocked(spare [][]byte) [][]byte {
	p := c.pending
	c.pending = spare[:0]
	return p
}

// Close closes the connection gracefully: data already accepted by Send is
// written first, then the socket is shut down and closed, and OnDisconnect
// runs once. No OnMessage is delivered after Close. Close does not wait and
// always returns nil; calling it again is a no-op. A peer that stops reading
// keeps the connection until it goes away or Shutdown's context expires.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.stopped.Store(true)
	kick := !c.kicked
	c.kicked = true
	c.mu.Unlock()
	c.eng.kick(c, false, kick)
	return nil
}

// abortNow closes the connection without flushing queued data.
func (c *Conn) abortNow() {
	c.mu.Lock()
	if c.abort {
		c.mu.Unlock()
		return
	}
	c.closing, c.abort = true, true
	c.dropPendingLocked()
	c.stopped.Store(true)
	kick := !c.kicked
	c.kicked = true
	c.mu.Unlock()
	c.eng.kick(c, true, kick)
}

// markClosing stops further Sends (end of stream or error seen by the engine).
func (c *Conn) markClosing() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.stopped.Store(true)
}

// Set stores v under key in the connection's private data, which lives as
// long as the Conn and is never shared with other connections.
func (c *Conn) Set(key string, v any) {
	c.mu.Lock()
	if c.values == nil {
		c.values = make(map[string]any)
	}
	c.values[key] = v
	c.mu.Unlock()
}

// Get returns the value stored under key by Set, or nil.
func (c *Conn) Get(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[key]
}

// Value returns the value stored under key by Conn.Set when it has type T,
// and whether it has: a key never set, or set to a value of another type,
// gives T's zero value and false, never a panic. With it a per-connection
// counter needs no type assertion:
//
//	n, _ := server.Value[int](c, "count")
//	c.Set("count", n+1)
func Value[T any](c *Conn, key string) (T, bool) {
	v, ok := c.Get(key).(T)
	return v, ok
}

// Delete removes key from the connection's private data.
func (c *Conn) Delete(key string) {
	c.mu.Lock()
	delete(c.values, key)
	c.mu.Unlock()
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
