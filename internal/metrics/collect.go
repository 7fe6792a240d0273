package metrics

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// Source is what a scrape reads.
type Source struct {
	// Runtimes returns the runtime view (what `ls` gets, orphan units
	// included) and whether the daemon holds one: false before it has
	// connected to systemd and while it reconnects, when the view would
	// be without the units' states.
	Runtimes func() ([]wire.Runtime, bool)
	// Version is the daemon's build.
	Version wire.VersionInfo
	// Requests are the daemon's control request counts (nil: none).
	Requests *Requests
	// Started is when the daemon started (process_start_time_seconds).
	Started time.Time

	// last is the size of the previous scrape, the next one's buffer size
	// (growing a buffer of a megabyte by appends costs most of a scrape).
	last atomic.Int64
}

// Scrape returns one scrape in the text exposition format.
func (s *Source) Scrape() []byte {
	b := s.Append(make([]byte, 0, s.last.Load()*9/8+4096))
	s.last.Store(int64(len(b)))
	return b
}

// Append appends one scrape, in the text exposition format, to b.
func (s *Source) Append(b []byte) []byte {
	var rts []wire.Runtime
	ok := false
	if s.Runtimes != nil {
		rts, ok = s.Runtimes()
	}
	b = header(b, "socketley_build_info", "The daemon's build: version, commit and Go version (value 1).", gauge)
	b = sample(b, "socketley_build_info", 1, "version", s.Version.Version, "commit", s.Version.Commit, "goversion", runtime.Version())
	b = header(b, "socketley_systemd_connected", "1 when the daemon is connected to systemd and exports the runtimes; 0 while it starts or reconnects (no socketley_runtime_* series then).", gauge)
	b = sample(b, "socketley_systemd_connected", boolValue(ok))
	b = appendRuntimes(b, rts, ok)
	if s.Requests != nil {
		b = s.Requests.Append(b)
	}
	return appendProcess(b, s.Started)
}

// appendRuntimes appends the per-runtime families and their count by mode.
// Every family is one pass over rts (a family's samples must be together).
func appendRuntimes(b []byte, rts []wire.Runtime, ok bool) []byte {
	if ok {
		var units, attached, orphans int
		for i := range rts {
			switch rts[i].Mode {
			case wire.ModeUnit:
				units++
			case wire.ModeAttach:
				attached++
			case wire.ModeOrphan:
				orphans++
			}
		}
		b = header(b, "socketley_runtimes", "Runtimes in the registry by mode (unit: managed, attach: attached processes), and socketley-* units without an entry (orphan).", gauge)
		b = sample(b, "socketley_runtimes", float64(attached), "mode", string(wire.ModeAttach))
		b = sample(b, "socketley_runtimes", float64(orphans), "mode", string(wire.ModeOrphan))
		b = sample(b, "socketley_runtimes", float64(units), "mode", string(wire.ModeUnit))
	}
	if len(rts) == 0 {
		return b
	}
	b = family(b, rts, "socketley_runtime_up", "1 when the runtime's status is running (its process runs and, once attached, its port answers), else 0.", gauge,
		func(r *wire.Runtime) (float64, bool) { return boolValue(r.Status == wire.StatusRunning), true })
	const status = "socketley_runtime_status"
	b = header(b, status, "The runtime's status as ls shows it: one series per status, 1 for the current one and 0 for the others.", gauge)
	for i := range rts {
		r := &rts[i]
		known := r.Status.Known()
		for _, st := range wire.Statuses {
			b = sample(b, status, boolValue(r.Status == st || !known && st == wire.StatusUnknown), "name", r.Name, "mode", string(r.Mode), "status", string(st))
		}
	}
	b = family(b, rts, "socketley_runtime_restarts_total", "Restarts of the runtime: crashes restarted by systemd or by the daemon's backoff, and health restarts.", counter,
		func(r *wire.Runtime) (float64, bool) { return float64(r.Restarts), true })
	b = family(b, rts, "socketley_runtime_health_restarts_total", "Restarts the daemon's health check made (attach overdue, port refused); counted in socketley_runtime_restarts_total too.", counter,
		func(r *wire.Runtime) (float64, bool) { return float64(r.HealthRestarts), true })
	b = family(b, rts, "socketley_runtime_start_time_seconds", "When the runtime's current process started (an attached process: when it attached), in seconds since the Unix epoch; absent when no process runs.", gauge,
		func(r *wire.Runtime) (float64, bool) { return unixSeconds(r.Since), r.PID > 0 && !r.Since.IsZero() })
	b = family(b, rts, "socketley_runtime_attach_latency_seconds", "For a managed runtime whose current process attached: the time from its start to its attach.", gauge,
		func(r *wire.Runtime) (float64, bool) { d, ok := attachLatency(r); return d.Seconds(), ok })
	// A counter only from the cgroup's cpu.stat, which never goes down
	// while the unit lives: summed over /proc, the figure drops when a
	// process exits, which rate() would take for a reset.
	b = family(b, rts, "socketley_runtime_cpu_seconds_total", "CPU time (user and system) used by the runtime's unit, from its cgroup's cpu.stat at the last health tick; absent where the cgroup controllers are not available.", counter,
		func(r *wire.Runtime) (float64, bool) {
			if r.Usage == nil || r.Usage.Source != wire.UsageCgroup {
				return 0, false
			}
			return float64(r.Usage.CPUUsec) / 1e6, true
		})
	b = family(b, rts, "socketley_runtime_cpu_cores", "CPU in use by the runtime's processes, in cores (1 is one CPU busy), over the health interval before the last tick.", gauge,
		func(r *wire.Runtime) (float64, bool) {
			if r.Usage == nil {
				return 0, false
			}
			return r.Usage.CPUPercent / 100, true
		})
	b = family(b, rts, "socketley_runtime_memory_bytes", "Memory in use by the runtime's processes (the cgroup's memory.current, or the sum of their resident sets), as sampled at the last health tick.", gauge,
		func(r *wire.Runtime) (float64, bool) {
			if r.Usage == nil {
				return 0, false
			}
			return float64(r.Usage.MemoryBytes), true
		})
	return family(b, rts, "socketley_runtime_tasks", "Processes and threads of the runtime, as sampled at the last health tick.", gauge,
		func(r *wire.Runtime) (float64, bool) {
			if r.Usage == nil {
				return 0, false
			}
			return float64(r.Usage.Tasks), true
		})
}

// family appends one per-runtime family: a sample labelled name and mode
// for each runtime value reports ok for, and nothing (not even the header)
// when there is none.
func family(b []byte, rts []wire.Runtime, name, help string, t metricType, value func(*wire.Runtime) (float64, bool)) []byte {
	start := len(b)
	b = header(b, name, help, t)
	n := 0
	for i := range rts {
		if v, ok := value(&rts[i]); ok {
			b = sample(b, name, v, "name", rts[i].Name, "mode", string(rts[i].Mode))
			n++
		}
	}
	if n == 0 {
		return b[:start]
	}
	return b
}

// attachLatency returns how long a managed runtime's current process took
// to attach: AttachedAt − Since, when that process attached (AttachedAt is
// not before it started).
func attachLatency(r *wire.Runtime) (time.Duration, bool) {
	if r.Mode != wire.ModeUnit || r.PID <= 0 || r.Since.IsZero() || r.AttachedAt.IsZero() || r.AttachedAt.Before(r.Since) {
		return 0, false
	}
	return r.AttachedAt.Sub(r.Since), true
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
