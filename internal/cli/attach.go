package cli

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

func (a *app) attachCmd() *cobra.Command {
	var pid int
	var managed bool
	cmd := &cobra.Command{
		Use:   "attach TYPE NAME PORT",
		Short: "Report a process to the daemon (what the SDK's Attach does)",
		Long: `Report a process as a runtime of TYPE (server, client, proxy or cache) serving
PORT. Without --managed the daemon creates an attached entry bound to the pid:
it shows in ls/ps, stop sends it SIGTERM, and it disappears when the process
exits. The pid defaults to this command's parent (the calling shell or script);
a non-root caller may attach only itself or its parent.

With --managed (the default when SOCKETLEY_MANAGED is set, as inside a managed
unit) it re-attaches the managed runtime NAME, and the daemon checks that the
process belongs to socketley-NAME.service. NAME defaults to $SOCKETLEY_NAME
when that is set.`,
		Args: exactArgs(3, "TYPE (server, client, proxy or cache), NAME and PORT (1-65535)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ, name := args[0], args[1]
			if env := os.Getenv(sdk.EnvName); env != "" && managed {
				name = env
			}
			port, err := strconv.Atoi(args[2])
			if err != nil {
				return usageErr("attach: PORT %q is not a port: give a number from 1 to 65535\n%s", args[2], usageLine(cmd))
			}
			if pid == 0 {
				pid = os.Getppid()
			}
			spec := &wire.AttachSpec{Type: typ, Name: name, Port: port, PID: pid, Managed: managed}
			if err := spec.Check(); err != nil {
				return usageErr("%v\n%s", err, usageLine(cmd))
			}
			res, err := a.client().Do(cmd.Context(), wire.Request{Cmd: wire.CmdAttach, Attach: spec})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdio.Out, format.EscapeLines(res.Message))
			return nil
		},
	}
	cmd.Flags().IntVar(&pid, "pid", 0, "process to attach (default: the parent of this command)")
	cmd.Flags().BoolVar(&managed, "managed", sdkManaged(), "re-attach the managed runtime NAME from inside its unit")
	return cmd
}

func sdkManaged() bool { return sdk.Managed() }
