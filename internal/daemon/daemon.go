// Package daemon is the `socketley daemon` command: it turns the flags into
// a manager.Config and runs the manager. It is kept apart from internal/cli
// so that the client commands never depend on the daemon's packages
// (internal/deps guards it); cmd/socketley joins the two.
package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/cli"
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
any managed unit.`,
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
			scope := units.System
			if mode == paths.User {
				scope = units.User
			}
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
				Logger:             newLogger(g.Stderr(), level),
			})
			if err != nil {
				return cli.UsageError("daemon: %v", err)
			}
			// SIGTERM or SIGINT stop the daemon (never the units).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
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
	return cmd
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
