package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/version"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date (and the daemon's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stdio.Out, versionLine())
			c := a.client()
			dv, err := c.DaemonVersion(cmd.Context())
			if err != nil {
				fmt.Fprintf(a.stdio.Out, "daemon: not reachable at %s\n", c.Socket())
				return nil
			}
			fmt.Fprintf(a.stdio.Out, "daemon: socketley %s (commit %s, built %s) at %s\n", dv.Version, dv.Commit, dv.Date, c.Socket())
			if v := version.Info(); dv.Version != v.Version || dv.Commit != v.Commit {
				fmt.Fprintf(a.stdio.Err, "warning: the CLI (%s, %s) and the daemon (%s, %s) differ; restart the daemon after upgrading\n",
					v.Version, v.Commit, dv.Version, dv.Commit)
			}
			return nil
		},
	}
}
