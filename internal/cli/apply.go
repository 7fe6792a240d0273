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
	"sync"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/format"
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
             checked by the daemon first (left as it is if it would be
             refused), then stopped and started again with the new settings,
             keeping its restart count and history; if systemd refuses the
             new unit, the old settings come back
  remove     with --prune: a managed runtime of yours the manifest does not
             list (never an attached process or an orphan unit)

A bad file is refused before anything changes, with every problem found (file,
line, field). Applying the same file again changes nothing and says so.

With -H the file is applied to the daemon of that host: its paths name files
there and must be absolute. With several hosts (-H more than once, or --hosts
FILE) it is applied to each at once, with a section per host and a summary; a
host that cannot be reached is reported and the others still complete (exit 2).`,
		Example: `  socketley apply -f socketley.yaml
  socketley apply -f socketley.yaml --dry-run
  socketley export -o yaml > socketley.yaml   # the runtimes as they are
  cat socketley.yaml | socketley apply -f - --prune
  socketley --hosts fleet.txt apply -f socketley.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return withUsage(cmd, usageErr("apply: give the manifest with -f FILE (or -f - for standard input)"))
			}
			// A manifest for other hosts names their files: its paths
			// must be absolute there.
			want, err := readManifest(file, a.stdio.In, a.host != nil || len(a.hosts) > 0)
			if err != nil {
				return err
			}
			if len(a.hosts) > 1 {
				return a.applyHosts(cmd.Context(), want, dryRun, prune)
			}
			return a.applyTo(cmd.Context(), want, dryRun, prune)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the manifest (YAML; - for standard input)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and have the daemon check what it would add; change nothing")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove your managed runtimes the manifest does not list")
	return cmd
}

// applyTo plans want against the daemon's runtimes and carries it out.
func (a *app) applyTo(ctx context.Context, want []manifest.Desired, dryRun, prune bool) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout*4)
	defer cancel()
	c := a.client()
	// Your own managed runtimes only, as the daemon sees you (over -H, the
	// remote user): another user's runtime of the same name is not yours
	// to change, and --prune never removes it.
	have, err := runtimes(ctx, c, wire.Request{Cmd: wire.CmdList, Mine: true})
	if err != nil {
		return err
	}
	return a.apply(ctx, c, manifest.Plan(want, have, prune), dryRun)
}

// applyHosts applies want on every host of a.hosts at once. Each host's
// plan, results and errors are printed in a section of its own ("== HOST
// =="), in the order the hosts were given, each once it and the hosts
// before it are done; then a line per host says how it went. A host that
// fails (unreachable, a step failed) does not stop the others; the exit
// code is the worst host's (2 when a host could not be reached). At most
// maxHostsAtOnce hosts are worked on at a time.
func (a *app) applyHosts(ctx context.Context, want []manifest.Desired, dryRun, prune bool) error {
	type hostRun struct {
		out  recorder
		code int
		done chan struct{}
	}
	runs := make([]*hostRun, len(a.hosts))
	sem := make(chan struct{}, maxHostsAtOnce)
	for i, h := range a.hosts {
		r := &hostRun{done: make(chan struct{})}
		runs[i] = r
		go func() {
			defer close(r.done)
			sem <- struct{}{}
			defer func() { <-sem }()
			one := a.onHost(h, Stdio{In: strings.NewReader(""), Out: r.out.stream(false), Err: r.out.stream(true)})
			defer one.closeRemote()
			if err := one.applyTo(ctx, want, dryRun, prune); err != nil {
				r.code = report(one.stdio.Err, err)
			}
		}()
	}
	worst, failed := 0, 0
	var werr error // writing our own output failed: the hosts run on
	for i, h := range a.hosts {
		<-runs[i].done
		if werr == nil {
			_, werr = fmt.Fprintf(a.stdio.Out, "== %s ==\n", h)
		}
		if werr == nil {
			werr = runs[i].out.replay(a.stdio.Out, a.stdio.Err)
		}
		if c := runs[i].code; c != 0 {
			worst, failed = max(worst, c), failed+1
		}
	}
	if werr != nil {
		return werr
	}
	rows := [][]string{{"HOST", "RESULT"}}
	for i, h := range a.hosts {
		res := "ok"
		if c := runs[i].code; c != 0 {
			res = fmt.Sprintf("failed (exit %d)", c)
		}
		rows = append(rows, []string{h.String(), res})
	}
	fmt.Fprintln(a.stdio.Out, "==")
	if err := format.Columns(a.stdio.Out, rows); err != nil {
		return err
	}
	if failed > 0 {
		rest := "; the others were applied"
		switch {
		case failed == len(a.hosts):
			rest = ""
		case dryRun:
			rest = "; the others' plans are above"
		}
		return &exitError{code: worst, err: fmt.Errorf("apply: %d of %d hosts failed (see their sections above)%s", failed, len(a.hosts), rest)}
	}
	return nil
}

// recorder keeps what one host's apply writes to stdout and stderr, in
// the order written, to be replayed in that host's section.
type recorder struct {
	mu     sync.Mutex
	chunks []chunk
}

type chunk struct {
	stderr bool
	b      []byte
}

// stream returns the writer of stdout, or stderr.
func (r *recorder) stream(stderr bool) io.Writer { return recorderStream{r, stderr} }

// replay writes what was recorded to out and errw.
func (r *recorder) replay(out, errw io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.chunks {
		w := out
		if c.stderr {
			w = errw
		}
		if _, err := w.Write(c.b); err != nil {
			return err
		}
	}
	return nil
}

type recorderStream struct {
	r      *recorder
	stderr bool
}

func (s recorderStream) Write(p []byte) (int, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.chunks = append(s.r.chunks, chunk{s.stderr, slices.Clone(p)})
	return len(p), nil
}

// readManifest reads and checks the manifest file (- for in). For another
// host (remote), a relative path in it is a problem: nothing here can say
// what it names there.
func readManifest(file string, in io.Reader, remote bool) ([]manifest.Desired, error) {
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
	if remote {
		dir = ""
	} else if dir, err = filepath.Abs(dir); err != nil {
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
		// The daemon checks what would be added (on its host: the files,
		// the addresses, your rights), as add would.
		var bad []string
		for _, s := range steps {
			if s.Action != manifest.Create && s.Action != manifest.Replace {
				continue
			}
			if err := checkAdd(ctx, c, s.Desired.Spec); err != nil {
				bad = append(bad, s.Name)
				fmt.Fprintf(a.stdio.Err, "socketley: apply %s %s: would fail: %v\n", s.Action, s.Name, err)
			}
		}
		fmt.Fprintf(out, "dry run: %d change(s) not made\n", changes)
		if len(bad) > 0 {
			return ExitError(1, fmt.Errorf("apply: dry run: %d of %d change(s) would fail (%s)", len(bad), changes, strings.Join(bad, ", ")))
		}
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

// checkAdd has the daemon check spec as add would, changing nothing.
func checkAdd(ctx context.Context, c *control.Client, spec wire.AddSpec) error {
	_, err := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &spec, Check: true})
	var re *control.ReplyError
	if errors.As(err, &re) {
		msg := strings.TrimPrefix(strings.TrimPrefix(re.Message, "add "+spec.Name+": "), "add: ")
		return &replyWords{msg: msg, err: err}
	}
	return err
}

// replace has the daemon change the runtime into what the manifest says,
// in place (add with Replace): it checks the new settings first (a refusal
// leaves the runtime as it was), then stops the old unit and starts the
// new one, keeping the restart count and history; a new unit systemd
// refuses brings the old settings back.
func (a *app) replace(ctx context.Context, c *control.Client, s manifest.Step) (string, error) {
	spec := s.Desired.Spec
	spec.Start = s.Desired.State == manifest.StateRunning
	res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &spec, Replace: true})
	var re *control.ReplyError
	switch {
	case err == nil:
		msg := "replaced (" + strings.Join(s.Fields, ", ") + ")"
		if res != nil {
			// What the daemon adds: " (stopped)", a change of owner.
			msg += strings.TrimPrefix(res.Message, "replaced "+s.Name)
		}
		return msg, nil
	case !errors.As(err, &re):
		return "", err
	}
	msg := strings.TrimPrefix(re.Message, "replace "+s.Name+": ")
	switch re.Class {
	case wire.ClassInvalid, wire.ClassDenied, wire.ClassExists, wire.ClassNotFound, wire.ClassBusy, wire.ClassLimit:
		if res == nil || len(res.Runtimes) == 0 {
			// Refused before anything was done (a check, your rights):
			// the daemon names the runtime in its reply once it has
			// changed it.
			msg += "; " + s.Name + " is as it was"
		}
	}
	return "", &replyWords{msg: msg, err: err}
}

// replyWords is a daemon's refusal worded for a step of apply; it keeps
// the reply's class for errors.Is.
type replyWords struct {
	msg string
	err error
}

func (e *replyWords) Error() string { return e.msg }
func (e *replyWords) Unwrap() error { return e.err }
