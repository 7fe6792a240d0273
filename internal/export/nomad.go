package export

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// The Nomad job of export --format nomad, in the JSON form `nomad job run
// -json` takes. The types carry the field names of
// github.com/hashicorp/nomad/api (Job, TaskGroup, Task, RestartPolicy,
// ReschedulePolicy, NetworkResource, Port, Service, ServiceCheck,
// Resources), which the tests decode the output into with unknown fields
// disallowed; the binary does not link that package (it pulls in
// net/http). Durations are nanoseconds, as api's time.Duration fields
// encode.

// NomadJob is a Nomad job (api.Job): one task group per runtime.
type NomadJob struct {
	ID          string
	Name        string
	Type        string
	Datacenters []string
	TaskGroups  []NomadGroup
	Meta        map[string]string `json:",omitempty"`
}

// NomadGroup is a task group (api.TaskGroup) of one runtime.
type NomadGroup struct {
	Name             string
	Count            int
	Tasks            []NomadTask
	RestartPolicy    NomadRestart
	ReschedulePolicy NomadReschedule
	Networks         []NomadNetwork `json:",omitempty"`
	Services         []NomadService `json:",omitempty"`
}

// NomadTask is the runtime's task (api.Task).
type NomadTask struct {
	Name        string
	Driver      string
	User        string `json:",omitempty"`
	Config      map[string]any
	Env         map[string]string `json:",omitempty"`
	Resources   *NomadResources   `json:",omitempty"`
	KillTimeout time.Duration     `json:",omitempty"`
	KillSignal  string            `json:",omitempty"`
}

// NomadRestart is a restart policy (api.RestartPolicy): at most Attempts
// restarts, each after Delay, within Interval; then Mode "fail" fails the
// task, "delay" waits for the end of the interval and goes on.
type NomadRestart struct {
	Attempts int
	Delay    time.Duration
	Interval time.Duration
	Mode     string
}

// NomadReschedule is a reschedule policy (api.ReschedulePolicy): whether
// a failed allocation is placed again (on another node).
type NomadReschedule struct {
	Attempts  int
	Interval  time.Duration
	Unlimited bool
}

// NomadNetwork is a group network (api.NetworkResource) with static ports.
type NomadNetwork struct {
	ReservedPorts []NomadPort
}

// NomadPort is a static port (api.Port).
type NomadPort struct {
	Label string
	Value int
}

// NomadService is a service (api.Service) registered in Nomad's own
// catalogue, with a TCP check of its port.
type NomadService struct {
	Name      string
	PortLabel string
	Provider  string
	Checks    []NomadCheck
}

// NomadCheck is a service check (api.ServiceCheck).
type NomadCheck struct {
	Name     string
	Type     string
	Interval time.Duration
	Timeout  time.Duration
}

// NomadResources are a task's resources (api.Resources), in MiB.
type NomadResources struct {
	MemoryMB    *int `json:",omitempty"`
	MemoryMaxMB *int `json:",omitempty"`
}

// nomadMinInterval is Nomad's least restart interval (RestartPolicy.Interval
// is refused below 5 s).
const nomadMinInterval = 5 * time.Second

// nomadMinMemoryMB is the least memory Nomad accepts for a task.
const nomadMinMemoryMB = 10

// Nomad returns the Nomad job id with one task group per managed runtime
// of rts, and for each runtime the settings that have no Nomad equivalent
// (in words, for a note on stderr). The error wraps ErrNotExportable.
func Nomad(id string, rts []wire.Runtime) (NomadJob, map[string][]string, error) {
	job := NomadJob{ID: id, Name: id, Type: "service", Datacenters: []string{"*"}}
	lost := map[string][]string{}
	for _, rt := range rts {
		g, l, err := nomadGroup(rt)
		if err != nil {
			return NomadJob{}, nil, err
		}
		job.TaskGroups = append(job.TaskGroups, g)
		if len(l) > 0 {
			lost[rt.Name] = l
		}
	}
	return job, lost, nil
}

// NomadJSON is job as `nomad job run -json` reads it, indented.
func NomadJSON(job NomadJob) ([]byte, error) {
	b, err := json.MarshalIndent(job, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("nomad job %s: %w", job.ID, err)
	}
	return append(b, '\n'), nil
}

// nomadGroup maps one runtime (docs/cli.md, "Nomad").
func nomadGroup(rt wire.Runtime) (NomadGroup, []string, error) {
	spec, err := Spec(rt)
	if err != nil {
		return NomadGroup{}, nil, err
	}
	var lost []string
	task := NomadTask{
		Name:        rt.Name,
		Driver:      "raw_exec",
		User:        rt.User,
		Config:      map[string]any{"command": rt.Path, "args": append([]string{}, rt.Args...)},
		KillTimeout: spec.StopTimeout,
	}
	for _, a := range rt.Args {
		if strings.Contains(a, "${") {
			lost = append(lost, fmt.Sprintf("argument %q: Nomad interpolates ${...} in arguments", a))
		}
	}
	if len(rt.Env) > 0 {
		task.Env = map[string]string{}
		for _, kv := range rt.Env {
			k, v, _ := strings.Cut(kv, "=")
			task.Env[k] = v
			if strings.Contains(v, "${") {
				lost = append(lost, fmt.Sprintf("--env %s: Nomad interpolates ${...} in values", k))
			}
		}
	}
	for _, p := range rt.Properties {
		k, v, _ := strings.Cut(p, "=")
		if k == "KillSignal" {
			task.KillSignal = v
			continue
		}
		lost = append(lost, "-p "+p)
	}
	if rt.Restart == wire.RestartOnFailure || rt.Restart == "" {
		lost = append(lost, "--restart on-failure (Nomad restarts a service task after any exit, a clean one too)")
	}
	if rt.WorkDir != "" {
		lost = append(lost, "--workdir "+rt.WorkDir+" (the task runs in its task directory)")
	}
	for _, f := range rt.EnvFiles {
		lost = append(lost, "--env-file "+f)
	}
	for _, c := range rt.Credentials {
		lost = append(lost, "--credential "+c.ID+":"+c.Path)
	}
	if rt.Harden {
		lost = append(lost, "--harden (raw_exec has no sandbox)")
	}
	l := spec.Limits
	var res NomadResources
	mib := func(b uint64) *int {
		n := max(int((b+(1<<20)-1)>>20), nomadMinMemoryMB)
		return &n
	}
	switch {
	case l.MemoryHigh != 0 && l.MemoryHigh != wire.Infinity && l.MemoryMax != 0 && l.MemoryMax != wire.Infinity:
		res.MemoryMB, res.MemoryMaxMB = mib(l.MemoryHigh), mib(l.MemoryMax)
	case l.MemoryMax != 0 && l.MemoryMax != wire.Infinity:
		res.MemoryMB = mib(l.MemoryMax)
	case l.MemoryHigh != 0 && l.MemoryHigh != wire.Infinity:
		res.MemoryMB = mib(l.MemoryHigh)
	}
	if res.MemoryMB != nil {
		task.Resources = &res
	}
	for _, x := range []struct{ flag, v string }{{"--cpu-quota", rt.Limits.CPUQuota}, {"--cpu-weight", rt.Limits.CPUWeight},
		{"--tasks-max", rt.Limits.TasksMax}, {"--nofile", rt.Limits.NOFILE}} {
		if x.v != "" {
			lost = append(lost, x.flag+" "+x.v)
		}
	}
	g := NomadGroup{Name: rt.Name, Count: 1, Tasks: []NomadTask{task}, RestartPolicy: nomadRestart(spec.RestartSec, rt),
		ReschedulePolicy: NomadReschedule{}}
	// The ports: the attach port and the --listen ones, reserved as they
	// are (the program binds them itself: Nomad passes no socket), with a
	// TCP check of the first.
	var ports []NomadPort
	if rt.Port > 0 {
		ports = append(ports, NomadPort{Label: "attach", Value: rt.Port})
	}
	for i, a := range rt.Listen {
		p, err := listenPort(a)
		if err != nil {
			return NomadGroup{}, nil, fmt.Errorf("%s: --listen %s: %w", rt.Name, a, err)
		}
		if p != rt.Port {
			ports = append(ports, NomadPort{Label: "listen" + strconv.Itoa(i), Value: p})
		}
	}
	if len(rt.Listen) > 0 {
		lost = append(lost, "--listen socket activation (the program must bind the port itself)")
	}
	if len(ports) > 0 {
		g.Networks = []NomadNetwork{{ReservedPorts: ports}}
		g.Services = []NomadService{{Name: rt.Name, PortLabel: ports[0].Label, Provider: "nomad",
			Checks: []NomadCheck{{Name: rt.Name + "-port", Type: "tcp", Interval: 10 * time.Second, Timeout: 2 * time.Second}}}}
	}
	return g, lost, nil
}

// nomadRestart maps the restart policy (delay: the systemd mapping's
// RestartSec):
//   - no restart: no attempt, the task fails;
//   - --max-restarts N: N attempts within (N+1) × (--restart-reset + delay),
//     then the task fails (and is not rescheduled): socketley's give-up;
//   - for ever: 2 attempts within --restart-max-delay (at least 5 s, Nomad's
//     least), then Nomad waits for the end of the interval and goes on: a
//     crash loop settles at about socketley's longest delay.
func nomadRestart(delay time.Duration, rt wire.Runtime) NomadRestart {
	policy := rt.Restart
	if policy == "" {
		policy = wire.DefaultRestart
	}
	switch {
	case !policy.Restarts():
		return NomadRestart{Attempts: 0, Delay: delay, Interval: max(restartReset(rt), nomadMinInterval), Mode: "fail"}
	case rt.MaxRestarts > 0:
		n := rt.MaxRestarts
		return NomadRestart{Attempts: n, Delay: delay, Interval: max(time.Duration(n+1)*(restartReset(rt)+delay), nomadMinInterval), Mode: "fail"}
	}
	return NomadRestart{Attempts: 2, Delay: delay, Interval: max(restartMaxDelay(rt), nomadMinInterval, 3*delay+time.Second), Mode: "delay"}
}

// listenPort is the port of a --listen address (PORT, IPv4:PORT,
// [IPv6]:PORT).
func listenPort(a string) (int, error) {
	s := a
	if _, p, err := net.SplitHostPort(a); err == nil {
		s = p
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("no port in the address")
	}
	return n, nil
}
