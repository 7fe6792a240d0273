// Command counter-server replies to every line with a per-connection counter:
// "[counter] #N: <line>". The counter lives in the connection's private data
// (Conn.Set and server.Value of the socketley SDK server wrapper), so it starts at #1 on
// every new connection and, since nothing is persisted, after every restart
// of the service.
//
// Build and run it standalone (default port 7071, or -port / $PORT):
//
//	go build -o counter-server ./examples/counter-server
//	./counter-server
//	exec 3<>/dev/tcp/127.0.0.1/7071; echo hi >&3; head -n1 <&3   # [counter] #1: hi
//
// Run it as a managed runtime:
//
//	socketley add ./counter-server --name counter -s
//	socketley stop counter && socketley start counter    # counters start again at #1
//	socketley logs counter
//
// Under socketley (SOCKETLEY_MANAGED set) server.Run attaches the process to
// the daemon as a server on its port. SIGTERM closes every connection
// gracefully and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/socketley/socketley/sdk"
	"github.com/socketley/socketley/sdk/server"
)

func main() {
	port := flag.Int("port", envPort(7071), "TCP port to listen on (default: $PORT, else 7071; 0 picks a free port)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*port, logger); err != nil {
		logger.Error("counter-server failed", "err", err)
		os.Exit(1)
	}
}

// envPort returns $PORT when it is a number, else def.
func envPort(def int) int {
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		return p
	}
	return def
}

func run(port int, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := server.New(server.PortAddr(port), server.WithLogger(log))
	if err != nil {
		return err
	}
	srv.OnMessage(func(c *server.Conn, msg []byte) {
		// Callbacks of one connection never run concurrently: no lock needed.
		// Value gives 0 for a counter never set, never a panic.
		n, _ := server.Value[int](c, "count")
		n++
		c.Set("count", n)
		if n == 1 {
			log.Info("new counter", "conn", c.ID(), "remote", c.RemoteAddr())
		}
		_ = c.Send(fmt.Appendf(nil, "[counter] #%d: %s", n, msg))
	})
	srv.OnDisconnect(func(c *server.Conn) {
		// Silent connections are port checks: not worth a log line.
		if n, _ := server.Value[int](c, "count"); n > 0 {
			log.Info("counter closed", "conn", c.ID(), "final", n)
		}
	})

	log.Info("counter-server listening", "addr", srv.Addr().String(), "engine", srv.Engine(), "pid", os.Getpid(),
		"managed", sdk.Managed())
	if err := srv.Run(ctx); err != nil {
		return err
	}
	log.Info("counter-server stopped")
	return nil
}
