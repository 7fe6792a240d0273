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
	ln  net.Listener
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
	split      splitter
}

// newNetEngine listens on addr, or takes over ln when it is not nil.
func newNetEngine(s *Server, addr string, ln net.Listener) (*netEngine, net.Addr, error) {
	if ln == nil {
		var err error
		ln, err = (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
		}
	}
	return &netEngine{srv: s, ln: ln}, ln.Addr(), nil
}

func (e *netEngine) name() Engine { return EngineNet }

func (e *netEngine) closeListeners() { _ = e.ln.Close() }

func (e *netEngine) start(h handlers) error {
	e.h = h
	e.wg.Add(1)
	go e.acceptLoop()
	return nil
}

func (e *netEngine) wait() { e.wg.Wait() }

func (e *netEngine) acceptLoop() {
	defer e.wg.Done()
	var delay time.Duration
	for {
		nc, err := e.ln.Accept()
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
		if err != nil {
			if errors.Is(err, io.EOF) && !raw && !c.stopped.Load() {
				if last := c.n.split.rest(); last != nil {
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

func (e *netEngine) writer(c *Conn) {
	defer e.wg.Done()
	defer close(c.n.writerDone)
	var spare []byte
	for range c.n.wake {
		for {
			c.mu.Lock()
			if c.abort {
				c.mu.Unlock()
				_ = c.n.nc.Close()
				return
			}
			out := c.pending
			if len(out) == 0 {
				c.kicked = false
				closing := c.closing
				c.mu.Unlock()
				if closing {
					_ = c.n.nc.Close()
					return
				}
				break
			}
			c.pending = spare
			c.mu.Unlock()
			_, err := c.n.nc.Write(out)
			c.mu.Lock()
			c.queued -= len(out)
			c.mu.Unlock()
			if err != nil {
				c.abortNow()
				_ = c.n.nc.Close()
				return
			}
			spare = out[:0]
			if cap(spare) > shrinkCap {
				spare = nil
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
	_ = e.ln.Close()
	for _, c := range e.srv.Conns() {
		_ = c.Close()
	}
}

func (e *netEngine) abortAll() {
	for _, c := range e.srv.Conns() {
		c.abortNow()
	}
}
