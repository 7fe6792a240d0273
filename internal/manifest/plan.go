package manifest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/socketley/socketley/internal/wire"
)

// SpecOf returns the add request that registers r again as it is (Start
// unset): what export writes and what apply compares a manifest with.
func SpecOf(r wire.Runtime) wire.AddSpec {
	s := wire.AddSpec{
		Name: r.Name, Path: r.Path, Args: r.Args, Env: r.Env, WorkDir: r.WorkDir, Restart: r.Restart,
		Credentials: r.Credentials, EnvFiles: r.EnvFiles, Harden: r.Harden, RestartSec: r.RestartSec,
		RestartMaxDelay: r.RestartMaxDelay, RestartReset: r.RestartReset, MaxRestarts: r.MaxRestarts,
		RunAs: r.User, ExpectAttach: r.ExpectAttach, AttachTimeout: r.AttachTimeout, HealthFails: r.HealthFails,
		StopTimeout: r.StopTimeout, Listen: r.Listen, Limits: r.Limits, Properties: r.Properties,
	}
	return s
}

// StateOf is the manifest state of r: stopped when it is not wanted
// running.
func StateOf(r wire.Runtime) string {
	if r.Desired == "stopped" {
		return StateStopped
	}
	return StateRunning
}

// FromSpec writes an add request as a manifest runtime, leaving out what
// is the default.
func FromSpec(s wire.AddSpec, state string) Runtime {
	d := func(v wire.Duration, def time.Duration) string {
		if v == 0 || time.Duration(v) == def {
			return ""
		}
		return time.Duration(v).String()
	}
	r := Runtime{
		Name: s.Name, Path: s.Path, Args: s.Args, WorkDir: s.WorkDir, EnvFiles: s.EnvFiles,
		RestartSec: d(s.RestartSec, 0), RestartMaxDelay: d(s.RestartMaxDelay, wire.DefaultRestartMaxDelay),
		RestartReset: d(s.RestartReset, wire.DefaultRestartReset), MaxRestarts: s.MaxRestarts,
		StopTimeout: d(s.StopTimeout, wire.DefaultStopTimeout), Attach: s.ExpectAttach,
		AttachTimeout: d(s.AttachTimeout, wire.DefaultAttachTimeout), HealthFails: s.HealthFails,
		RunAs: s.RunAs, Listen: s.Listen, Harden: s.Harden,
	}
	if s.Restart != "" && s.Restart != wire.DefaultRestart {
		r.Restart = string(s.Restart)
	}
	if state == StateStopped {
		r.State = StateStopped
	}
	r.Env = kvMap(s.Env)
	r.Properties = kvMap(s.Properties)
	if len(s.Credentials) > 0 {
		r.Credentials = map[string]string{}
		for _, c := range s.Credentials {
			r.Credentials[c.ID] = c.Path
		}
	}
	l := s.Limits
	lm := map[string]string{"memory_max": l.MemoryMax, "memory_high": l.MemoryHigh, "cpu_quota": l.CPUQuota,
		"cpu_weight": l.CPUWeight, "tasks_max": l.TasksMax, "nofile": l.NOFILE}
	for k, v := range lm {
		if v == "" {
			delete(lm, k)
		}
	}
	if len(lm) > 0 {
		r.Limits = lm
	}
	return r
}

func kvMap(kvs []string) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// Render writes rts (managed runtimes) as a manifest. A runtime whose
// arguments and environment were withheld (not the caller's) cannot be
// written: the error names it.
func Render(rts []wire.Runtime) ([]byte, error) {
	f := File{Version: Version, Runtimes: []Runtime{}}
	for _, r := range rts {
		switch {
		case !r.Managed:
			return nil, fmt.Errorf("%s is not a managed runtime (an attached process or an orphan unit): only runtimes added with socketley add can be exported", r.Name)
		case r.Redacted:
			return nil, fmt.Errorf("%s: its arguments and environment are withheld from you (neither root nor its owner): export it as root or as its owner", r.Name)
		}
		f.Runtimes = append(f.Runtimes, FromSpec(SpecOf(r), StateOf(r)))
	}
	out, err := yaml.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("encode the manifest: %w", err)
	}
	return out, nil
}

// Action is what apply does with one runtime.
type Action string

// The actions of a plan.
const (
	// Create registers a runtime the host does not have.
	Create Action = "create"
	// Unchanged: the host has it as the manifest says.
	Unchanged Action = "unchanged"
	// Change sets what socketley set can change (limits, properties,
	// harden) and starts or stops it as its state says.
	Change Action = "change"
	// Replace changes what set cannot (arguments, environment, restart
	// policy …) in place (add with replace): the runtime restarts, and
	// keeps its restart count and history.
	Replace Action = "replace"
	// Remove removes a runtime the manifest does not list (--prune).
	Remove Action = "remove"
)

// Step is one runtime's part of a plan.
type Step struct {
	Action Action
	Name   string
	// Fields are the settings that differ, by manifest field name.
	Fields []string
	// Desired is the manifest's runtime (nil for Remove).
	Desired *Desired
	// Current is the host's runtime (nil for Create).
	Current *wire.Runtime
}

// String words the step as the plan prints it.
func (s Step) String() string {
	switch s.Action {
	case Change, Replace:
		what := strings.Join(s.Fields, ", ")
		if s.Action == Replace {
			what += " (it restarts with the new settings)"
		}
		return fmt.Sprintf("%-9s %s: %s", s.Action, s.Name, what)
	}
	return fmt.Sprintf("%-9s %s", s.Action, s.Name)
}

// settable are the fields socketley set changes in place.
var settable = []string{"limits", "properties", "harden"}

// Plan compares the manifest's runtimes with the host's and returns the
// steps, in the manifest's order, then the removals (prune: the host's
// managed runtimes the manifest does not list; never attached processes
// or orphans).
func Plan(want []Desired, have []wire.Runtime, prune bool) []Step {
	byName := map[string]*wire.Runtime{}
	for i := range have {
		if have[i].Managed && !have[i].Orphan {
			byName[have[i].Name] = &have[i]
		}
	}
	var steps []Step
	listed := map[string]bool{}
	for i := range want {
		d := &want[i]
		listed[d.Spec.Name] = true
		cur, ok := byName[d.Spec.Name]
		if !ok {
			steps = append(steps, Step{Action: Create, Name: d.Spec.Name, Desired: d})
			continue
		}
		fields := Diff(FromSpec(SpecOf(*cur), StateOf(*cur)), FromSpec(d.Spec, d.State))
		action := Unchanged
		for _, f := range fields {
			switch {
			case f == "limits" && limitRemoved(cur.Limits, d.Spec.Limits):
				// set cannot take a limit away (infinity is a value).
				action = Replace
			case slices.Contains(settable, f) || f == "state":
				if action == Unchanged {
					action = Change
				}
			default:
				action = Replace
			}
		}
		steps = append(steps, Step{Action: action, Name: d.Spec.Name, Fields: fields, Desired: d, Current: cur})
	}
	if prune {
		for i := range have {
			r := &have[i]
			if r.Managed && !r.Orphan && !listed[r.Name] {
				steps = append(steps, Step{Action: Remove, Name: r.Name, Current: r})
			}
		}
	}
	return steps
}

// Diff returns the manifest fields in which a and b differ, in the order
// of Runtime's fields.
func Diff(a, b Runtime) []string {
	ya, _ := yaml.Marshal(&a)
	yb, _ := yaml.Marshal(&b)
	if string(ya) == string(yb) {
		return nil
	}
	var ma, mb map[string]any
	_ = yaml.Unmarshal(ya, &ma)
	_ = yaml.Unmarshal(yb, &mb)
	var out []string
	for _, k := range fieldOrder() {
		va, vb := ma[k], mb[k]
		ea, _ := yaml.Marshal(va)
		eb, _ := yaml.Marshal(vb)
		if string(ea) != string(eb) {
			out = append(out, k)
		}
	}
	return out
}

// fieldOrder lists the manifest fields of a runtime, in order.
func fieldOrder() []string {
	return []string{"name", "path", "args", "state", "env", "env_files", "credentials", "workdir", "restart",
		"restart_sec", "restart_max_delay", "restart_reset", "max_restarts", "stop_timeout", "attach",
		"attach_timeout", "health_fails", "run_as", "listen", "limits", "harden", "properties"}
}

// limitRemoved reports whether want lacks a limit that have sets.
func limitRemoved(have, want wire.LimitArgs) bool {
	h := FromSpec(wire.AddSpec{Limits: have}, "").Limits
	w := FromSpec(wire.AddSpec{Limits: want}, "").Limits
	for k := range h {
		if _, ok := w[k]; !ok {
			return true
		}
	}
	return false
}
