package metrics

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// appendProcess appends the daemon's own process and Go runtime metrics,
// under the names (and with the meaning) of client_golang's standard
// process and Go collectors, a subset of them: what tells whether the
// daemon itself is well.
func appendProcess(b []byte, started time.Time) []byte {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
		b = header(b, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", counter)
		b = sample(b, "process_cpu_seconds_total", cpu)
	}
	if vsize, rss, ok := statm(); ok {
		b = header(b, "process_resident_memory_bytes", "Resident memory size in bytes.", gauge)
		b = sample(b, "process_resident_memory_bytes", float64(rss))
		b = header(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.", gauge)
		b = sample(b, "process_virtual_memory_bytes", float64(vsize))
	}
	if n, err := openFDs(); err == nil {
		b = header(b, "process_open_fds", "Number of open file descriptors.", gauge)
		b = sample(b, "process_open_fds", float64(n))
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		b = header(b, "process_max_fds", "Maximum number of open file descriptors.", gauge)
		b = sample(b, "process_max_fds", float64(lim.Cur))
	}
	if !started.IsZero() {
		b = header(b, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", gauge)
		b = sample(b, "process_start_time_seconds", unixSeconds(started))
	}

	samples := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/sched/gomaxprocs:threads"},
	}
	metrics.Read(samples)
	b = header(b, "go_info", "Information about the Go environment.", gauge)
	b = sample(b, "go_info", 1, "version", runtime.Version())
	for _, g := range []struct {
		name, help string
		t          metricType
		s          metrics.Sample
	}{
		{"go_goroutines", "Number of goroutines that currently exist.", gauge, samples[0]},
		{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", gauge, samples[1]},
		{"go_memstats_sys_bytes", "Number of bytes obtained from system.", gauge, samples[2]},
		{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously.", gauge, samples[3]},
	} {
		if g.s.Value.Kind() != metrics.KindUint64 {
			continue
		}
		b = header(b, g.name, g.help, g.t)
		b = sample(b, g.name, float64(g.s.Value.Uint64()))
	}
	return b
}

// statm returns the daemon's virtual and resident memory sizes in bytes.
func statm() (vsize, rss uint64, ok bool) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, false
	}
	f := bytes.Fields(data)
	if len(f) < 2 {
		return 0, 0, false
	}
	pages, err1 := strconv.ParseUint(string(f[0]), 10, 64)
	res, err2 := strconv.ParseUint(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	page := uint64(os.Getpagesize())
	return pages * page, res * page, true
}

// openFDs counts the daemon's open file descriptors.
func openFDs() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return len(names) - 1, nil // less the one reading the directory
}
