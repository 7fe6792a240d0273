// Package daemon is the `socketley daemon` command: it turns the flags into
// a manager.Config and runs the manager. It is kept apart from internal/cli
// so that the client commands never depend on the daemon's packages
// (internal/deps guards it); cmd/socketley joins the two.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/cli"
	"github.com/socketley/socketley/internal/metrics"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/version"
	"github.com/socketley/socketley/manager"
	"github.com/socketley/socketley/units"
)

// Command returns the daemon command; g gives the root's --socket, --user
// and --system once they are parsed.
func Command(g cli.Globals) *cobra.Command {
	var stateDir, logLevel, group string
	var tick time.Duration
	var backoff string
	var recoverState bool
	var maxPerUser int
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the socketley daemon in the foreground",
		Long: `Run the daemon in the foreground, logging to stderr (the journal when run as a
unit). --system (the default for root) uses the system manager, the socket
/run/socketley/socketley.sock and the state in /var/lib/socketley; --user (the
default for everyone else) uses the user's systemd manager over the session
bus ($DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus), the socket
$XDG_RUNTIME_DIR/socketley/socketley.sock and the state in
$XDG_STATE_HOME/socketley. SIGTERM or SIGINT stops the daemon without stopping
any managed unit. --metrics-listen (or $SOCKETLEY_METRICS_LISTEN) serves
Prometheus metrics at http://ADDR/metrics (docs/metrics.md).`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode := g.Mode()
			if mode == paths.Auto {
				mode = paths.User
				if os.Geteuid() == 0 {
					mode = paths.System
				}
			}
			if mode == paths.System && os.Geteuid() != 0 {
				return cli.UsageError("daemon --system must run as root; use socketley daemon --user")
			}
			if maxPerUser < 0 {
				return cli.UsageError("daemon: --max-runtimes-per-user %d: use a positive number, or 0 for no limit", maxPerUser)
			}
			level := slog.LevelInfo
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return cli.UsageError("daemon: --log-level %q: use debug, info, warn or error", logLevel)
			}
			if stateDir == "" {
				stateDir = paths.SystemStateDir
				if mode == paths.User {
					d, err := paths.UserStateDir()
					if err != nil {
						return err
					}
					stateDir = d
				}
			}
			fromEnv := !cmd.Flags().Changed("metrics-listen")
			if fromEnv {
				metricsAddr = strings.TrimSpace(os.Getenv(MetricsEnv))
			}
			log := newLogger(g.Stderr(), level)
			var metricsLn net.Listener
			if metricsAddr != "" {
				name := "--metrics-listen"
				if fromEnv {
					name = MetricsEnv
				}
				ln, err := listenMetrics(name, metricsAddr)
				switch {
				case err != nil && !fromEnv:
					return cli.UsageError("daemon: %v", err)
				case err != nil:
					// The packaged service's environment file: the
					// runtimes matter more than their metrics, and a
					// daemon that exits here would be restarted into
					// the same error until systemd gives up on it.
					log.Error("metrics are off: "+err.Error(), "fix", "correct "+MetricsEnv+" in the daemon's environment file and restart the daemon")
				default:
					defer ln.Close()
					metricsLn = ln
				}
			}
			scope := units.System
			if mode == paths.User {
				scope = units.User
			}
			requests := &metrics.Requests{}
			m, err := manager.New(manager.Config{
				Mode:               mode,
				Socket:             paths.DaemonSocket(g.Socket(), mode),
				StateDir:           stateDir,
				SocketGroup:        group,
				Dial:               manager.UnitsDialer(scope),
				Tick:               tick,
				RestartBackoff:     backoff,
				Recover:            recoverState,
				MaxRuntimesPerUser: maxPerUser,
				Version:            version.Info(),
				Logger:             log,
				OnRequest:          requests.Observe,
			})
			if err != nil {
				return cli.UsageError("daemon: %v", err)
			}
			// SIGTERM or SIGINT stop the daemon (never the units).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if metricsLn != nil {
				done := serveMetrics(ctx, metricsLn, m, requests, log)
				defer done()
			}
			if err := m.Run(ctx); err != nil {
				return cli.ExitError(2, fmt.Errorf("daemon: %w", err))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&stateDir, "state-dir", "", "state directory (default /var/lib/socketley, or $XDG_STATE_HOME/socketley with --user)")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&group, "group", "socketley", "system mode: group whose members may use the control socket")
	fl.DurationVar(&tick, "tick", manager.DefaultTick, "health-check interval")
	fl.BoolVar(&recoverState, "recover", false, "start from the last good copy of the registry (registry.json.prev and its journal) when registry.json is unreadable; the unreadable file is moved aside, not overwritten")
	fl.IntVar(&maxPerUser, "max-runtimes-per-user", manager.DefaultMaxRuntimesPerUser, "how many runtimes one non-root user may register (0 = no limit; root is not limited)")
	fl.StringVar(&backoff, "restart-backoff", manager.BackoffAuto,
		"who delays the restarts of a crash-looping runtime: auto (systemd's RestartSteps= on systemd 254 or later, else the daemon), systemd or daemon (docs/restart-policy.md)")
	fl.StringVar(&metricsAddr, "metrics-listen", "", "serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9559 (default $"+MetricsEnv+", else off; docs/metrics.md)")
	return cmd
}

// listenMetrics checks the metrics address (given by name: the flag or the
// variable) and listens on it; the error names it and what to do.
func listenMetrics(name, addr string) (net.Listener, error) {
	if err := metrics.ParseAddr(addr); err != nil {
		return nil, fmt.Errorf("%s: %w; use HOST:PORT, e.g. 127.0.0.1:9559", name, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, addr, err)
	}
	return ln, nil
}

// MetricsEnv is the environment variable read for --metrics-listen when the
// flag is not given (the packaged service's environment file sets it).
const MetricsEnv = "SOCKETLEY_METRICS_LISTEN"

// serveMetrics serves m's metrics on ln until ctx ends; the returned func
// stops the server and waits for the scrapes in flight. An address other
// than loopback is logged as a warning: the metrics name every user's
// runtimes.
func serveMetrics(ctx context.Context, ln net.Listener, m *manager.Manager, requests *metrics.Requests, log *slog.Logger) func() {
	if metrics.Loopback(ln) {
		log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	} else {
		log.Warn("serving metrics on an address other machines can reach: the metrics name every user's runtimes; listen on 127.0.0.1 or firewall the port",
			"addr", "http://"+ln.Addr().String()+"/metrics")
	}
	src := &metrics.Source{Runtimes: m.Runtimes, Version: version.Info(), Requests: requests, Started: time.Now()}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, src, log); err != nil {
			log.Error("metrics server", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// newLogger logs text to w; under systemd (JOURNAL_STREAM set) the journal
// adds its own timestamps, so the time attribute is dropped.
func newLogger(w interface{ Write([]byte) (int, error) }, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if strings.TrimSpace(os.Getenv("JOURNAL_STREAM")) != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Extra is the daemon command as cli.Main takes it.
func Extra() cli.Extra { return cli.Extra{Name: "daemon", New: Command} }
