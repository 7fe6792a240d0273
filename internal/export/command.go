package export

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/cli"
	"github.com/socketley/socketley/internal/manifest"
	"github.com/socketley/socketley/internal/version"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// Extra is the export command as cli.Main takes it (the command renders
// units, so it lives outside the client CLI, which never links units).
// Its default format, yaml, is the manifest of apply (internal/manifest).
func Extra() cli.Extra { return cli.Extra{Name: "export", New: Command} }

// Command returns socketley export.
func Command(g cli.Globals) *cobra.Command {
	var (
		formatName string
		output     string
		dir        string
		force      bool
		scopeName  string
		jobID      string
	)
	cmd := &cobra.Command{
		Use:   "export [-o yaml | --format systemd|nomad] [flags] [NAME|PATTERN...]",
		Short: "Write managed runtimes as a manifest for apply, units for plain systemd, or a Nomad job",
		Long: `Write the managed runtimes NAME... (names or glob patterns; default: all of
yours; root: all). With -H, those of the daemon on that host, yours as the
remote user; the files are written here.

-o yaml (the default; also --format yaml) writes them as a manifest
(docs/apply.md) on standard output: every add setting, defaults left out, paths
absolute. socketley export | socketley apply -f - changes nothing. A runtime that
is not managed, or whose arguments and environment are withheld from you, is
refused.

--format systemd writes unit files that run them under plain systemd, without
socketley: for each, socketley-NAME.service, and socketley-NAME.socket for a
runtime with --listen.
They have the same command (arguments passed literally), environment,
environment files, credentials, working directory, user, restart policy, stop
timeout, limits, --harden preset and -p settings as socketley's unit;
systemd-analyze verify is clean on them.

Not carried over: the SOCKETLEY_* environment (an SDK program runs unmanaged),
the health check and attach, and the daemon's growing crash delay (a comment in
the unit says how systemd >= 254 gets it). docs/cli.md has the whole mapping.

--format nomad writes one Nomad job (JSON, as nomad job run -json takes it) with a
task group per runtime: raw_exec driver, command, arguments and environment,
restart and reschedule policy, memory, kill timeout and signal, the attach and
--listen ports with a TCP check. What has no Nomad equivalent is named on stderr.

Without --dir the files go to stdout, each unit file after a "# FILE" line (the
Nomad job as it is); with --dir they are written into the directory D, which
must exist; an existing file is refused unless --force, and then nothing is
written. Attached processes and
orphan units cannot be exported: named, they are an error; matched by a pattern,
they are skipped with a note on stderr.`,
		Example: `  socketley export > socketley.yaml
  socketley export api 'web-*' > web.yaml
  socketley export --format systemd web
  socketley export --format nomad --job web web > web.nomad.json && nomad job run -json web.nomad.json
  socketley export --format systemd --dir ~/.config/systemd/user 'web-*'
  systemctl --user daemon-reload && systemctl --user enable --now socketley-web.socket socketley-web.service`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case cmd.Flags().Changed("format") && cmd.Flags().Changed("output") && formatName != output:
				return cli.UsageError("export: -o %s and --format %s disagree: give one of them\nusage: %s", output, formatName, cmd.UseLine())
			case cmd.Flags().Changed("output"):
				formatName = output
			}
			if formatName != "yaml" && formatName != "systemd" && formatName != "nomad" {
				return cli.UsageError("export: --format %q is not a format: use yaml (the default), systemd or nomad\nusage: %s", formatName, cmd.UseLine())
			}
			if formatName == "yaml" {
				for _, f := range []string{"dir", "force", "scope", "job"} {
					if cmd.Flags().Changed(f) {
						return cli.UsageError("export: --%s is for --format systemd or nomad; the manifest (yaml) goes to standard output\nusage: %s", f, cmd.UseLine())
					}
				}
			}
			if formatName == "nomad" && cmd.Flags().Changed("scope") {
				return cli.UsageError("export: --scope is for --format systemd (a Nomad job has no service manager scope)\nusage: %s", cmd.UseLine())
			}
			if formatName == "systemd" && cmd.Flags().Changed("job") {
				return cli.UsageError("export: --job is for --format nomad\nusage: %s", cmd.UseLine())
			}
			if err := checkJobID(jobID); err != nil {
				return cli.UsageError("export: --job %q: %v\nusage: %s", jobID, err, cmd.UseLine())
			}
			for _, n := range args {
				if strings.ContainsAny(n, "*?[") {
					continue
				}
				if err := wire.CheckName(n); err != nil {
					return cli.UsageError("export: %v\nusage: %s", err, cmd.UseLine())
				}
			}
			var scope units.Scope
			switch scopeName {
			case "user":
				scope = units.User
			case "system":
				scope = units.System
			case "":
			default:
				return cli.UsageError("export: --scope %q: use user or system (the service manager that will run the units)\nusage: %s", scopeName, cmd.UseLine())
			}
			if dir != "" {
				if st, err := os.Stat(dir); err != nil || !st.IsDir() {
					return cli.UsageError("export: --dir %s is not a directory: create it first", dir)
				}
			}
			ctx := cmd.Context()
			if formatName == "yaml" {
				rts, err := g.ExportRuntimes(ctx, args)
				if err != nil {
					return err
				}
				out, err := manifest.Render(rts)
				if err != nil {
					return cli.UsageError("export: %v", err)
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			if scopeName == "" && formatName == "systemd" {
				mode, err := g.DaemonMode(ctx)
				if err != nil {
					return err
				}
				scope = units.User
				if mode == "system" {
					scope = units.System
				}
			}
			rts, err := g.ExportRuntimes(ctx, args)
			if err != nil {
				return err
			}
			var files []File
			if formatName == "nomad" {
				files, err = renderNomad(jobID, rts, args, g.Stderr())
			} else {
				files, err = render(rts, args, scope, g.Stderr())
			}
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return cli.UsageError("export: no managed runtime to export")
			}
			if dir == "" && formatName == "nomad" {
				_, err := io.WriteString(cmd.OutOrStdout(), files[0].Text)
				return err
			}
			if dir == "" {
				return writeStdout(cmd.OutOrStdout(), files)
			}
			return writeDir(cmd.OutOrStdout(), dir, files, force)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&formatName, "format", "yaml", "what to write: yaml (a manifest for apply), systemd (unit files) or nomad (a Nomad job, JSON)")
	fl.StringVarP(&output, "output", "o", "yaml", "the same as --format")
	fl.StringVar(&dir, "dir", "", "write the files into this existing directory instead of stdout")
	fl.BoolVar(&force, "force", false, "with --dir: overwrite existing files")
	fl.StringVar(&scopeName, "scope", "", "systemd: the service manager that will run the units: user or system (default: the daemon's)")
	fl.StringVar(&jobID, "job", "socketley", "nomad: the job's ID and name (the file is ID.nomad.json with --dir)")
	return cmd
}

// render returns the files of rts. A runtime that cannot be exported is an
// error when named plainly in args, else skipped with a note on stderr.
func render(rts []wire.Runtime, args []string, scope units.Scope, stderr io.Writer) ([]File, error) {
	named := map[string]bool{}
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			named[a] = true
		}
	}
	var files []File
	for _, rt := range rts {
		fs, err := Systemd(rt, scope, version.Version())
		if errors.Is(err, ErrNotExportable) && !named[rt.Name] {
			fmt.Fprintf(stderr, "socketley: export: skipped %v\n", err)
			continue
		}
		if err != nil {
			return nil, cli.UsageError("export: %v", err)
		}
		files = append(files, fs...)
	}
	return files, nil
}

// renderNomad returns the Nomad job file of the managed runtimes of rts
// (none when there is none), skipping or refusing the others as render
// does; what does not map goes to stderr, one line per runtime.
func renderNomad(id string, rts []wire.Runtime, args []string, stderr io.Writer) ([]File, error) {
	named := map[string]bool{}
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			named[a] = true
		}
	}
	var keep []wire.Runtime
	for _, rt := range rts {
		_, err := Spec(rt)
		if errors.Is(err, ErrNotExportable) && !named[rt.Name] {
			fmt.Fprintf(stderr, "socketley: export: skipped %v\n", err)
			continue
		}
		if err != nil {
			return nil, cli.UsageError("export: %v", err)
		}
		keep = append(keep, rt)
	}
	if len(keep) == 0 {
		return nil, nil
	}
	job, lost, err := Nomad(id, keep)
	if err != nil {
		return nil, cli.UsageError("export: %v", err)
	}
	for _, rt := range keep {
		if l := lost[rt.Name]; len(l) > 0 {
			fmt.Fprintf(stderr, "socketley: export: %s: not carried over to Nomad: %s\n", rt.Name, strings.Join(l, "; "))
		}
	}
	b, err := NomadJSON(job)
	if err != nil {
		return nil, err
	}
	return []File{{Name: id + ".nomad.json", Text: string(b)}}, nil
}

// checkJobID checks a Nomad job ID: 1-128 characters, no space or
// control character (Nomad's rule for IDs it takes from a file).
func checkJobID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
		return errors.New("use 1-128 characters without blanks, control characters or '/'")
	}
	return nil
}

// writeStdout writes files to w, each after a "# NAME" line.
func writeStdout(w io.Writer, files []File) error {
	for i, f := range files {
		sep := ""
		if i > 0 {
			sep = "\n"
		}
		if _, err := fmt.Fprintf(w, "%s# %s\n%s", sep, f.Name, f.Text); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return nil
}

// writeDir writes files into dir and prints their paths. Without force an
// existing file is refused before anything is written.
func writeDir(w io.Writer, dir string, files []File, force bool) error {
	if !force {
		var exist []string
		for _, f := range files {
			p := filepath.Join(dir, f.Name)
			if _, err := os.Lstat(p); err == nil {
				exist = append(exist, p)
			}
		}
		if len(exist) > 0 {
			return cli.UsageError("export: %s already exist(s): nothing written; give --force to overwrite", strings.Join(exist, ", "))
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := writeFile(p, f.Text); err != nil {
			return cli.ExitError(2, fmt.Errorf("export: %w", err))
		}
		fmt.Fprintln(w, p)
	}
	return nil
}

// writeFile writes text to path through a temporary file in the same
// directory, so that a reader never sees half a unit.
func writeFile(path, text string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
