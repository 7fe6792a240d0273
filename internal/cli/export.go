package cli

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/manifest"
	"github.com/socketley/socketley/internal/wire"
)

func (a *app) exportCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "export [-o yaml] [NAME|PATTERN...]",
		Short: "Write managed runtimes as a manifest for apply",
		Long: `Write the managed runtimes NAME... (default: all of yours; root: all) as a
manifest (docs/apply.md) on standard output: every add setting, defaults left
out, paths absolute. socketley export | socketley apply -f - changes nothing.`,
		Example: `  socketley export > socketley.yaml
  socketley export api 'web-*' > web.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "yaml" {
				return withUsage(cmd, usageErr("export: -o %q: the format is yaml", format))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			rts, err := a.exportRuntimes(ctx, args)
			if err != nil {
				return err
			}
			out, err := manifest.Render(rts)
			if err != nil {
				return usageErr("export: %v", err)
			}
			_, err = a.stdio.Out.Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "yaml", "the format: yaml (a manifest for apply)")
	return cmd
}

// exportRuntimes returns the runtimes named (all of the caller's managed
// runtimes when none is), from the daemon.
func (a *app) exportRuntimes(ctx context.Context, names []string) ([]wire.Runtime, error) {
	c := a.client()
	if len(names) > 0 {
		return runtimes(ctx, c, wire.Request{Cmd: wire.CmdShow, Names: names})
	}
	rts, err := runtimes(ctx, c, wire.Request{Cmd: wire.CmdList})
	if err != nil {
		return nil, err
	}
	uid := os.Getuid()
	var out []wire.Runtime
	for _, r := range rts {
		if r.Managed && !r.Orphan && (uid == 0 || r.OwnerUID == uid) {
			out = append(out, r)
		}
	}
	return out, nil
}
