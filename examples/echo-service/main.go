// Command echo-service is a minimal TCP echo server on port 7070, written with
// the standard library, plus one call to sdk.Attach so that the socketley
// daemon knows what it is, and server.Listen, which takes the listening
// socket systemd passes (socketley add --listen) or binds one. It is the
// "works standalone and as a managed binary" example.
//
// Build and run it standalone:
//
//	go build -o echo-service ./examples/echo-service
//	./echo-service -port 7070          # or PORT=7070 ./echo-service
//	exec 3<>/dev/tcp/127.0.0.1/7070; echo hello >&3; head -n1 <&3
//
// Standalone it attaches to a running socketley daemon (it then shows in
// `socketley ls` with MODE attach) and keeps serving when there is none.
//
// Run it as a managed runtime, a transient systemd unit restarted by systemd:
//
//	socketley add ./echo-service --name echo-svc -s -- -port 7070
//	socketley ps
//	socketley logs echo-svc
//
// Under socketley the daemon sets SOCKETLEY_MANAGED, SOCKETLEY_NAME and
// SOCKETLEY_SOCKET; sdk.Attach then re-attaches the unit's entry (type
// server, port 7070) instead of creating a new one. Logs go to stderr, which
// systemd sends to the journal. SIGTERM (socketley stop) closes the listener,
// gives the open connections 200 ms to have what they sent echoed, closes
// them and exits 0: under add --listen a restart or an upgrade then costs no
// client a refused or reset connection.
//
// With --listen systemd holds the port, so clients that connect while the
// program restarts (socketley restart, upgrade, a crash) wait instead of
// being refused:
//
//	socketley add ./echo-service --name echo-svc -s --listen 7070 -- -port 7070
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/socketley/socketley/sdk"
	"github.com/socketley/socketley/sdk/server"
)

func main() {
	port := flag.Int("port", envPort(7070), "TCP port to listen on (default: $PORT, else 7070; 0 picks a free port)")
	name := flag.String("name", "echo-service", "name to attach under when not managed ($SOCKETLEY_NAME wins)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*port, *name); err != nil {
		log.Print(err)
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

// drainQuiet is how long open connections are still served after SIGTERM.
const drainQuiet = 200 * time.Millisecond

func run(port int, name string) error {
	// Catch SIGTERM/SIGINT for good: the handler is never removed, so a signal
	// that arrives while we shut down cannot kill the process half-way.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	// The socket systemd passed (add --listen) when there is one, else a new one.
	ln, err := server.Listen(":" + strconv.Itoa(port))
	if err != nil {
		return err
	}
	port = ln.Addr().(*net.TCPAddr).Port
	mode := "standalone"
	if sdk.Managed() {
		mode = "managed as " + os.Getenv(sdk.EnvName)
	}
	log.Printf("listening on %s (%s, pid %d)", ln.Addr(), mode, os.Getpid())

	// Tell the daemon what we are. Managed: this re-attaches our unit's entry.
	// Standalone: it adds an "attach" entry that lives as long as this process.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := sdk.Attach(ctx, name, sdk.TypeServer, port); err != nil {
		log.Printf("not attached to a socketley daemon (%v); serving anyway", err)
	} else {
		log.Printf("attached to the socketley daemon as a server on port %d", port)
		defer func() { _ = sdk.Detach(context.Background()) }() // no-op when managed
	}
	cancel()

	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	go func() {
		sig := <-sigs
		log.Printf("%v: shutting down", sig)
		_ = ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := io.Copy(c, c) // echo until the peer closes (or the drain ends)
			_ = c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
				log.Printf("%s: %v", c.RemoteAddr(), err)
			}
			if n > 0 { // silent connections are port checks: not worth a log line
				log.Printf("%s: echoed %d bytes", c.RemoteAddr(), n)
			}
		}()
	}

	// Shut down gracefully: no new connections (under add --listen they wait
	// in systemd's socket for the next process); each open one has what it
	// sends within drainQuiet echoed, then it is closed. Closing at once
	// would make the kernel answer a request that arrived but was not read
	// yet with a reset.
	mu.Lock()
	for c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(drainQuiet))
	}
	mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("connections did not close within 5s")
	}
	log.Print("stopped")
	return nil
}
