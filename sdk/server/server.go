package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/socketley/socketley/sdk"
)

// Errors returned by the package; test them with errors.Is.
var (
	// ErrClosed is returned by Conn.Send once the connection is closing.
	ErrClosed = errors.New("connection closed")
	// ErrSlowConsumer is returned by Conn.Send when the connection's send
	// queue would exceed its cap; the connection is then closed.
	ErrSlowConsumer = errors.New("slow consumer: send queue full")
	// ErrServerClosed is returned by Run when the server was already shut
	// down or is already running.
	ErrServerClosed = errors.New("server closed")
	// ErrEngineUnavailable is returned by New when EngineURing was asked
	// for and io_uring cannot be used here.
	ErrEngineUnavailable = errors.New("io_uring engine unavailable")
)

// engine is what Server needs from an I/O engine.
type engine interface {
	// start begins serving with h. On error nothing is left running and the
	// listeners are still open (so another engine may take them over).
	start(h handlers) error
	// wait blocks until every goroutine of the engine has exited after stop.
	wait()
	// stop stops accepting and closes every connection gracefully.
	stop()
	// abortAll closes every connection without flushing.
	abortAll()
	// kick tells the engine that c has output queued or a close request;
	// abort means the close must not flush. enqueue is false when c was
	// already kicked and not yet serviced.
	kick(c *Conn, abort, enqueue bool)
	// closeListeners releases the listeners of an engine never started.
	closeListeners()
	name() Engine
}

type handlers struct {
	connect    func(*Conn)
	message    func(*Conn, []byte)
	disconnect func(*Conn)
	// rawMessage is the OnMessage callback without the per-call panic
	// guard, for an engine that recovers once around a batch of messages
	// (see loop.deliver) when recover is set.
	rawMessage func(*Conn, []byte)
	recover    bool
}

const (
	stateNew = iota
	stateRunning
	stateClosed
)

// Server is a TCP server with message framing, served by io_uring event
// loops or by Go's netpoller. Create it with New, set the callbacks, then
// call Run. Its methods are safe for concurrent use.
type Server struct {
	cfg config
	// pauseHigh and pauseLow are the queued-bytes levels at which reading
	// from a connection pauses and resumes (flow control toward the peer).
	pauseHigh, pauseLow int

	log       *slog.Logger
	addr      net.Addr
	activated bool // the listener came from systemd (LISTEN_FDS)
	nextID    atomic.Uint64
	// bufs recycles the chunkSize chunks of send queues between
	// connections: idle connections hold no buffer and busy ones do not
	// allocate.
	bufs sync.Pool

	mu       sync.Mutex // guards h, state, eng, stopping
	h        handlers
	state    int
	eng      engine
	stopping bool
	stopCh   chan struct{} // closed when shutdown starts
	done     chan struct{} // closed when everything is released

	connsMu sync.Mutex // guards conns
	conns   map[uint64]*Conn
}

// New creates a server listening on addr (host:port, e.g. ":7070" or
// "127.0.0.1:0"; see PortAddr). The listening socket is bound here, so a port
// in use (an error matching syscall.EADDRINUSE, on both engines, unless
// WithReusePort) or a bad address is reported by New, and Addr is valid on return;
// connections are accepted only once Run is called. Release a server that
// never runs with Shutdown.
//
// Socket activation: when systemd passed listening sockets to the process
// (LISTEN_PID is this process and LISTEN_FDS > 0, as for a socketley
// runtime added with --listen, or any unit with a .socket), New serves the
// first inherited listening TCP socket that matches addr instead of binding
// one: the same port (any port when addr's is 0) and the same host, where an
// empty or unspecified host on either side matches any. The io_uring loops
// then share that one socket, and the net engine serves it alike. The
// inherited sockets stay open in the process, so connections that queue
// while the program restarts are not lost; Activated reports the choice.
// Without a match New binds as usual; WithoutSocketActivation turns the
// lookup off.
//
// The engine is chosen here: EngineAuto tries io_uring (Linux, with
// multishot accept/recv, provided buffer rings and DEFER_TASKRUN: kernel
// 6.1 or newer, not disabled by sysctl or seccomp) and otherwise uses the
// net engine; Engine reports the result.
func New(addr string, opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if env := os.Getenv(EnvEngine); env != "" {
		cfg.engine = Engine(env)
	}
	switch {
	case cfg.engine != EngineAuto && cfg.engine != EngineURing && cfg.engine != EngineNet:
		return nil, fmt.Errorf("server %s: unknown engine %q (want auto, uring or net)", addr, cfg.engine)
	case cfg.framing != Lines && cfg.framing != Raw:
		return nil, fmt.Errorf("server %s: unknown framing %d", addr, cfg.framing)
	case cfg.maxMessage <= 0:
		return nil, fmt.Errorf("server %s: max message %d must be positive", addr, cfg.maxMessage)
	case cfg.maxQueue <= 0:
		return nil, fmt.Errorf("server %s: max queue %d must be positive", addr, cfg.maxQueue)
	}
	if cfg.maxQueue < cfg.maxMessage+1 {
		cfg.maxQueue = cfg.maxMessage + 1
	}
	if cfg.loops <= 0 {
		cfg.loops = 1
	}
	log := cfg.log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		pauseHigh: min(pauseMax, cfg.maxQueue/2),
		log:       log,
		conns:     make(map[uint64]*Conn),
		stopCh:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.pauseLow = s.pauseHigh / 2
	var inherited *os.File
	if !cfg.noActivation {
		f, ta, err := inheritedListener(addr)
		if err != nil {
			return nil, err
		}
		if f != nil {
			inherited, s.activated = f, true
			log.Info("using the listening socket passed by systemd", "addr", ta.String(), "fd", f.Name())
		}
	}
	var err error
	if cfg.engine != EngineNet {
		s.eng, s.addr, err = newURingEngine(s, addr, inherited)
		switch {
		case err == nil:
		case cfg.engine == EngineAuto && errors.Is(err, ErrEngineUnavailable):
			log.Info("io_uring unavailable, using the net engine", "err", err)
		default:
			if inherited != nil {
				inherited.Close()
			}
			return nil, err
		}
	}
	if s.eng == nil {
		var lns []net.Listener
		if inherited != nil {
			ln, err := net.FileListener(inherited) // dups
			inherited.Close()
			if err != nil {
				return nil, fmt.Errorf("listen %s: inherited socket: %w", addr, err)
			}
			lns = []net.Listener{ln}
		}
		s.eng, s.addr, err = newNetEngine(s, addr, lns)
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Activated reports whether the server serves a listening socket passed by
// systemd (socket activation, e.g. socketley add --listen) instead of one it
// bound itself.
func (s *Server) Activated() bool { return s.activated }

// Addr returns the address the server is bound to, with the real port when
// New was given port 0.
func (s *Server) Addr() net.Addr { return s.addr }

// Port returns the bound TCP port.
func (s *Server) Port() int {
	if ta, ok := s.addr.(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}

// Engine returns the engine that serves connections: EngineURing or
// EngineNet (never EngineAuto). It may change from EngineURing to EngineNet
// once, when Run cannot set up its rings and the engine was EngineAuto.
func (s *Server) Engine() Engine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eng.name()
}

// OnConnect sets the callback run for each new connection, before any of
// its messages. Set callbacks before Run; later calls have no effect.
func (s *Server) OnConnect(f func(c *Conn)) {
	s.mu.Lock()
	s.h.connect = f
	s.mu.Unlock()
}

// OnMessage sets the callback run for each message. msg aliases a receive
// buffer that is reused as soon as the callback returns: copy it (or pass it
// to Send, which copies) to keep it. Set callbacks before Run.
func (s *Server) OnMessage(f func(c *Conn, msg []byte)) {
	s.mu.Lock()
	s.h.message = f
	s.mu.Unlock()
}

// OnDisconnect sets the callback run exactly once per connection after its
// socket is closed, whoever closed it. Set callbacks before Run.
func (s *Server) OnDisconnect(f func(c *Conn)) {
	s.mu.Lock()
	s.h.disconnect = f
	s.mu.Unlock()
}

// Broadcast sends msg (framed as by Conn.Send) to every open connection
// except those listed. Connections accepted during the call may or may not
// receive it; a slow consumer is closed as Send describes.
func (s *Server) Broadcast(msg []byte, except ...*Conn) {
	for _, c := range s.Conns() {
		skip := false
		for _, e := range except {
			if e == c {
				skip = true
				break
			}
		}
		if !skip {
			_ = c.Send(msg)
		}
	}
}

// Conns returns a snapshot of the open connections, in no particular order.
func (s *Server) Conns() []*Conn {
	s.connsMu.Lock()
	out := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	s.connsMu.Unlock()
	return out
}

// NumConns returns the number of open connections.
func (s *Server) NumConns() int {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return len(s.conns)
}

func (s *Server) addConn(c *Conn) {
	s.connsMu.Lock()
	s.conns[c.id] = c
	s.connsMu.Unlock()
}

func (s *Server) removeConn(c *Conn) {
	s.connsMu.Lock()
	delete(s.conns, c.id)
	s.connsMu.Unlock()
}

// chunkSize is the size of the pooled chunks that send queues are made of.
const chunkSize = 64 << 10

// getChunk returns an empty chunk of chunkSize bytes, from the pool if any.
func (s *Server) getChunk() []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, chunkSize)
}

// putChunk returns a chunk the kernel and the engine are done with.
func (s *Server) putChunk(b []byte) {
	if cap(b) == chunkSize {
		b = b[:0]
		s.bufs.Put(&b)
	}
}

func (s *Server) newConn(e engine, remote net.Addr) *Conn {
	return &Conn{id: s.nextID.Add(1), srv: s, eng: e, remote: remote}
}

// Run serves connections until ctx is done or Shutdown is called, and
// returns once every connection is closed and every ring, fd and goroutine
// of the server is released. When ctx ends, Run shuts down gracefully
// within WithShutdownTimeout. It returns nil after a shutdown, the setup
// error when serving cannot start, the attach error under
// WithAttachRequired, and ErrServerClosed when called twice or after
// Shutdown.
//
// When the process is a managed socketley unit (sdk.Managed), Run attaches
// it to the daemon as a server on the bound port once serving has started.
// A failed attach is logged and serving goes on, unless WithAttachRequired.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return ErrServerClosed
	}
	h := s.h
	if h.connect == nil {
		h.connect = func(*Conn) {}
	}
	if h.message == nil {
		h.message = func(*Conn, []byte) {}
	}
	if h.disconnect == nil {
		h.disconnect = func(*Conn) {}
	}
	raw := h.message
	if !s.cfg.noRecover {
		h = s.guard(h)
		h.recover = true
	}
	h.rawMessage = raw
	err := s.eng.start(h)
	if err != nil && s.cfg.engine == EngineAuto && s.eng.name() == EngineURing {
		s.log.Warn("io_uring setup failed, using the net engine", "err", err)
		var ne engine
		ne, err = s.eng.(interface{ fallback() (engine, error) }).fallback()
		if err == nil {
			s.eng = ne
			err = s.eng.start(h)
		}
	}
	if err != nil {
		s.state = stateClosed
		s.eng.closeListeners()
		close(s.done)
		s.mu.Unlock()
		return err
	}
	s.state = stateRunning
	eng := s.eng
	s.mu.Unlock()

	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	var bg sync.WaitGroup
	attachErr := make(chan error, 1)
	if s.cfg.attach && sdk.Managed() {
		bg.Add(1)
		go func() {
			defer bg.Done()
			attachErr <- s.attach(actx)
		}()
	}
	go func() {
		eng.wait()
		acancel()
		bg.Wait()
		close(s.done)
	}()

	var runErr error
	for {
		select {
		case <-s.done:
			return runErr
		case err := <-attachErr:
			if err != nil && s.cfg.attachRequired {
				runErr = err
				s.beginShutdown()
			} else if err != nil {
				s.log.Error("attach to the socketley daemon failed; serving anyway", "port", s.Port(), "err", err)
			}
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.shutdownTimeout)
			_ = s.Shutdown(sctx)
			cancel()
			<-s.done
			return runErr
		}
	}
}

// guard wraps the callbacks so that a panic in one is recovered, logged
// with its stack, and closes that connection; see WithoutPanicRecovery.
func (s *Server) guard(h handlers) handlers {
	connect, message, disconnect := h.connect, h.message, h.disconnect
	return handlers{
		connect: func(c *Conn) {
			defer s.recoverCallback(c, "OnConnect")
			connect(c)
		},
		message: func(c *Conn, msg []byte) {
			defer s.recoverCallback(c, "OnMessage")
			message(c, msg)
		},
		disconnect: func(c *Conn) {
			defer s.recoverCallback(c, "OnDisconnect")
			disconnect(c)
		},
	}
}

// recoverCallback, deferred around a callback, recovers its panic, logs it
// with the stack and closes c at once (a no-op after OnDisconnect).
func (s *Server) recoverCallback(c *Conn, callback string) {
	v := recover()
	if v == nil {
		return
	}
	s.log.Error("panic in "+callback+" callback, closing the connection",
		"conn", c.id, "remote", addrString(c.remote), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	c.abortNow()
}

func (s *Server) attach(ctx context.Context) error {
	err := sdk.Attach(ctx, s.cfg.attachName, sdk.TypeServer, s.Port())
	if err != nil {
		return fmt.Errorf("attach server port %d: %w", s.Port(), err)
	}
	return nil
}

// beginShutdown starts a graceful shutdown once; it reports whether the
// server was running (so there is something to wait for).
func (s *Server) beginShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateNew:
		s.state = stateClosed
		s.eng.closeListeners()
		close(s.stopCh)
		close(s.done)
		return false
	case stateClosed:
		return !s.stopping // closed by a failed Run: nothing to wait for
	}
	if !s.stopping {
		s.stopping = true
		close(s.stopCh)
		s.eng.stop()
	}
	return true
}

// Shutdown stops the server gracefully: it stops accepting, writes the data
// queued for each connection, closes every connection (running
// OnDisconnect), and releases rings, fds and goroutines. It returns nil once
// all that is done, or ctx's error if ctx ends first; in that case the
// remaining connections are closed without flushing before it returns. A
// server that never ran just releases its listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	eng.abortAll()
	<-s.done
	return ctx.Err()
}

// Done returns a channel closed once the server has shut down and released
// everything.
func (s *Server) Done() <-chan struct{} { return s.done }
