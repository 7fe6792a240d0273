// Package server is the TCP server wrapper of the socketley Go SDK: a
// message-oriented server served by io_uring event loops on Linux, with a
// fallback to Go's netpoller that keeps the same API everywhere.
//
// # Example
//
//	srv, err := server.New(server.PortAddr(7070)) // ":7070"
//	if err != nil {
//		return err // bad address, port in use, ...
//	}
//	srv.OnMessage(func(c *server.Conn, msg []byte) {
//		c.Send(msg) // echo; Send copies msg
//	})
//	return srv.Run(ctx) // until ctx is done or srv.Shutdown
//
// # Framing and buffers
//
// In Lines framing (the default) each message is one line without its
// '\n', and Send appends '\n'; Raw framing passes bytes through. The msg
// slice given to OnMessage aliases a receive buffer that is reused as soon
// as the callback returns: copy it to keep it. A message longer than
// WithMaxMessage (1 MiB by default) is logged and its connection closed;
// memory per connection never exceeds that limit plus one receive buffer.
//
// # Callbacks and concurrency
//
// Callbacks of one connection never run concurrently and run in order:
// OnConnect, then OnMessage for each message, then OnDisconnect exactly
// once. Callbacks of different connections may run concurrently: with the
// io_uring engine, connections are spread over WithLoops event loops (one
// OS thread each) and a loop runs the callbacks of its connections one
// after another, so a slow callback delays every connection of its loop;
// hand long work to a goroutine and Send the result later. With the net
// engine each connection has its own goroutine. Conn methods and
// Server.Broadcast are safe from any goroutine. Do not call Shutdown from a
// callback and wait for it: it waits for the callbacks to return.
//
// # Per-connection data
//
// Conn.Set stores a value under a key for the life of the connection, and
// the generic Value reads it back with its type: n, _ := Value[int](c, "count")
// gives 0 and false for a key never set instead of the panic that
// c.Get("count").(int) would raise.
//
// # Logging and panics
//
// Connection-level events (a message over the limit, a slow consumer, a
// recovered panic, a failed attach, an engine fallback) are logged to the
// WithLogger logger, or to slog.Default() without one. A panic in a
// callback is recovered: it is logged at Error level with its stack, the
// connection whose callback panicked is closed at once, and the server
// serves every other connection on. WithoutPanicRecovery lets it crash the
// process instead.
//
// # Sending and backpressure
//
// Send copies the message into the connection's queue and returns at
// once. Each connection has at most one write in flight; messages queued
// meanwhile are coalesced into the next write. The queue is capped by
// WithMaxQueue (4 MiB by default); a peer that does not read fast enough to
// stay under the cap is a slow consumer: Send returns ErrSlowConsumer, the
// queued data is dropped and the connection is closed. Both engines stop
// reading from a connection while more than 64 KiB (or half the cap, if
// smaller) are queued for it, and resume when half of that is written, so
// a request/response peer that sends faster than it reads is slowed down
// by TCP instead of being closed.
//
// Sending from the callback is the cheap path: on the io_uring engine a
// Send made by a loop's own goroutine (from OnMessage, OnConnect or
// OnDisconnect, to a connection of that loop) takes no lock; the loop
// accounts the batch once its callbacks return. A Send from another
// goroutine that races with such a batch can then pass the cap by at most
// what that batch queued.
//
// # Engines
//
// The io_uring engine runs one event loop per loop count, each on a locked
// OS thread with its own ring (IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN)
// and its own SO_REUSEPORT listener, using multishot accept, multishot recv
// over a provided buffer ring and coalesced sends; cross-goroutine sends
// wake a loop through an eventfd. Under load a loop lets completions gather
// for up to 100 µs (WithBatchWait). The server changes no process-wide
// setting by default; WithRaiseGOMAXPROCS lets it keep GOMAXPROCS above the
// loop count while it runs, and says why a busy server may want that.
// It needs Linux 6.1 or newer with
// io_uring allowed (kernel.io_uring_disabled=0, no seccomp filter blocking
// it). Otherwise, or with SOCKETLEY_ENGINE=net, the net engine serves the
// same API with a goroutine per connection. Server.Engine reports which one
// runs.
//
// # Port in use
//
// New fails with an error matching syscall.EADDRINUSE when something
// already listens on the port, on both engines, including another server of
// this package (another copy of the program). The io_uring engine gives
// each loop its own SO_REUSEPORT listener so that the kernel spreads
// connections over the loops; it first claims the port with a probe socket
// bound without SO_REUSEPORT, which the kernel refuses while anything
// listens there. Two copies started at the very same instant can both get
// past the probe, and a foreign program of the same user that sets
// SO_REUSEPORT itself can still join the io_uring engine's listeners (not
// the net engine's). WithReusePort asks for sharing: without the probe, on
// both engines, so copies of the program that all set it serve one port
// together.
//
// # Socket activation
//
// When systemd starts the process with listening sockets (LISTEN_FDS and
// LISTEN_PID naming this process, sd_listen_fds(3)) — a socketley runtime
// added with --listen, or any service with a .socket unit — New serves the
// inherited socket that matches its address (same port, or any port for
// port 0; an empty or wildcard host matches any) instead of binding one, on
// both engines: the io_uring loops share the one socket, the net engine
// accepts on it. Because systemd keeps the socket open while the process
// restarts, crashes or is replaced, clients connecting meanwhile wait in
// its queue and are served by the next process instead of being refused.
// Without a matching inherited socket New binds as usual.
// Server.Activated reports which happened; WithoutSocketActivation turns
// the lookup off.
//
// # Socketley daemon
//
// When the process runs as a managed socketley unit (SOCKETLEY_MANAGED is
// set), Run attaches it to the daemon as a server on the bound port. A failed
// attach is logged and the server keeps serving (the daemon's health check
// still probes the port); WithAttachRequired makes it fatal and
// WithoutAttach turns the attach off.
//
// Run does not attach a process that is not managed (started by hand, or by
// another supervisor). Such a program attaches itself, after New so that
// the port is known, and detaches once Run has returned:
//
//	if !sdk.Managed() {
//		if err := sdk.Attach(ctx, "kv", sdk.TypeServer, srv.Port()); err != nil {
//			log.Printf("not attached: %v", err) // no daemon: serve anyway
//		} else {
//			// ctx is done once Run returns: Detach gets a context of its own.
//			defer sdk.Detach(context.Background())
//		}
//	}
//	return srv.Run(ctx)
//
// The server, like package sdk, installs no signal handler: a program turns
// SIGTERM into the end of Run's context itself (signal.NotifyContext).
//
// docs/sdk.md in the socketley repository walks through a complete service.
package server
