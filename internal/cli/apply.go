package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/manifest"
	"github.com/socketley/socketley/internal/wire"
)

func (a *app) applyCmd() *cobra.Command {
	var (
		file          string
		dryRun, prune bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run] [--prune]",
		Short: "Make the managed runtimes what a manifest file says",
		Long: `Read the manifest FILE (socketley.yaml; - for standard input; docs/apply.md has
the format), compare it with the daemon's managed runtimes, print the plan and
carry it out:

  create     a runtime the daemon does not have: added (and started unless its
             state is stopped)
  unchanged  as the manifest says: nothing is done
  change     limits, properties, harden or state differ: changed in place
             (socketley set; what systemd cannot change live restarts it)
  replace    anything else differs (path, args, env, restart policy, listen …):
             removed and added again, so it restarts; if the new one cannot be
             added, the old one is added back
  remove     with --prune: a managed runtime of yours the manifest does not
             list (never an attached process or an orphan unit)

A bad file is refused before anything changes, with every problem found (file,
line, field). Applying the same file again changes nothing and says so.`,
		Example: `  socketley apply -f socketley.yaml
  socketley apply -f socketley.yaml --dry-run
  socketley export -o yaml > socketley.yaml   # the runtimes as they are
  cat socketley.yaml | socketley apply -f - --prune`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return withUsage(cmd, usageErr("apply: give the manifest with -f FILE (or -f - for standard input)"))
			}
			want, err := readManifest(file, a.stdio.In)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout*4)
			defer cancel()
			c := a.client()
			have, err := runtimes(ctx, c, wire.Request{Cmd: wire.CmdList})
			if err != nil {
				return err
			}
			if prune {
				have = mine(have)
			}
			steps := manifest.Plan(want, have, prune)
			return a.apply(ctx, c, steps, dryRun)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the manifest (YAML; - for standard input)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan only")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove your managed runtimes the manifest does not list")
	return cmd
}

// readManifest reads and checks the manifest file (- for in).
func readManifest(file string, in io.Reader) ([]manifest.Desired, error) {
	var data []byte
	var err error
	dir := "."
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(in, maxManifest+1))
	} else {
		data, err = os.ReadFile(file)
		dir = filepath.Dir(file)
	}
	if err != nil {
		return nil, usageErr("apply: %v", err)
	}
	if len(data) > maxManifest {
		return nil, usageErr("apply: %s is larger than %d bytes", file, maxManifest)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, usageErr("apply: %v", err)
	}
	want, err := manifest.Parse(file, dir, data)
	if err != nil {
		return nil, usageErr("apply: %s: %v\nnothing was changed; the format is in docs/apply.md", file, err)
	}
	return want, nil
}

// maxManifest bounds a manifest file.
const maxManifest = 4 << 20

// mine keeps the runtimes this user may remove with --prune: its own (root:
// all).
func mine(rts []wire.Runtime) []wire.Runtime {
	uid := os.Getuid()
	if uid == 0 {
		return rts
	}
	return slices.DeleteFunc(rts, func(r wire.Runtime) bool { return r.OwnerUID != uid })
}

// apply prints the plan and carries it out, step by step; a step that
// fails is reported and the others still run (exit 1 then).
func (a *app) apply(ctx context.Context, c *control.Client, steps []manifest.Step, dryRun bool) error {
	out := a.stdio.Out
	changes := 0
	for _, s := range steps {
		if s.Action != manifest.Unchanged {
			changes++
		}
	}
	if changes == 0 {
		fmt.Fprintf(out, "nothing to change: %d runtime(s) as the manifest says\n", len(steps))
		return nil
	}
	fmt.Fprintln(out, "plan:")
	for _, s := range steps {
		fmt.Fprintln(out, "  "+s.String())
	}
	if dryRun {
		fmt.Fprintf(out, "dry run: %d change(s) not made\n", changes)
		return nil
	}
	var failed []string
	for _, s := range steps {
		if s.Action == manifest.Unchanged {
			continue
		}
		msg, err := a.applyStep(ctx, c, s)
		if err != nil {
			failed = append(failed, s.Name)
			fmt.Fprintf(a.stdio.Err, "socketley: apply %s %s: %v\n", s.Action, s.Name, err)
			continue
		}
		fmt.Fprintf(out, "%s: %s\n", s.Name, msg)
	}
	if len(failed) > 0 {
		return ExitError(1, fmt.Errorf("apply: %d of %d change(s) failed (%s); the others were made; run apply again once fixed", len(failed), changes, strings.Join(failed, ", ")))
	}
	return nil
}

// applyStep carries out one step and words what was done.
func (a *app) applyStep(ctx context.Context, c *control.Client, s manifest.Step) (string, error) {
	do := func(req wire.Request) error {
		_, err := c.Do(ctx, req)
		return err
	}
	switch s.Action {
	case manifest.Create:
		spec := s.Desired.Spec
		spec.Start = s.Desired.State == manifest.StateRunning
		if err := do(wire.Request{Cmd: wire.CmdAdd, Add: &spec}); err != nil {
			return "", err
		}
		if spec.Start {
			return "created and started", nil
		}
		return "created (stopped, as its state says)", nil
	case manifest.Remove:
		if err := do(wire.Request{Cmd: wire.CmdRemove, Names: []string{s.Name}}); err != nil {
			return "", err
		}
		return "removed (not in the manifest; --prune)", nil
	case manifest.Replace:
		return a.replace(ctx, c, s)
	case manifest.Change:
		return a.change(ctx, c, s)
	}
	return "", fmt.Errorf("unknown step %q", s.Action)
}

// change applies what set changes and the state.
func (a *app) change(ctx context.Context, c *control.Client, s manifest.Step) (string, error) {
	var done []string
	want, cur := s.Desired.Spec, manifest.SpecOf(*s.Current)
	if slices.ContainsFunc(s.Fields, func(f string) bool { return f != "state" }) {
		set, restart := setSpec(want, cur)
		set.Restart = restart && s.Desired.State == manifest.StateRunning
		res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdSet, Set: &set})
		if err != nil {
			return "", err
		}
		done = append(done, strings.TrimSpace(strings.ReplaceAll(res.Message, s.Name+": ", "")))
	}
	if slices.Contains(s.Fields, "state") {
		cmd, word := wire.CmdStart, "started"
		if s.Desired.State == manifest.StateStopped {
			cmd, word = wire.CmdStop, "stopped"
		}
		if _, err := c.Do(ctx, wire.Request{Cmd: cmd, Names: []string{s.Name}}); err != nil {
			return "", err
		}
		done = append(done, word)
	}
	return strings.Join(done, "; "), nil
}

// setSpec is the set request that makes cur's limits, properties and
// harden want's, and whether it needs a restart to take effect (what
// systemd cannot change on a running unit).
func setSpec(want, cur wire.AddSpec) (wire.SetSpec, bool) {
	set := wire.SetSpec{Name: want.Name}
	restart := false
	w, c := want.Limits, cur.Limits
	pick := func(wv, cv string, live bool) string {
		if wv == cv {
			return ""
		}
		if !live {
			restart = true
		}
		return wv
	}
	set.Limits = wire.LimitArgs{MemoryMax: pick(w.MemoryMax, c.MemoryMax, true), MemoryHigh: pick(w.MemoryHigh, c.MemoryHigh, true),
		CPUQuota: pick(w.CPUQuota, c.CPUQuota, true), CPUWeight: pick(w.CPUWeight, c.CPUWeight, true),
		TasksMax: pick(w.TasksMax, c.TasksMax, true), NOFILE: pick(w.NOFILE, c.NOFILE, false)}
	curProps := map[string]string{}
	for _, kv := range cur.Properties {
		k, v, _ := strings.Cut(kv, "=")
		curProps[k] = v
	}
	for _, kv := range want.Properties {
		k, v, _ := strings.Cut(kv, "=")
		if curProps[k] != v {
			set.Properties = append(set.Properties, kv)
			if r, ok := wire.PropertyRuleOf(k); !ok || !r.Live {
				restart = true
			}
		}
		delete(curProps, k)
	}
	for k := range curProps {
		set.Properties = append(set.Properties, k+"=") // removed: back to systemd's default
		restart = true
	}
	slices.Sort(set.Properties)
	if want.Harden != cur.Harden {
		h := want.Harden
		set.Harden, restart = &h, true
	}
	return set, restart
}

// replace removes the runtime and adds it as the manifest says; if the add
// fails, the old runtime is added back as it was.
func (a *app) replace(ctx context.Context, c *control.Client, s manifest.Step) (string, error) {
	old := manifest.SpecOf(*s.Current)
	old.Start = s.Current.Desired != "stopped"
	if _, err := c.Do(ctx, wire.Request{Cmd: wire.CmdRemove, Names: []string{s.Name}}); err != nil {
		return "", fmt.Errorf("remove before adding it again: %w", err)
	}
	spec := s.Desired.Spec
	spec.Start = s.Desired.State == manifest.StateRunning
	_, err := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &spec})
	if err == nil {
		return "replaced (" + strings.Join(s.Fields, ", ") + ")", nil
	}
	if _, back := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &old}); back != nil {
		return "", fmt.Errorf("the new runtime could not be added (%w), nor the old one added back (%v): it is removed; add it again", err, back)
	}
	var re *control.ReplyError
	if errors.As(err, &re) {
		return "", fmt.Errorf("the new runtime could not be added (%s); the old one was added back as it was", re.Message)
	}
	return "", fmt.Errorf("the new runtime could not be added (%w); the old one was added back as it was", err)
}
