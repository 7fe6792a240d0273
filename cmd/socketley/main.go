// Command socketley manages small network services as transient systemd
// units: the daemon, the CLI and the control client in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/socketley/socketley/internal/cli"
	"github.com/socketley/socketley/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, daemon.Extra())
	stop()
	os.Exit(code)
}
