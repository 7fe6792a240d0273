package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// Framing says how the byte stream of a connection is cut into messages.
type Framing int

const (
	// Lines delivers newline-delimited messages with the '\n' removed (a
	// '\r' before it is kept), and Send appends '\n' to every message. A
	// final message without '\n' is delivered when the peer ends the stream,
	// with Conn.Unterminated true (WithDropUnterminated drops it instead).
	// This is the default.
	Lines Framing = iota
	// Raw delivers bytes as they arrive, in chunks of whatever size the
	// kernel returned (at most one receive buffer); Send writes msg as is.
	Raw
)

// String returns "lines" or "raw".
func (f Framing) String() string {
	if f == Raw {
		return "raw"
	}
	return "lines"
}

// Engine names the I/O engine that serves connections.
type Engine string

const (
	// EngineAuto uses io_uring when the kernel allows it and falls back to
	// Go's netpoller otherwise. This is the default.
	EngineAuto Engine = "auto"
	// EngineURing requires io_uring; New fails when it is unavailable.
	EngineURing Engine = "uring"
	// EngineNet uses Go's netpoller (package net), on every platform.
	EngineNet Engine = "net"
)

// EnvEngine is the environment variable that, when set to auto, uring or
// net, overrides WithEngine: an operator's switch for machines where
// io_uring is blocked or misbehaves.
const EnvEngine = "SOCKETLEY_ENGINE"

// Defaults.
const (
	// DefaultMaxMessage is the largest message accepted in Lines framing.
	DefaultMaxMessage = 1 << 20
	// DefaultMaxQueue is the default cap on bytes queued for one connection.
	DefaultMaxQueue = 4 << 20
	// DefaultShutdownTimeout bounds the graceful shutdown that Run performs
	// when its context is cancelled.
	DefaultShutdownTimeout = 5 * time.Second
	// DefaultBatchWait is the default of WithBatchWait.
	DefaultBatchWait = 100 * time.Microsecond
)

// Option configures a Server; pass options to New.
type Option func(*config)

type config struct {
	framing         Framing
	maxMessage      int
	maxQueue        int
	engine          Engine
	log             *slog.Logger
	loops           int
	attach          bool
	attachName      string
	attachRequired  bool
	shutdownTimeout time.Duration
	raiseProcs      bool
	batchWait       time.Duration
	noActivation    bool
	reusePort       bool
	noRecover       bool
	dropUnterm      bool
	// sqEntries is the SQ size of each ring (tests shrink it to exercise
	// the full-queue path).
	sqEntries uint32
	// testRingFailure makes io_uring loop setup fail (tests of the Run-time fallback).
	testRingFailure error
	// testOnPause, when set, is called each time an engine stops reading
	// from c because too much output is queued (tests wait for it).
	testOnPause func(c *Conn)
}

func defaultConfig() config {
	return config{
		framing:         Lines,
		maxMessage:      DefaultMaxMessage,
		maxQueue:        DefaultMaxQueue,
		engine:          EngineAuto,
		loops:           runtime.GOMAXPROCS(0),
		attach:          true,
		attachName:      filepath.Base(os.Args[0]),
		shutdownTimeout: DefaultShutdownTimeout,
		batchWait:       DefaultBatchWait,
		sqEntries:       1024,
	}
}

// WithFraming selects Lines (default) or Raw framing.
func WithFraming(f Framing) Option { return func(c *config) { c.framing = f } }

// WithMaxMessage sets the largest message accepted in Lines framing
// (default 1 MiB, without the newline). A connection whose message grows
// past it is logged and closed; the server never buffers more than this
// (plus one receive buffer) per connection.
func WithMaxMessage(n int) Option { return func(c *config) { c.maxMessage = n } }

// WithMaxQueue caps the bytes queued for sending to one connection and not
// yet written to its socket (default 4 MiB, raised to hold at least one
// message of the maximum size). A Send that would exceed it treats the peer
// as a slow consumer: it returns ErrSlowConsumer, the queued data is
// dropped, and the connection is closed.
func WithMaxQueue(n int) Option { return func(c *config) { c.maxQueue = n } }

// WithEngine selects EngineAuto (default), EngineURing or EngineNet.
// $SOCKETLEY_ENGINE overrides it when set.
func WithEngine(e Engine) Option { return func(c *config) { c.engine = e } }

// WithLogger sets the logger for connection-level events (oversize message,
// slow consumer, recovered panic, attach failure, engine fallback). Without
// it, or with nil, they go to slog.Default() as it is when New is called. To
// discard them, pass slog.New(slog.DiscardHandler).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithLoops sets the number of io_uring event loops, each on its own locked
// OS thread with its own SO_REUSEPORT listener (default GOMAXPROCS); see
// "Port in use" in the package documentation for how the port is kept from
// other processes. The net engine ignores it.
func WithLoops(n int) Option { return func(c *config) { c.loops = n } }

// WithReusePort lets the port be shared with other processes: New does not
// first claim the port with a probe socket (io_uring engine), and the net
// engine's listener gets SO_REUSEPORT too (on Linux), so copies of the
// program that all set it bind the same port, and the kernel spreads new
// connections over all of them by a hash of the peer's address. Without it
// (the default) New fails with an error matching syscall.EADDRINUSE when
// anything listens on the port, on both engines. Use it only when every
// process on the port serves the same data, or for a hand-over between an
// old and a new process.
func WithReusePort() Option { return func(c *config) { c.reusePort = true } }

// WithoutPanicRecovery lets a panic in a callback crash the process, as an
// unrecovered panic in any goroutine does. By default the server recovers
// it: the panic is logged at Error level with its stack, the connection
// whose callback panicked is closed at once (what is still queued for it is
// dropped, and OnDisconnect runs as for any close), and every other
// connection is served on. A panic in OnDisconnect is logged the same way.
func WithoutPanicRecovery() Option { return func(c *config) { c.noRecover = true } }

// WithDropUnterminated drops, in Lines framing, the final bytes of a stream
// that the peer ended without a '\n' (a peer that died mid-line, say),
// instead of delivering them to OnMessage as a last message; Conn.Unterminated
// tells the two apart when they are delivered. Raw framing ignores it.
func WithDropUnterminated() Option { return func(c *config) { c.dropUnterm = true } }

// WithAttach sets the name reported to the socketley daemon when the
// process runs as a managed unit (default: the program's base name;
// $SOCKETLEY_NAME, which the daemon sets, takes precedence).
func WithAttach(name string) Option {
	return func(c *config) { c.attach, c.attachName = true, name }
}

// WithoutAttach disables the automatic attach of a managed process.
func WithoutAttach() Option { return func(c *config) { c.attach = false } }

// WithAttachRequired makes a failed automatic attach fatal: Run shuts the
// server down and returns the error. By default the failure is logged and
// the server keeps serving, because the daemon's health check still sees
// the port and a restart of the daemon must not take services down.
func WithAttachRequired() Option { return func(c *config) { c.attachRequired = true } }

// WithShutdownTimeout bounds the graceful shutdown that Run performs when
// its context is cancelled (default 5 s); after it, connections are closed
// without flushing.
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) { c.shutdownTimeout = d }
}

// WithRaiseGOMAXPROCS lets the io_uring engine raise GOMAXPROCS, a
// process-wide setting, while the server runs: to at least the loop count
// plus one. By default the server leaves GOMAXPROCS alone. Why one may want
// it: each loop spends its idle time blocked in io_uring_enter on its own
// thread, holding a P; with every P held by a loop (WithLoops defaults to
// GOMAXPROCS), the Go scheduler's monitor wakes up every 20 µs to take a
// loop's P away for the rest of the program, which costs about a tenth of
// a CPU under load. Raising GOMAXPROCS by one (this option, or the program
// itself, or WithLoops(runtime.GOMAXPROCS(0)-1)) gives the rest of the
// program a P of its own. The previous value is restored when the server
// stops, unless something else changed it meanwhile. The net engine
// ignores it.
func WithRaiseGOMAXPROCS() Option { return func(c *config) { c.raiseProcs = true } }

// WithBatchWait sets how long an io_uring loop that serves several
// connections lets completions gather before it processes them (default
// 100 µs; 0 turns batching off). The loop asks the kernel for a batch of up
// to 32 completions and returns early once the wait has lasted d and at
// least one completion is there; a completion that arrives after d is
// handled at once. Under load this means fewer system calls, wake-ups and
// TCP segments per message; the price is up to d of added latency for an
// event that arrives just after the loop started waiting. A loop with a
// single connection never batches. It needs Linux 6.12
// (IORING_FEAT_MIN_TIMEOUT); older kernels and the net engine ignore it.
func WithBatchWait(d time.Duration) Option { return func(c *config) { c.batchWait = d } }

// PortAddr returns the listen address ":port" (every address, IPv6 and
// IPv4) for New. It builds an address; Server.Port returns the port a
// server is bound to.
func PortAddr(port int) string { return ":" + strconv.Itoa(port) }
