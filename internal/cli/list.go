package cli

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

func (a *app) render(out string, rts []wire.Runtime, table func() error) error {
	if out == "json" {
		if rts == nil {
			rts = []wire.Runtime{}
		}
		enc := json.NewEncoder(a.stdio.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rts)
	}
	return table()
}

// lineTable prints the table the daemon renders for a line-format request:
// no JSON on either side, which keeps ls fast with thousands of runtimes.
func (a *app) lineTable(ctx context.Context, cmd string) error {
	code, text, err := a.client().Line(ctx, cmd)
	if err != nil {
		return err
	}
	if code != 0 {
		return &control.ReplyError{Code: code, Message: strings.TrimSpace(text)}
	}
	// The daemon escapes what it puts in the table; escaped here again
	// (a no-op then) so that an older daemon cannot drive the terminal.
	_, err = io.WriteString(a.stdio.Out, format.EscapeLines(text))
	return err
}

func (a *app) lsCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List every runtime (managed, attached and orphan units)",
		Long: `List every runtime, sorted by name: NAME MODE TYPE PORT STATUS RESTARTS UPTIME
CPU MEM TASKS PID. MODE is unit (managed by socketley), attach (a process that
attached itself) or orphan (a socketley-* unit with no registry entry, left
alone). CPU, MEM and TASKS are what its processes use, sampled by the daemon
every health tick (- until the first sample; socketley top shows them live).
STATUS is one of created, running, starting, unhealthy, restarting, failed,
crash-loop, stopping, stopped, orphan. -o json prints the fields documented in
docs/cli.md. With several hosts (-H more than once, or --hosts), one table of
every host with a HOST column first (-o json: one object per host with host and
runtimes, or error); a host that cannot be reached is reported and the command
exits 2.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, out); err != nil {
				return err
			}
			if len(a.hosts) > 1 {
				return a.listHosts(cmd.Context(), wire.CmdList, true, out)
			}
			if out == "table" {
				return a.lineTable(cmd.Context(), wire.CmdList)
			}
			rts, err := runtimes(cmd.Context(), a.client(), wire.Request{Cmd: wire.CmdList})
			if err != nil {
				return err
			}
			return a.render(out, rts, nil)
		},
	}
	outputFlag(cmd, &out)
	return cmd
}

func (a *app) psCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List what runs or should (PID last, - between a crash and its restart)",
		Long: `List the runtimes that run or should: NAME TYPE PORT STATUS RESTARTS UPTIME CPU
MEM TASKS PID.
That is every runtime with a live process, and every managed runtime wanted
running that is between a crash and its restart (restarting or crash-loop, PID
-). ls lists everything, also what is created, stopped or failed. PID is the
last column, so scripts can use: socketley ps | grep NAME | awk '{print $NF}'.
With several hosts (-H more than once, or --hosts), one table of every host with
a HOST column first (-o json: one object per host with host and runtimes, or
error); a host that cannot be reached is reported and the command exits 2.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, out); err != nil {
				return err
			}
			if len(a.hosts) > 1 {
				return a.listHosts(cmd.Context(), wire.CmdPS, false, out)
			}
			if out == "table" {
				return a.lineTable(cmd.Context(), wire.CmdPS)
			}
			rts, err := runtimes(cmd.Context(), a.client(), wire.Request{Cmd: wire.CmdPS})
			if err != nil {
				return err
			}
			return a.render(out, rts, nil)
		},
	}
	outputFlag(cmd, &out)
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show NAME|PATTERN...",
		Short: "Show everything known about runtimes",
		Long:  "Show unit name, state, pid, restarts, usage (cpu, memory, tasks and where they come from), last exit, path, arguments, environment and attach details.",
		Args:  namesArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, out); err != nil {
				return err
			}
			if err := checkNames(cmd, args); err != nil {
				return err
			}
			rts, err := runtimes(cmd.Context(), a.client(), wire.Request{Cmd: wire.CmdShow, Names: args})
			if err != nil {
				return err
			}
			return a.render(out, rts, func() error { return format.Show(a.stdio.Out, rts, time.Now()) })
		},
	}
	outputFlag(cmd, &out)
	return cmd
}
