package export

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/socketley/socketley/internal/wire"
)

// decodeJob decodes b into Nomad's own api.Job, unknown fields disallowed:
// every field the export writes is one Nomad reads.
func decodeJob(t *testing.T, b []byte) api.Job {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var job api.Job
	if err := dec.Decode(&job); err != nil {
		t.Fatalf("decode into api.Job: %v\n%s", err, b)
	}
	return job
}

func TestNomadJob(t *testing.T) {
	web := managed(func(r *wire.Runtime) {
		r.Args = []string{"-port", "8080", "a b"}
		r.Env = []string{"A=1", "B=x=y"}
		r.Restart, r.MaxRestarts, r.RestartSec, r.RestartReset = wire.RestartAlways, 3, wire.Duration(time.Second), wire.Duration(5*time.Second)
		r.StopTimeout = wire.Duration(7 * time.Second)
		r.Properties = []string{"KillSignal=SIGINT", "Nice=5"}
		r.Limits = wire.LimitArgs{MemoryMax: "256M", MemoryHigh: "128M", CPUQuota: "50%"}
		r.Port = 8080
		r.Listen = []string{"127.0.0.1:9090"}
	})
	web.Name = "web"
	worker := managed(func(r *wire.Runtime) { r.Name, r.Restart = "worker", "" })
	once := managed(func(r *wire.Runtime) { r.Name, r.Restart = "once", wire.RestartNo })
	job, lost, err := Nomad("apps", []wire.Runtime{web, worker, once})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NomadJSON(job)
	if err != nil {
		t.Fatal(err)
	}
	j := decodeJob(t, b)
	if *j.ID != "apps" || *j.Name != "apps" || *j.Type != "service" || len(j.TaskGroups) != 3 {
		t.Fatalf("job: %s", b)
	}
	g := j.TaskGroups[0]
	task := g.Tasks[0]
	checks := []struct {
		what string
		ok   bool
	}{
		{"group name and count", *g.Name == "web" && *g.Count == 1},
		{"driver", task.Driver == "raw_exec"},
		{"command", task.Config["command"] == "/bin/sh"},
		{"args", func() bool {
			a, _ := task.Config["args"].([]any)
			return len(a) == 3 && a[0] == "-port" && a[2] == "a b"
		}()},
		{"env", task.Env["A"] == "1" && task.Env["B"] == "x=y" && len(task.Env) == 2},
		{"kill timeout and signal", *task.KillTimeout == 7*time.Second && task.KillSignal == "SIGINT"},
		{"memory", *task.Resources.MemoryMB == 128 && *task.Resources.MemoryMaxMB == 256},
		{"restart: N attempts then fail", *g.RestartPolicy.Attempts == 3 && *g.RestartPolicy.Mode == "fail" &&
			*g.RestartPolicy.Delay == time.Second && *g.RestartPolicy.Interval == 4*6*time.Second},
		{"no reschedule", *g.ReschedulePolicy.Attempts == 0 && !*g.ReschedulePolicy.Unlimited},
		{"ports", len(g.Networks) == 1 && len(g.Networks[0].ReservedPorts) == 2 &&
			g.Networks[0].ReservedPorts[0] == api.Port{Label: "attach", Value: 8080} &&
			g.Networks[0].ReservedPorts[1] == api.Port{Label: "listen0", Value: 9090}},
		{"service with a tcp check", len(g.Services) == 1 && g.Services[0].PortLabel == "attach" && g.Services[0].Provider == "nomad" &&
			g.Services[0].Checks[0].Type == "tcp" && g.Services[0].Checks[0].Interval == 10*time.Second},
		{"for ever: 2 attempts, then delay", *j.TaskGroups[1].RestartPolicy.Mode == "delay" && *j.TaskGroups[1].RestartPolicy.Attempts == 2 &&
			*j.TaskGroups[1].RestartPolicy.Interval == wire.DefaultRestartMaxDelay},
		{"no restart: fail at once", *j.TaskGroups[2].RestartPolicy.Attempts == 0 && *j.TaskGroups[2].RestartPolicy.Mode == "fail"},
		{"no network without a port", len(j.TaskGroups[1].Networks) == 0 && len(j.TaskGroups[1].Services) == 0},
		{"no SOCKETLEY_ environment", !strings.Contains(string(b), "SOCKETLEY_")},
	}
	for _, c := range checks {
		t.Run(c.what, func(t *testing.T) {
			if !c.ok {
				t.Errorf("%s: not as expected:\n%s", c.what, b)
			}
		})
	}
	for _, want := range []string{"-p Nice=5", "--cpu-quota 50%", "--listen socket activation"} {
		if !strings.Contains(strings.Join(lost["web"], "; "), want) {
			t.Errorf("lost[web] = %q, want %s", lost["web"], want)
		}
	}
	if !strings.Contains(strings.Join(lost["worker"], "; "), "--restart on-failure") {
		t.Errorf("lost[worker] = %q", lost["worker"])
	}
}

func TestNomadRestartValid(t *testing.T) {
	// Nomad refuses an interval under 5 s, and attempts × delay not below
	// the interval.
	for _, rt := range []wire.Runtime{
		managed(nil),
		managed(func(r *wire.Runtime) { r.RestartSec = wire.Duration(time.Minute) }),
		managed(func(r *wire.Runtime) { r.MaxRestarts = 10; r.RestartReset = wire.Duration(time.Millisecond) }),
		managed(func(r *wire.Runtime) { r.Restart = wire.RestartNo }),
		managed(func(r *wire.Runtime) { r.RestartMaxDelay = wire.Duration(time.Second) }),
	} {
		s, err := Spec(rt)
		if err != nil {
			t.Fatal(err)
		}
		p := nomadRestart(s.RestartSec, rt)
		if p.Interval < 5*time.Second || time.Duration(p.Attempts)*p.Delay >= p.Interval || (p.Attempts == 0 && p.Mode != "fail") {
			t.Errorf("%+v: invalid for Nomad: %+v", rt, p)
		}
	}
}

func TestNomadRefuses(t *testing.T) {
	if _, _, err := Nomad("j", []wire.Runtime{{Name: "a", Path: "/x"}}); err == nil {
		t.Error("an attached runtime exported")
	}
	if err := checkJobID("a b"); err == nil {
		t.Error("job ID with a blank accepted")
	}
}
