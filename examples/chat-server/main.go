// Command chat-server is a multi-client line chat on the socketley SDK server
// wrapper (github.com/socketley/socketley/sdk/server): every line a client
// sends is broadcast to every *other* connected client, exactly once, as
// "[NICK] line". Clients are called user-ID until they send "/nick NAME";
// the nickname is per-connection data (Conn.Set, server.Value).
//
// Build and run it standalone (default port 7072, or -port / $PORT):
//
//	go build -o chat-server ./examples/chat-server
//	./chat-server -port 7072
//	# two terminals:  nc 127.0.0.1 7072   (or bash: exec 3<>/dev/tcp/127.0.0.1/7072)
//
// Run it as a managed runtime:
//
//	socketley add ./chat-server --name chat -s -- -port 7072
//	socketley ls          # TYPE server, PORT 7072: the server attached itself
//	socketley logs chat
//
// When SOCKETLEY_MANAGED is set (socketley sets it in the unit), server.Run
// attaches the process to the daemon as a server on its port; nothing in this
// file deals with it. SIGTERM (socketley stop) closes every connection
// gracefully and exits 0. If the process is killed, systemd restarts it and
// the clients reconnect (the chat keeps no history).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/socketley/socketley/sdk"
	"github.com/socketley/socketley/sdk/server"
)

func main() {
	port := flag.Int("port", envPort(7072), "TCP port to listen on (default: $PORT, else 7072; 0 picks a free port)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*port, logger); err != nil {
		logger.Error("chat-server failed", "err", err)
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

// nick returns the connection's nickname (per-connection data).
func nick(c *server.Conn) string {
	if n, ok := server.Value[string](c, "nick"); ok {
		return n
	}
	return "user-" + strconv.FormatUint(c.ID(), 10)
}

func run(port int, log *slog.Logger) error {
	// The context ends on SIGTERM/SIGINT; Run then shuts down gracefully.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := server.New(server.PortAddr(port), server.WithLogger(log))
	if err != nil {
		return err
	}
	// Port checks connect and hang up without a word (so does the socketley
	// daemon's health check where it cannot list listening sockets and falls
	// back to connecting): only clients that have said something are logged,
	// and there are no join/leave notices that such checks would spam.
	srv.OnConnect(func(c *server.Conn) {
		_ = c.Send(fmt.Appendf(nil, "* welcome %s; /nick NAME to rename", nick(c)))
	})
	srv.OnMessage(func(c *server.Conn, msg []byte) {
		line := strings.TrimRight(string(msg), "\r") // a copy: msg is reused after we return
		if said, _ := server.Value[bool](c, "said"); !said {
			c.Set("said", true)
			log.Info("client active", "nick", nick(c), "remote", c.RemoteAddr(), "online", srv.NumConns())
		}
		if name, ok := strings.CutPrefix(line, "/nick "); ok {
			name = strings.TrimSpace(name)
			if name == "" || strings.ContainsAny(name, " \t[]") {
				_ = c.Send([]byte("* usage: /nick NAME (no spaces or brackets)"))
				return
			}
			old := nick(c)
			c.Set("nick", name)
			srv.Broadcast(fmt.Appendf(nil, "* %s is now %s", old, name), c)
			_ = c.Send(fmt.Appendf(nil, "* you are now %s", name))
			return
		}
		if line == "" {
			return
		}
		// Everyone but the sender gets it, once.
		srv.Broadcast(fmt.Appendf(nil, "[%s] %s", nick(c), line), c)
	})
	srv.OnDisconnect(func(c *server.Conn) {
		if said, _ := server.Value[bool](c, "said"); said {
			log.Info("client gone", "nick", nick(c))
		}
	})

	log.Info("chat-server listening", "addr", srv.Addr().String(), "engine", srv.Engine(), "pid", os.Getpid(),
		"managed", sdk.Managed())
	if err := srv.Run(ctx); err != nil {
		return err
	}
	log.Info("chat-server stopped")
	return nil
}
