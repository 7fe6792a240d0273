// Command socketley manages small network services as transient systemd
// units: the daemon, the CLI and the control client in one binary.
//
// No signal handler is installed here: a client command interrupted with
// Ctrl-C ends as any command does (the SIGINT default), and the commands
// that must end cleanly on SIGINT/SIGTERM — the daemon, logs -f — install
// their own (installing one costs every command's start).
package main

import (
	"context"
	"os"

	"github.com/socketley/socketley/internal/cli"
	"github.com/socketley/socketley/internal/daemon"
	"github.com/socketley/socketley/internal/export"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, daemon.Extra(), export.Extra()))
}
