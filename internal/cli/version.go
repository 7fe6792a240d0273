package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/version"
	"github.com/socketley/socketley/internal/wire"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date (and the daemon's)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stdio.Out, versionLine())
			c := a.client()
			res, err := c.Do(cmd.Context(), wire.Request{Cmd: wire.CmdVersion})
			if err != nil || res.Version == nil {
				fmt.Fprintf(a.stdio.Out, "daemon: not reachable at %s\n", c.Socket)
				return nil
			}
			dv := res.Version
			fmt.Fprintf(a.stdio.Out, "daemon: socketley %s (commit %s, built %s) at %s\n",
				format.Escape(dv.Version), format.Escape(dv.Commit), format.Escape(dv.Date), c.Socket)
			if v := version.Info(); dv.Version != v.Version || dv.Commit != v.Commit {
				fmt.Fprintf(a.stdio.Err, "warning: the CLI (%s, %s) and the daemon (%s, %s) differ; restart the daemon after upgrading\n",
					v.Version, v.Commit, format.Escape(dv.Version), format.Escape(dv.Commit))
			}
			return nil
		},
	}
}
