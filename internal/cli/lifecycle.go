package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

// waitFlags are the --wait/--timeout pair of start, restart and add.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "return only once the runtime is running (attached, or active for about 1 s); fail with the reason otherwise")
	cmd.Flags().DurationVar(&w.timeout, "timeout", wire.DefaultWaitTimeout, "how long --wait waits")
}

// requestTimeout bounds a lifecycle request: a stop can take twice a
// runtime's stop timeout (at most 5m: SIGTERM, then SIGKILL) plus a margin,
// and the daemon bounds each stop by that itself.
const requestTimeout = control.DefaultStopTimeout

// ctx returns the request context: long enough for the runtimes' stop
// timeouts and SIGKILL escalation, plus the --wait timeout.
func (w *waitFlags) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	d := requestTimeout
	if w.wait {
		d += w.timeout
	}
	return context.WithTimeout(parent, d)
}

func (a *app) namesCmd(use, short, long string, op func(ctx context.Context, c *control.Client, w waitFlags, names []string) error, withWait bool) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   use + " NAME|PATTERN...",
		Short: short,
		Long:  long,
		Args:  namesArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames(cmd, args); err != nil {
				return err
			}
			ctx, cancel := w.ctx(cmd.Context())
			defer cancel()
			return op(ctx, a.client(), w, args)
		},
	}
	if withWait {
		w.register(cmd)
	}
	return cmd
}

func (a *app) startCmd() *cobra.Command {
	return a.namesCmd("start", "Start runtimes",
		`Start the named runtimes (names or glob patterns such as 'web-*'). A runtime
that is already running is left alone. The reply says "started" with the pid, or
with --wait "running" once it runs; a process that has already exited, or a
--wait that sees it fail, exits 1 with the exit, the last output lines and the
next steps.`,
		func(ctx context.Context, c *control.Client, w waitFlags, names []string) error {
			res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdStart, Names: names, Wait: w.wait, Timeout: wire.Duration(w.timeout)})
			if err != nil {
				return a.failReply(ctx, c, "start", res, err, w.wait)
			}
			return a.startReply(ctx, c, "start", res, w.wait)
		}, true)
}

func (a *app) stopCmd() *cobra.Command {
	return a.namesCmd("stop", "Stop runtimes and wait until they are inactive",
		`Stop the named runtimes and return once each unit is inactive and its
processes are gone: SIGTERM, then SIGKILL after the runtime's stop timeout
(add --stop-timeout, 10s by default), also for a program that ignores SIGTERM.
For an attached process, SIGTERM is sent to it (after checking the pid still
belongs to the process that attached).`,
		func(ctx context.Context, c *control.Client, _ waitFlags, names []string) error {
			rts, err := runtimes(ctx, c, wire.Request{Cmd: wire.CmdStop, Names: names})
			for _, r := range rts {
				fmt.Fprintf(a.stdio.Out, "%s: %s\n", format.Escape(r.Name), format.Escape(r.Status))
			}
			return err
		}, false)
}

func (a *app) restartCmd() *cobra.Command {
	return a.namesCmd("restart", "Stop, wait, then start runtimes",
		"Stop each runtime, wait until its processes are gone (SIGKILL after its stop timeout), then start it again: the old and the new process never overlap.",
		func(ctx context.Context, c *control.Client, w waitFlags, names []string) error {
			res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdRestart, Names: names, Wait: w.wait, Timeout: wire.Duration(w.timeout)})
			if err != nil {
				return a.failReply(ctx, c, "restart", res, err, w.wait)
			}
			return a.startReply(ctx, c, "restart", res, w.wait)
		}, true)
}

func (a *app) removeCmd() *cobra.Command {
	cmd := a.namesCmd("remove", "Stop and forget runtimes",
		"Stop each runtime (wait until its unit is inactive), then remove it from the registry.",
		func(ctx context.Context, c *control.Client, _ waitFlags, names []string) error {
			res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdRemove, Names: names})
			if res != nil && res.Message != "" {
				fmt.Fprintln(a.stdio.Out, format.EscapeLines(res.Message))
			}
			return err
		}, false)
	cmd.Aliases = []string{"rm"}
	return cmd
}
