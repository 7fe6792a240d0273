package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/socketley/socketley/internal/wire"
)

// t0 is a fixed instant: 2026-12-06 12:00:00 UTC.
var t0 = time.Unix(1796558400, 0).UTC()

// fixedView is a set of runtimes in every shape a scrape meets.
func fixedView() []wire.Runtime {
	return []wire.Runtime{
		// A managed runtime that attached 1.5 s after its start, with a
		// usage sample.
		{Name: "api", Mode: wire.ModeUnit, Managed: true, Status: wire.StatusRunning, PID: 100, Restarts: 3, HealthRestarts: 1,
			Since: t0, AttachPID: 100, AttachedAt: t0.Add(1500 * time.Millisecond),
			Usage: &wire.Usage{CPUUsec: 2_500_000, CPUPercent: 12.5, MemoryBytes: 12 << 20, Tasks: 7, Source: wire.UsageCgroup, At: t0}},
		// Crash-looping: no process; its last attach was of an older process.
		{Name: "crashy", Mode: wire.ModeUnit, Managed: true, Status: wire.StatusCrashLoop, Restarts: 12,
			AttachPID: 90, AttachedAt: t0.Add(-time.Hour)},
		// An attached process.
		{Name: "legacy", Mode: wire.ModeAttach, Status: wire.StatusUnhealthy, PID: 200, Since: t0.Add(time.Second), AttachPID: 200, AttachedAt: t0.Add(time.Second)},
		// An orphan unit, and a status a newer daemon might add.
		{Name: "old", Mode: wire.ModeOrphan, Orphan: true, Status: wire.StatusOrphan, PID: 300, Since: t0, Restarts: 2},
		{Name: `odd"name`, Mode: wire.ModeUnit, Managed: true, Status: wire.Status("sleeping")},
	}
}

// TestRuntimeFamilies holds the per-runtime output for a fixed view to the
// exact text: which series each shape of runtime gets, and their values.
func TestRuntimeFamilies(t *testing.T) {
	got := string(appendRuntimes(nil, fixedView(), true))
	var want strings.Builder
	want.WriteString(`# HELP socketley_runtimes Runtimes in the registry by mode (unit: managed, attach: attached processes), and socketley-* units without an entry (orphan).
# TYPE socketley_runtimes gauge
socketley_runtimes{mode="attach"} 1
socketley_runtimes{mode="orphan"} 1
socketley_runtimes{mode="unit"} 3
# HELP socketley_runtime_up 1 when the runtime's status is running (its process runs and, once attached, its port answers), else 0.
# TYPE socketley_runtime_up gauge
socketley_runtime_up{name="api",mode="unit"} 1
socketley_runtime_up{name="crashy",mode="unit"} 0
socketley_runtime_up{name="legacy",mode="attach"} 0
socketley_runtime_up{name="old",mode="orphan"} 0
socketley_runtime_up{name="odd\"name",mode="unit"} 0
# HELP socketley_runtime_status The runtime's status as ls shows it: one series per status, 1 for the current one and 0 for the others.
# TYPE socketley_runtime_status gauge
`)
	for _, r := range []struct{ name, mode, status string }{
		{"api", "unit", "running"}, {"crashy", "unit", "crash-loop"}, {"legacy", "attach", "unhealthy"},
		{"old", "orphan", "orphan"}, {`odd\"name`, "unit", "unknown"},
	} {
		for _, st := range wire.Statuses {
			v := "0"
			if string(st) == r.status {
				v = "1"
			}
			want.WriteString(`socketley_runtime_status{name="` + r.name + `",mode="` + r.mode + `",status="` + string(st) + `"} ` + v + "\n")
		}
	}
	want.WriteString(`# HELP socketley_runtime_restarts_total Restarts of the runtime: crashes restarted by systemd or by the daemon's backoff, and health restarts.
# TYPE socketley_runtime_restarts_total counter
socketley_runtime_restarts_total{name="api",mode="unit"} 3
socketley_runtime_restarts_total{name="crashy",mode="unit"} 12
socketley_runtime_restarts_total{name="legacy",mode="attach"} 0
socketley_runtime_restarts_total{name="old",mode="orphan"} 2
socketley_runtime_restarts_total{name="odd\"name",mode="unit"} 0
# HELP socketley_runtime_health_restarts_total Restarts the daemon's health check made (attach overdue, port refused); counted in socketley_runtime_restarts_total too.
# TYPE socketley_runtime_health_restarts_total counter
socketley_runtime_health_restarts_total{name="api",mode="unit"} 1
socketley_runtime_health_restarts_total{name="crashy",mode="unit"} 0
socketley_runtime_health_restarts_total{name="legacy",mode="attach"} 0
socketley_runtime_health_restarts_total{name="old",mode="orphan"} 0
socketley_runtime_health_restarts_total{name="odd\"name",mode="unit"} 0
# HELP socketley_runtime_start_time_seconds When the runtime's current process started (an attached process: when it attached), in seconds since the Unix epoch; absent when no process runs.
# TYPE socketley_runtime_start_time_seconds gauge
socketley_runtime_start_time_seconds{name="api",mode="unit"} 1796558400
socketley_runtime_start_time_seconds{name="legacy",mode="attach"} 1796558401
socketley_runtime_start_time_seconds{name="old",mode="orphan"} 1796558400
# HELP socketley_runtime_attach_latency_seconds For a managed runtime whose current process attached: the time from its start to its attach.
# TYPE socketley_runtime_attach_latency_seconds gauge
socketley_runtime_attach_latency_seconds{name="api",mode="unit"} 1.5
# HELP socketley_runtime_cpu_seconds_total CPU time (user and system) used by the runtime's unit, from its cgroup's cpu.stat at the last health tick; absent where the cgroup controllers are not available.
# TYPE socketley_runtime_cpu_seconds_total counter
socketley_runtime_cpu_seconds_total{name="api",mode="unit"} 2.5
# HELP socketley_runtime_cpu_cores CPU in use by the runtime's processes, in cores (1 is one CPU busy), over the health interval before the last tick.
# TYPE socketley_runtime_cpu_cores gauge
socketley_runtime_cpu_cores{name="api",mode="unit"} 0.125
# HELP socketley_runtime_memory_bytes Memory in use by the runtime's processes (the cgroup's memory.current, or the sum of their resident sets), as sampled at the last health tick.
# TYPE socketley_runtime_memory_bytes gauge
socketley_runtime_memory_bytes{name="api",mode="unit"} 12582912
# HELP socketley_runtime_tasks Processes and threads of the runtime, as sampled at the last health tick.
# TYPE socketley_runtime_tasks gauge
socketley_runtime_tasks{name="api",mode="unit"} 7
`)
	if got != want.String() {
		t.Errorf("got:\n%s\nwant:\n%s", got, want.String())
	}
}

// TestRuntimeFamiliesWithoutView: before the daemon is connected, and with
// an empty registry, no runtime series (and no empty family) is written.
func TestRuntimeFamiliesWithoutView(t *testing.T) {
	if got := appendRuntimes(nil, nil, false); len(got) != 0 {
		t.Errorf("not connected: got %q, want nothing", got)
	}
	got := string(appendRuntimes(nil, nil, true))
	if !strings.Contains(got, `socketley_runtimes{mode="unit"} 0`) || strings.Contains(got, "socketley_runtime_") {
		t.Errorf("empty registry: got\n%s", got)
	}
}

// parse reads a scrape with client_golang's own parser.
func parse(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, b)
	}
	return fams
}

// TestScrapeParsesAndLints: a whole scrape, with requests counted, is read
// by client_golang's parser and passes its linter (promlint: naming, units,
// counters named _total), and has the families docs/metrics.md lists.
func TestScrapeParsesAndLints(t *testing.T) {
	var reqs Requests
	reqs.Observe(wire.CmdList, "", 300*time.Microsecond)
	reqs.Observe(wire.CmdStart, wire.ClassNotFound, 2*time.Millisecond)
	s := &Source{
		Runtimes: func() ([]wire.Runtime, bool) { return fixedView(), true },
		Version:  wire.VersionInfo{Version: "1.2.3", Commit: "abcdef012345"},
		Requests: &reqs,
		Started:  t0,
	}
	b := s.Append(nil)
	fams := parse(t, b)
	problems, err := promlint.New(bytes.NewReader(b)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for name, typ := range map[string]dto.MetricType{
		"socketley_build_info": dto.MetricType_GAUGE, "socketley_systemd_connected": dto.MetricType_GAUGE,
		"socketley_runtimes": dto.MetricType_GAUGE, "socketley_runtime_up": dto.MetricType_GAUGE,
		"socketley_runtime_status": dto.MetricType_GAUGE, "socketley_runtime_restarts_total": dto.MetricType_COUNTER,
		"socketley_runtime_health_restarts_total": dto.MetricType_COUNTER, "socketley_runtime_start_time_seconds": dto.MetricType_GAUGE,
		"socketley_runtime_attach_latency_seconds": dto.MetricType_GAUGE, "socketley_runtime_cpu_seconds_total": dto.MetricType_COUNTER, "socketley_runtime_cpu_cores": dto.MetricType_GAUGE,
		"socketley_runtime_memory_bytes": dto.MetricType_GAUGE, "socketley_runtime_tasks": dto.MetricType_GAUGE,
		"socketley_control_requests_total": dto.MetricType_COUNTER, "socketley_control_request_duration_seconds": dto.MetricType_HISTOGRAM,
		"process_cpu_seconds_total": dto.MetricType_COUNTER, "process_resident_memory_bytes": dto.MetricType_GAUGE,
		"process_open_fds": dto.MetricType_GAUGE, "process_max_fds": dto.MetricType_GAUGE,
		"process_start_time_seconds": dto.MetricType_GAUGE, "go_goroutines": dto.MetricType_GAUGE, "go_info": dto.MetricType_GAUGE,
	} {
		f, ok := fams[name]
		if !ok {
			t.Errorf("no %s in the scrape", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %s, want a %s", name, f.GetType(), typ)
		}
	}
	bi := fams["socketley_build_info"].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range bi.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != "1.2.3" || labels["commit"] != "abcdef012345" || !strings.HasPrefix(labels["goversion"], "go") {
		t.Errorf("socketley_build_info labels %v", labels)
	}
	if v := fams["process_start_time_seconds"].GetMetric()[0].GetGauge().GetValue(); v != 1796558400 {
		t.Errorf("process_start_time_seconds %v, want 1796558400", v)
	}
}

// TestRequests: the counts by command and result, the cumulative
// histogram, and no label value made of an unknown command that failed
// (a client's word).
func TestRequests(t *testing.T) {
	var r Requests
	r.Observe(wire.CmdList, "", 300*time.Microsecond)
	r.Observe(wire.CmdList, "", 3*time.Millisecond)
	r.Observe(wire.CmdList, "", 90*time.Second) // past the last bucket: only +Inf
	r.Observe(wire.CmdStop, wire.ClassNotFound, time.Millisecond)
	r.Observe("rm -rf", wire.ClassInvalid, time.Millisecond)
	r.Observe("", wire.ClassInvalid, time.Millisecond)
	r.Observe("events", "", time.Millisecond) // a newer command that worked
	fams := parse(t, r.Append(nil))

	counts := map[string]float64{}
	for _, m := range fams["socketley_control_requests_total"].GetMetric() {
		var cmd, res string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "command":
				cmd = l.GetValue()
			case "result":
				res = l.GetValue()
			}
		}
		counts[cmd+"/"+res] = m.GetCounter().GetValue()
	}
	want := map[string]float64{"ls/ok": 3, "stop/not-found": 1, "other/invalid": 2, "events/ok": 1}
	if len(counts) != len(want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("requests %s: %v, want %v (all: %v)", k, counts[k], v, counts)
		}
	}
	for _, m := range fams["socketley_control_request_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() != wire.CmdList {
			continue
		}
		h := m.GetHistogram()
		if h.GetSampleCount() != 3 || h.GetSampleSum() < 90 {
			t.Errorf("ls histogram count %d sum %v, want 3 and ≥ 90", h.GetSampleCount(), h.GetSampleSum())
		}
		cum := map[float64]uint64{}
		for _, b := range h.GetBucket() {
			cum[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		for le, n := range map[float64]uint64{0.0005: 1, 0.0025: 1, 0.005: 2, 60: 2} {
			if cum[le] != n {
				t.Errorf("ls histogram le=%v: %d, want %d", le, cum[le], n)
			}
		}
		return
	}
	t.Error("no ls latency histogram")
}

// TestParseAddr: the --metrics-listen syntax.
func TestParseAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9559", true}, {"[::1]:9559", true}, {":9559", true}, {"localhost:0", true},
		{"9559", false}, {"127.0.0.1", false}, {"127.0.0.1:http", false}, {"127.0.0.1:70000", false},
		{"127.0.0.1:-1", false}, {"", false}, {"a b:1", false}, {"[::1:9559", false},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			if err := ParseAddr(tt.addr); (err == nil) != tt.ok {
				t.Errorf("ParseAddr(%q) = %v, want ok %v", tt.addr, err, tt.ok)
			}
		})
	}
}

// BenchmarkScrape1000 is one scrape's encoding (the buffer sized by the
// previous scrape, as the server does) at 1,000 runtimes (the view
// given; manager's BenchmarkScrape1000 adds building it).
func BenchmarkScrape1000(b *testing.B) {
	rts := make([]wire.Runtime, 1000)
	for i := range rts {
		rts[i] = fixedView()[0]
		rts[i].Name = "r" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i)
	}
	s := &Source{Runtimes: func() ([]wire.Runtime, bool) { return rts, true }, Requests: &Requests{}, Started: t0}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		n = len(s.Scrape())
	}
	b.ReportMetric(float64(n), "bytes/scrape")
}

func itoa(i int) string { return string(appendValue(nil, float64(i))) }
