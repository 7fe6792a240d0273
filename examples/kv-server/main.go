// Command kv-server is the key-value service that docs/sdk.md builds step
// by step: SET, GET and DEL over newline-delimited TCP, a request count per
// connection, every change announced to the other clients, a graceful
// shutdown on SIGTERM, and an attach to the socketley daemon both when
// started by hand and as a managed runtime. The walkthrough shows this file
// in full and a test keeps the two identical, builds the program and runs
// it.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socketley/socketley/sdk"
	"github.com/socketley/socketley/sdk/server"
)

// store is the data every connection shares. Callbacks of different
// connections run concurrently, so it has its own lock.
type store struct {
	mu sync.Mutex
	m  map[string]string
}

// do runs one command line and returns the reply for the sender and, for
// a change, the notice for everyone else.
func (s *store) do(line string) (reply, notice string) {
	cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r"), " ")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.ToUpper(cmd) {
	case "SET":
		key, value, ok := strings.Cut(arg, " ")
		if !ok || key == "" {
			return "ERR usage: SET key value", ""
		}
		s.m[key] = value
		return "OK", "* set " + key
	case "GET":
		if value, ok := s.m[arg]; ok {
			return "VALUE " + value, ""
		}
		return "NIL", ""
	case "DEL":
		if _, ok := s.m[arg]; !ok {
			return "NIL", ""
		}
		delete(s.m, arg)
		return "OK", "* del " + arg
	}
	return "ERR unknown command " + cmd, ""
}

func main() {
	port := flag.Int("port", 7073, "TCP port to listen on (0 picks a free port)")
	name := flag.String("name", "kv", "name to attach under when started by hand")
	flag.Parse()
	if err := run(*port, *name); err != nil {
		slog.Error("kv-server failed", "err", err)
		os.Exit(1)
	}
}

func run(port int, name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := server.New(server.PortAddr(port), server.WithMaxMessage(64<<10))
	if err != nil {
		return err // a bad address, or the port in use
	}
	kv := &store{m: make(map[string]string)}
	srv.OnMessage(func(c *server.Conn, msg []byte) {
		if c.Unterminated() {
			return // the client died mid-line: not a command
		}
		n, _ := server.Value[int](c, "requests")
		c.Set("requests", n+1)
		reply, notice := kv.do(string(msg))
		_ = c.Send([]byte(reply))
		if notice != "" {
			srv.Broadcast([]byte(notice), c)
		}
	})
	srv.OnDisconnect(func(c *server.Conn) {
		if n, _ := server.Value[int](c, "requests"); n > 0 {
			slog.Info("client gone", "conn", c.ID(), "requests", n)
		}
	})

	if !sdk.Managed() {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := sdk.Attach(actx, name, sdk.TypeServer, srv.Port())
		cancel()
		if err != nil {
			slog.Warn("not attached to a socketley daemon; serving anyway", "err", err)
		} else {
			// Run returns once ctx is done: Detach gets a context of its own.
			defer func() { _ = sdk.Detach(context.Background()) }()
		}
	}

	slog.Info("kv-server listening", "addr", srv.Addr().String(), "engine", srv.Engine(), "managed", sdk.Managed())
	if err := srv.Run(ctx); err != nil {
		return err
	}
	slog.Info("kv-server stopped")
	return nil
}
