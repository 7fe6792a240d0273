package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

func (a *app) upgradeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "upgrade NAME NEWPATH [flags]",
		Short: "Switch a managed runtime to a new executable and restart it",
		Long: `Switch the managed runtime NAME to the executable NEWPATH (resolved against the
current directory; a regular file you may execute) and restart it, as restart
does: the old process is stopped (SIGTERM, SIGKILL after --stop-timeout), then
the new one started. The switch is recorded before anything is restarted. A
runtime added with --listen keeps its socket meanwhile, so clients connecting
during the upgrade wait and are served by the new process instead of being
refused.

upgrade returns once the new process is running (attached, when the runtime
attaches; otherwise up for about 1 s) within --timeout. If it is not (it exits,
crash-loops, or does not attach in time), the daemon switches back to the old
executable, starts it again, and upgrade exits 1 saying why, with the new
program's last output lines. If the daemon dies during an upgrade, it switches
back to the old executable at its next start.`,
		Example: `  socketley upgrade echo-svc ./echo-service-v2
  socketley upgrade echo-svc /opt/echo/v3/echo-service --timeout 30s`,
		Args: exactArgs(2, "the runtime NAME and the NEWPATH of its new executable"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], args[1]
			var abs string
			var err error
			if a.host != nil {
				abs, err = remoteUpgradeArgs(name, path, timeout, a.remotePath)
			} else {
				abs, err = upgradeArgs(name, path, timeout)
			}
			if err != nil {
				return withUsage(cmd, err)
			}
			// A stop and a start, the wait, and maybe all of it again to
			// switch back.
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*requestTimeout+2*timeout)
			defer cancel()
			c := a.client()
			res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdUpgrade, Names: []string{name}, Path: abs, Timeout: wire.Duration(timeout)})
			if err != nil {
				return a.failReply(ctx, c, "upgrade", res, err, true)
			}
			if len(res.Runtimes) == 0 {
				return fmt.Errorf("upgrade %s: the daemon returned no runtime", name)
			}
			r := res.Runtimes[0]
			fmt.Fprintf(a.stdio.Out, "%s: upgraded to %s, %s (unit %s, pid %d)\n",
				format.Escape(r.Name), format.Escape(r.Path), format.Escape(r.Status), format.Escape(r.Unit), r.PID)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long the new executable has to be running (attached, when it attaches) before upgrade switches back")
	return cmd
}

// remoteUpgradeArgs checks upgrade's arguments for a daemon on another
// host: NEWPATH must be absolute (abs says so) and is that host's to check.
func remoteUpgradeArgs(name, path string, timeout time.Duration, abs func(what, p string) (string, error)) (string, error) {
	if err := wire.CheckName(name); err != nil {
		return "", usageErr("upgrade: %v", err)
	}
	if timeout <= 0 {
		return "", usageErr("upgrade: --timeout %s: give a positive duration such as 10s", timeout)
	}
	p, err := abs("NEWPATH", path)
	if err != nil {
		return "", usageErr("upgrade: %v", err)
	}
	return p, nil
}

// upgradeArgs checks upgrade's arguments and resolves NEWPATH against the
// current directory.
func upgradeArgs(name, path string, timeout time.Duration) (string, error) {
	if err := wire.CheckName(name); err != nil {
		return "", usageErr("upgrade: %v", err)
	}
	if timeout <= 0 {
		return "", usageErr("upgrade: --timeout %s: give a positive duration such as 10s", timeout)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", usageErr("upgrade: %v", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", usageErr("upgrade: no such file: %s", abs)
	case err != nil:
		return "", usageErr("upgrade: %v", err)
	case fi.IsDir():
		return "", usageErr("upgrade: %s is a directory; give the path of an executable file", abs)
	case !fi.Mode().IsRegular():
		return "", usageErr("upgrade: %s is not a regular file", abs)
	case fi.Mode().Perm()&0o111 == 0:
		return "", usageErr("upgrade: %s is not executable (chmod +x %s)", abs, path)
	}
	return abs, nil
}
