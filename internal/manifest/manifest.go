// Package manifest reads and writes socketley's declarative file
// (socketley.yaml, docs/apply.md): the managed runtimes of a host with
// every add setting, for socketley apply and socketley export -o yaml.
package manifest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/socketley/socketley/internal/wire"
)

// Version is the manifest format this build reads and writes (the file's
// "version:"; a file without one is read as this version).
const Version = 1

// State values: whether apply leaves a runtime running or stopped.
const (
	StateRunning = "running"
	StateStopped = "stopped"
)

// File is a manifest: its runtimes, in the order of the file.
type File struct {
	Version  int       `yaml:"version"`
	Runtimes []Runtime `yaml:"runtimes"`
}

// Runtime is one managed runtime as the manifest has it. Its fields are
// the flags of socketley add, in systemd's syntax where add takes it;
// empty fields are the defaults. Paths may be relative to the file's
// directory.
type Runtime struct {
	Name            string            `yaml:"name"`
	Path            string            `yaml:"path"`
	Args            []string          `yaml:"args,omitempty"`
	State           string            `yaml:"state,omitempty"`
	Env             map[string]string `yaml:"env,omitempty"`
	EnvFiles        []string          `yaml:"env_files,omitempty"`
	Credentials     map[string]string `yaml:"credentials,omitempty"`
	WorkDir         string            `yaml:"workdir,omitempty"`
	Restart         string            `yaml:"restart,omitempty"`
	RestartSec      string            `yaml:"restart_sec,omitempty"`
	RestartMaxDelay string            `yaml:"restart_max_delay,omitempty"`
	RestartReset    string            `yaml:"restart_reset,omitempty"`
	MaxRestarts     int               `yaml:"max_restarts,omitempty"`
	StopTimeout     string            `yaml:"stop_timeout,omitempty"`
	Attach          bool              `yaml:"attach,omitempty"`
	AttachTimeout   string            `yaml:"attach_timeout,omitempty"`
	HealthFails     *int              `yaml:"health_fails,omitempty"`
	RunAs           string            `yaml:"run_as,omitempty"`
	Listen          []string          `yaml:"listen,omitempty"`
	Limits          map[string]string `yaml:"limits,omitempty"`
	Harden          bool              `yaml:"harden,omitempty"`
	Properties      map[string]string `yaml:"properties,omitempty"`
}

// LimitKeys are the keys of a runtime's limits, as the add flags without
// their dashes.
var limitKeys = []string{"memory_max", "memory_high", "cpu_quota", "cpu_weight", "tasks_max", "nofile"}

// LimitKeys returns the keys a runtime's limits may have.
func LimitKeys() []string { return slices.Clone(limitKeys) }

// Problem is one thing wrong in a manifest, where it is.
type Problem struct {
	File  string // as given ("-" for standard input)
	Line  int    // 1-based; 0 when not known
	Field string // the field's path, such as runtimes[1].limits.memory_max
	Msg   string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Field != "" {
		return loc + ": " + p.Field + ": " + p.Msg
	}
	return loc + ": " + p.Msg
}

// Problems is every problem found in a manifest; its Error lists them, one
// a line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d problem(s):\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// Desired is one runtime a manifest asks for: the add request (paths
// absolute, values canonical, Start unset) and its state.
type Desired struct {
	Spec  wire.AddSpec
	State string
	Line  int // where the runtime begins in the file
}

// Parse reads the manifest data of file (named for the problems; relative
// paths in it are resolved against dir, or are problems when dir is "":
// a manifest applied to another host names that host's files, which only
// an absolute path can) and returns its runtimes as add
// requests, checked as add checks them. A bad manifest returns Problems
// with every problem found: unknown fields, wrong types, bad values,
// names given twice.
func Parse(file, dir string, data []byte) ([]Desired, error) {
	p := &parser{file: file, dir: dir}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{{File: file, Line: yamlErrLine(err), Msg: "not YAML: " + yamlErrMsg(err)}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, Problems{{File: file, Msg: "empty: a manifest has runtimes: (see docs/apply.md)"}}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: doc.Line, Msg: "give a mapping with version: and runtimes:"}}
	}
	var items *yaml.Node
	given := false // runtimes: is there, maybe of a wrong type
	p.fields(doc, "", map[string]func(*yaml.Node){
		"version": func(n *yaml.Node) {
			var v int
			if p.decode(n, "version", &v) && v != Version {
				p.add(n, "version", fmt.Sprintf("version %d: this socketley reads version %d", v, Version))
			}
		},
		"runtimes": func(n *yaml.Node) {
			given = true
			if n.Kind != yaml.SequenceNode {
				p.add(n, "runtimes", "give a list of runtimes")
				return
			}
			items = n
		},
	})
	if !given {
		p.add(doc, "runtimes", "missing: a manifest lists its runtimes under runtimes:")
	}
	var out []Desired
	seen := map[string]int{}
	if items != nil {
		for i, item := range items.Content {
			d, ok := p.runtime(item, fmt.Sprintf("runtimes[%d]", i))
			if !ok {
				continue
			}
			if first, dup := seen[d.Spec.Name]; dup {
				p.add(item, fmt.Sprintf("runtimes[%d].name", i), fmt.Sprintf("%s is given twice (first on line %d)", d.Spec.Name, first))
				continue
			}
			seen[d.Spec.Name] = item.Line
			out = append(out, d)
		}
	}
	if len(p.problems) > 0 {
		return nil, p.problems
	}
	return out, nil
}

type parser struct {
	file, dir string
	problems  Problems
}

func (p *parser) add(n *yaml.Node, field, msg string) {
	p.problems = append(p.problems, Problem{File: p.file, Line: n.Line, Field: field, Msg: msg})
}

// fields calls each known key's handler with its value and reports the
// unknown keys and the keys given twice.
func (p *parser) fields(m *yaml.Node, prefix string, known map[string]func(*yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		name := prefix + k.Value
		h, ok := known[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.add(k, prefix+"?", "a key must be a plain word")
		case !ok:
			keys := make([]string, 0, len(known))
			for key := range known {
				keys = append(keys, key)
			}
			slices.Sort(keys)
			p.add(k, name, "unknown field; the fields are "+strings.Join(keys, ", "))
		case seen[k.Value]:
			p.add(k, name, "given twice")
		default:
			seen[k.Value] = true
			h(v)
		}
	}
}

// decode decodes n into v, reporting a wrong type at n.
func (p *parser) decode(n *yaml.Node, field string, v any) bool {
	if err := n.Decode(v); err != nil {
		p.add(n, field, "wrong type: "+yamlErrMsg(err))
		return false
	}
	return true
}

// runtime reads one item of runtimes.
func (p *parser) runtime(n *yaml.Node, at string) (Desired, bool) {
	if n.Kind != yaml.MappingNode {
		p.add(n, at, "give a mapping with name:, path: and the runtime's settings")
		return Desired{}, false
	}
	before := len(p.problems)
	var r Runtime
	str := func(dst *string) func(*yaml.Node) {
		return func(v *yaml.Node) { p.scalar(v, at, dst) }
	}
	field := func(name string) string { return at + "." + name }
	known := map[string]func(*yaml.Node){
		"name":              str(&r.Name),
		"path":              str(&r.Path),
		"args":              func(v *yaml.Node) { p.decode(v, field("args"), &r.Args) },
		"state":             str(&r.State),
		"env":               func(v *yaml.Node) { p.decode(v, field("env"), &r.Env) },
		"env_files":         func(v *yaml.Node) { p.decode(v, field("env_files"), &r.EnvFiles) },
		"credentials":       func(v *yaml.Node) { p.decode(v, field("credentials"), &r.Credentials) },
		"workdir":           str(&r.WorkDir),
		"restart":           str(&r.Restart),
		"restart_sec":       str(&r.RestartSec),
		"restart_max_delay": str(&r.RestartMaxDelay),
		"restart_reset":     str(&r.RestartReset),
		"max_restarts":      func(v *yaml.Node) { p.decode(v, field("max_restarts"), &r.MaxRestarts) },
		"stop_timeout":      str(&r.StopTimeout),
		"attach":            func(v *yaml.Node) { p.decode(v, field("attach"), &r.Attach) },
		"attach_timeout":    str(&r.AttachTimeout),
		"health_fails":      func(v *yaml.Node) { p.decode(v, field("health_fails"), &r.HealthFails) },
		"run_as":            str(&r.RunAs),
		"listen":            func(v *yaml.Node) { p.listen(v, field("listen"), &r.Listen) },
		"limits": func(v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				p.add(v, field("limits"), "give a mapping such as {memory_max: 512M}")
				return
			}
			r.Limits = map[string]string{}
			known := map[string]func(*yaml.Node){}
			for _, k := range limitKeys {
				known[k] = func(v *yaml.Node) {
					var s string
					p.scalar(v, at+".limits."+k, &s)
					r.Limits[k] = s
				}
			}
			p.fields(v, at+".limits.", known)
		},
		"harden":     func(v *yaml.Node) { p.decode(v, field("harden"), &r.Harden) },
		"properties": func(v *yaml.Node) { p.decode(v, field("properties"), &r.Properties) },
	}
	// Where each field is, for the problems found after the types.
	lines := map[string]int{}
	for k, h := range known {
		known[k] = func(v *yaml.Node) { lines[k] = v.Line; h(v) }
	}
	p.fields(n, at+".", known)
	if r.Name == "" {
		p.add(n, field("name"), "missing: every runtime has a name")
	}
	if r.Path == "" {
		p.add(n, field("path"), "missing: the executable to run")
	}
	if len(p.problems) > before {
		return Desired{}, false
	}
	d, probs := r.desired(p.dir)
	for _, pr := range probs {
		line := n.Line
		top, _, _ := strings.Cut(pr.Field, ".")
		if l, ok := lines[top]; ok {
			line = l
		}
		field := at
		if pr.Field != "" {
			field += "." + pr.Field
		}
		p.problems = append(p.problems, Problem{File: p.file, Line: line, Field: field, Msg: pr.Msg})
	}
	d.Line = n.Line
	return d, len(probs) == 0
}

// scalar reads a plain value (a string, a number: 8080, 50%, 10s) as text.
func (p *parser) scalar(v *yaml.Node, at string, dst *string) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.add(v, at, "give a single value")
		return
	}
	*dst = v.Value
}

// listen reads listen addresses, which may be written as numbers (7070).
func (p *parser) listen(v *yaml.Node, at string, dst *[]string) {
	if v.Kind != yaml.SequenceNode {
		p.add(v, at, "give a list such as [7070, \"127.0.0.1:8080\"]")
		return
	}
	for i, n := range v.Content {
		var s string
		p.scalar(n, fmt.Sprintf("%s[%d]", at, i), &s)
		*dst = append(*dst, s)
	}
}

// desired turns r into an add request checked as add checks it; the
// problems name r's fields.
func (r Runtime) desired(dir string) (Desired, []Problem) {
	var probs []Problem
	bad := func(field, msg string) { probs = append(probs, Problem{Field: field, Msg: msg}) }
	abs := func(field, path string) string {
		if path == "" {
			return ""
		}
		if !filepath.IsAbs(path) {
			if dir == "" {
				bad(field, fmt.Sprintf("%q is relative: applied to another host (-H), a path names a file of that host; give it absolute (such as /usr/local/bin/app)", path))
				return path
			}
			path = filepath.Join(dir, path)
		}
		return filepath.Clean(path)
	}
	dur := func(field, s string) wire.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			bad(field, fmt.Sprintf("%q is not a duration such as 10s or 500ms", s))
		}
		return wire.Duration(d)
	}
	spec := wire.AddSpec{
		Name: r.Name, Path: abs("path", r.Path), Args: r.Args, WorkDir: abs("workdir", r.WorkDir),
		Restart: wire.RestartPolicy(r.Restart), RestartSec: dur("restart_sec", r.RestartSec),
		RestartMaxDelay: dur("restart_max_delay", r.RestartMaxDelay), RestartReset: dur("restart_reset", r.RestartReset),
		MaxRestarts: r.MaxRestarts, StopTimeout: dur("stop_timeout", r.StopTimeout), ExpectAttach: r.Attach,
		AttachTimeout: dur("attach_timeout", r.AttachTimeout), HealthFails: r.HealthFails, RunAs: r.RunAs,
		Listen: r.Listen, Harden: r.Harden,
	}
	for _, k := range sortedKeys(r.Env) {
		spec.Env = append(spec.Env, k+"="+r.Env[k])
	}
	for _, f := range r.EnvFiles {
		spec.EnvFiles = append(spec.EnvFiles, abs("env_files", f))
	}
	for _, id := range sortedKeys(r.Credentials) {
		spec.Credentials = append(spec.Credentials, wire.Credential{ID: id, Path: abs("credentials", r.Credentials[id])})
	}
	for _, k := range sortedKeys(r.Properties) {
		spec.Properties = append(spec.Properties, k+"="+r.Properties[k])
	}
	l := r.Limits
	spec.Limits = wire.LimitArgs{MemoryMax: l["memory_max"], MemoryHigh: l["memory_high"], CPUQuota: l["cpu_quota"],
		CPUWeight: l["cpu_weight"], TasksMax: l["tasks_max"], NOFILE: l["nofile"]}
	state := r.State
	switch state {
	case "":
		state = StateRunning
	case StateRunning, StateStopped:
	default:
		bad("state", fmt.Sprintf("%q: give running (the default) or stopped", r.State))
	}
	if len(probs) > 0 {
		return Desired{}, probs
	}
	if err := spec.Check(); err != nil {
		return Desired{}, []Problem{{Field: fieldOf(err), Msg: err.Error()}}
	}
	return Desired{Spec: spec, State: state}, nil
}

// fieldOf names the manifest field an add check's error is about, from
// the flag it names ("" when none).
func fieldOf(err error) string {
	msg := err.Error()
	for _, f := range []struct{ flag, field string }{
		{"--memory-max", "limits.memory_max"}, {"--memory-high", "limits.memory_high"}, {"--cpu-quota", "limits.cpu_quota"},
		{"--cpu-weight", "limits.cpu_weight"}, {"--tasks-max", "limits.tasks_max"}, {"--nofile", "limits.nofile"},
		{"-p/--property", "properties"}, {"--restart-max-delay", "restart_max_delay"}, {"--restart-reset", "restart_reset"},
		{"--restart-sec", "restart_sec"}, {"--restart", "restart"}, {"--max-restarts", "max_restarts"},
		{"--stop-timeout", "stop_timeout"}, {"--attach-timeout", "attach_timeout"}, {"--health-fails", "health_fails"},
		{"--listen", "listen"}, {"--env-file", "env_files"}, {"--credential", "credentials"}, {"--env", "env"},
		{"--run-as", "run_as"}, {"--workdir", "workdir"},
	} {
		if strings.Contains(msg, f.flag) {
			return f.field
		}
	}
	if strings.Contains(msg, "name") {
		return "name"
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// yamlErrLine and yamlErrMsg take the line and the words of a yaml error
// ("yaml: line 3: did not find expected key").
func yamlErrLine(err error) int {
	_, rest, ok := strings.Cut(err.Error(), "line ")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(rest, ":", 2)[0])
	return n
}

func yamlErrMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return msg
}
