package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

// limitFlags registers the resource limit flags of add and set on fl; the
// values are checked by wire.ParseLimits (AddSpec.Check, SetSpec.Check).
func limitFlags(fl *pflag.FlagSet, a *wire.LimitArgs) {
	fl.StringVar(&a.MemoryMax, "memory-max", "", "memory limit (systemd MemoryMax=): bytes with K, M, G or T (base 1024), such as 512M, or infinity")
	fl.StringVar(&a.MemoryHigh, "memory-high", "", "memory throttle point (systemd MemoryHigh=): bytes with K, M, G or T, or infinity")
	fl.StringVar(&a.CPUQuota, "cpu-quota", "", "CPU time (systemd CPUQuota=) in percent of one CPU, such as 50%; 200% is two CPUs")
	fl.StringVar(&a.CPUWeight, "cpu-weight", "", "CPU share against other units (systemd CPUWeight=): 1-10000, the default is 100")
	fl.StringVar(&a.TasksMax, "tasks-max", "", "processes and threads (systemd TasksMax=): a number, or infinity")
	fl.StringVar(&a.NOFILE, "nofile", "", "open files per process, soft and hard (systemd LimitNOFILE=): a number, or infinity")
}

// propertyFlag registers -p/--property of add and set on fl; the values
// are checked by wire.CheckProperties (AddSpec.Check, SetSpec.Check).
func propertyFlag(fl *pflag.FlagSet, p *[]string) {
	fl.StringArrayVarP(p, "property", "p", nil, "other unit setting KEY=VALUE from socketley's allow-list, such as Nice=5 or TimeoutStartSec=2min (repeatable; docs/cli.md lists the keys)")
}

func (a *app) setCmd() *cobra.Command {
	var (
		spec    wire.SetSpec
		restart bool
		harden  bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME [flags]",
		Short: "Change the limits and unit settings of a managed runtime",
		Long: `Change the resource limits, -p/--property settings or --harden of the managed
runtime NAME. The flags are add's, in systemd's syntax; what is not given stays
as it is; -p KEY= (empty value) removes a setting. The change is saved first:
every later unit of the runtime (start, restart, after a reboot) has it.

What systemd changes on a running unit is applied at once, without a restart:
--memory-max, --memory-high, --cpu-quota, --cpu-weight, --tasks-max and the
settings -p IOWeight and -p MemorySwapMax. The others (--nofile, the other -p
settings, a removed setting, --harden) are set when a unit starts: they take
effect at the next restart, or now with --restart (which restarts the runtime; a
--listen runtime's socket is closed and opened again with it, since systemd
keeps the service as it was made while its socket exists). The reply says which
is which.`,
		Example: `  socketley set api --memory-max 256M --cpu-quota 25%
  socketley set api --nofile 65536 --restart
  socketley set api --memory-max infinity
  socketley set api -p IOWeight=50 -p Nice= --harden=false`,
		Args: exactArgs(1, "the runtime NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name, spec.Restart = args[0], restart
			if cmd.Flags().Changed("harden") {
				spec.Harden = &harden
			}
			if err := spec.Check(); err != nil {
				return withUsage(cmd, usageErr("set: %v", err))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			res, err := a.set(ctx, spec)
			if err != nil {
				return err
			}
			if res.Message != "" {
				fmt.Fprintln(a.stdio.Out, format.EscapeLines(res.Message))
			}
			return nil
		},
	}
	limitFlags(cmd.Flags(), &spec.Limits)
	propertyFlag(cmd.Flags(), &spec.Properties)
	cmd.Flags().BoolVar(&harden, "harden", false, "turn socketley's sandboxing preset on (--harden) or off (--harden=false) from the next start")
	cmd.Flags().BoolVar(&restart, "restart", false, "restart the runtime after the change, so that what waits for a new unit (--nofile, -p, --harden) takes effect now")
	return cmd
}

// set sends a set request to the daemon and returns its reply.
func (a *app) set(ctx context.Context, spec wire.SetSpec) (*wire.Result, error) {
	c := a.client()
	res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdSet, Set: &spec})
	if err != nil {
		return nil, fmt.Errorf("set %s: %w", spec.Name, err)
	}
	return res, nil
}
