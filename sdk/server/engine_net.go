package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// netReadBuf is the read buffer size of one net-engine connection.
const netReadBuf = 16 << 10

// netEngine serves connections on Go's netpoller: one accept goroutine, and
// per connection a reader goroutine (which runs the callbacks) and a writer
// goroutine (which drains the send queue).
type netEngine struct {
	srv *Server
	lns []net.Listener
	h   handlers
	wg  sync.WaitGroup

	mu       sync.Mutex // guards stopping
	stopping bool
}

// netConn is the net engine's per-connection state.
type netConn struct {
	nc         net.Conn
	wake       chan struct{}
	writerDone chan struct{}
	resume     chan struct{} // the writer drained a paused connection
	paused     bool          // guarded by Conn.mu
	split      splitter
}

// newNetEngine listens on addr, or takes over lns when there are any.
func newNetEngine(s *Server, addr string, lns []net.Listener) (engine, net.Addr, error) {
	if len(lns) == 0 {
		ln, err := listenConfig(s.cfg.reusePort).Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		lns = []net.Listener{ln}
	}
	return &netEngine{srv: s, lns: lns}, lns[0].Addr(), nil
}

func (e *netEngine) name() Engine { return EngineNet }

func (e *netEngine) closeListeners() {
	for _, ln := range e.lns {
		_ = ln.Close()
	}
}

func (e *netEngine) start(h handlers) error {
	e.h = h
	for _, ln := range e.lns {
		e.wg.Add(1)
		go e.acceptLoop(ln)
	}
	return nil
}

func (e *netEngine) wait() { e.wg.Wait() }

func (e *netEngine) acceptLoop(ln net.Listener) {
	defer e.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			e.mu.Lock()
			stopping := e.stopping
			e.mu.Unlock()
			if stopping || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			e.srv.log.Error("accept failed", "port", e.srv.Port(), "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := e.srv.newConn(e, nc.RemoteAddr())
		c.n = netConn{
			nc:         nc,
			wake:       make(chan struct{}, 1),
			writerDone: make(chan struct{}),
			resume:     make(chan struct{}, 1),
			split:      splitter{max: e.srv.cfg.maxMessage},
		}
		e.mu.Lock()
		if e.stopping {
			e.mu.Unlock()
			_ = nc.Close()
			continue
		}
		e.srv.addConn(c)
		e.wg.Add(2)
		e.mu.Unlock()
		go e.writer(c)
		go e.reader(c)
	}
}

func (e *netEngine) reader(c *Conn) {
	defer e.wg.Done()
	e.h.connect(c)
	raw := e.srv.cfg.framing == Raw
	emit := func(m []byte) bool {
		e.h.message(c, m)
		return !c.stopped.Load()
	}
	buf := make([]byte, netReadBuf)
	for {
		n, err := c.n.nc.Read(buf)
		if n > 0 && !c.stopped.Load() {
			if raw {
				e.h.message(c, buf[:n])
			} else if ferr := c.n.split.feed(buf[:n], emit); ferr != nil {
				e.srv.log.Warn("message too large, closing connection",
					"conn", c.id, "remote", addrString(c.remote), "limit", e.srv.cfg.maxMessage)
				c.abortNow()
			}
		}
		if err == nil {
			e.throttle(c)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && !raw && !c.stopped.Load() {
				if last := c.n.split.rest(); last != nil && !e.srv.cfg.dropUnterm {
					c.unterm.Store(true)
					e.h.message(c, last)
				}
			}
			break
		}
	}
	c.n.split.reset()
	// End of stream or error: flush what is queued, then close.
	c.markClosing()
	c.mu.Lock()
	enqueue := !c.kicked
	c.kicked = true
	c.mu.Unlock()
	if enqueue {
		e.kick(c, false, true)
	}
	<-c.n.writerDone
	_ = c.n.nc.Close()
	e.srv.removeConn(c)
	e.h.disconnect(c)
}

// throttle blocks the reader while too much output is queued for c, so a
// peer that sends faster than it reads is slowed down by TCP.
func (e *netEngine) throttle(c *Conn) {
	c.mu.Lock()
	for c.queued > e.srv.pauseHigh && !c.closing {
		c.n.paused = true
		c.mu.Unlock()
		if f := e.srv.cfg.testOnPause; f != nil {
			f(c)
		}
		<-c.n.resume
		c.mu.Lock()
	}
	c.n.paused = false
	c.mu.Unlock()
}

func (c *Conn) signalResume() {
	select {
	case c.n.resume <- struct{}{}:
	default:
	}
}

func (e *netEngine) writer(c *Conn) {
	defer e.wg.Done()
	defer close(c.n.writerDone)
	defer c.signalResume()
	var spare [][]byte
	for range c.n.wake {
		for {
			c.mu.Lock()
			if c.abort {
				c.mu.Unlock()
				_ = c.n.nc.Close()
				return
			}
			if len(c.pending) == 0 {
				c.kicked = false
				closing := c.closing
				c.mu.Unlock()
				if closing {
					_ = c.n.nc.Close()
					return
				}
				break
			}
			outs := c.takePendingLocked(spare)
			c.mu.Unlock()
			// One writev for the whole queue.
			n := 0
			for _, b := range outs {
				n += len(b)
			}
			bufs := net.Buffers(append([][]byte(nil), outs...))
			_, err := bufs.WriteTo(c.n.nc)
			for i, b := range outs {
				e.srv.putChunk(b)
				outs[i] = nil
			}
			spare = outs[:0]
			c.mu.Lock()
			c.queued -= n
			resume := c.n.paused && c.queued <= e.srv.pauseLow
			c.mu.Unlock()
			if resume {
				c.signalResume()
			}
			if err != nil {
				c.abortNow()
				_ = c.n.nc.Close()
				return
			}
		}
	}
}

func (e *netEngine) kick(c *Conn, abort, enqueue bool) {
	if abort {
		// The writer may be blocked on a slow peer: closing the socket
		// unblocks both goroutines.
		_ = c.n.nc.Close()
	}
	select {
	case c.n.wake <- struct{}{}:
	default:
	}
}

func (e *netEngine) stop() {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	e.closeListeners()
	for _, c := range e.srv.Conns() {
		_ = c.Close()
	}
}

func (e *netEngine) abortAll() {
	for _, c := range e.srv.Conns() {
		c.abortNow()
	}
}
