package manager

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// fakeSys is a fake /proc and cgroup2 tree in a temporary directory.
type fakeSys struct {
	t            *testing.T
	proc, cgroup string
}

func newFakeSys(t *testing.T) *fakeSys {
	dir := t.TempDir()
	return &fakeSys{t: t, proc: filepath.Join(dir, "proc"), cgroup: filepath.Join(dir, "cgroup")}
}

func (f *fakeSys) write(path, text string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// process adds /proc/PID/{stat,cgroup}: state, start time, utime and stime
// in clock ticks, threads, rss in pages.
func (f *fakeSys) process(pid int, cg string, state byte, start, utime, stime uint64, threads int, rss uint64) {
	// Fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime vsize rss.
	stat := fmt.Sprintf("%d (my prog) %c 1 1 1 0 -1 4194560 100 0 0 0 %d %d 0 0 20 0 %d 0 %d 123456 %d 18446744073709551615\n",
		pid, state, utime, stime, threads, start, rss)
	f.write(filepath.Join(f.proc, strconv.Itoa(pid), "stat"), stat)
	f.write(filepath.Join(f.proc, strconv.Itoa(pid), "cgroup"), "1:name=systemd:/\n0::"+cg+"\n")
}

// group adds a cgroup with its processes; with controllers, also
// memory.current, pids.current; cpu.stat is always there (as on cgroup2).
func (f *fakeSys) group(cg string, pids []int, usec uint64, controllers bool, mem, tasks uint64) {
	dir := f.cgroup + cg
	var procs strings.Builder
	for _, p := range pids {
		fmt.Fprintf(&procs, "%d\n", p)
	}
	f.write(dir+"/cgroup.procs", procs.String())
	f.write(dir+"/cpu.stat", fmt.Sprintf("usage_usec %d\nuser_usec 1\nsystem_usec 2\n", usec))
	if controllers {
		f.write(dir+"/memory.current", fmt.Sprintf("%d\n", mem))
		f.write(dir+"/pids.current", fmt.Sprintf("%d\n", tasks))
	}
}

func (f *fakeSys) reader() *usageReader {
	return &usageReader{proc: f.proc, cgroup: f.cgroup, pageSize: 4096}
}

// TestUsageSample: both sources, from fake trees: the cgroup's controller
// files where they exist, else /proc summed over cgroup.procs; an attached
// process from /proc; nothing for a process that is gone, another process
// under the pid, or a pid outside its unit's cgroup.
func TestUsageSample(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const unit = "/user.slice/user@1000.service/app.slice/socketley-web.service"
	tests := []struct {
		name   string
		setup  func(f *fakeSys)
		noCG   bool // no cgroup2 mount
		target usageTarget
		want   *wire.Usage // nil: no sample
	}{
		{
			name: "cgroup controllers",
			setup: func(f *fakeSys) {
				f.process(100, unit, 'S', 5000, 10, 5, 3, 50)
				f.process(101, unit, 'S', 5001, 1, 1, 1, 10)
				f.group(unit, []int{100, 101}, 1_234_567, true, 12_900_000, 4)
			},
			target: usageTarget{name: "web", pid: 100, unit: "socketley-web.service"},
			want:   &wire.Usage{CPUUsec: 1_234_567, MemoryBytes: 12_900_000, Tasks: 4, Source: wire.UsageCgroup, At: now},
		},
		{
			name: "no controllers: /proc over cgroup.procs",
			setup: func(f *fakeSys) {
				f.process(100, unit, 'S', 5000, 10, 5, 3, 50)
				f.process(101, unit, 'S', 5001, 1, 1, 1, 10)
				f.process(102, unit, 'Z', 5002, 7, 7, 1, 0) // a zombie: not counted
				f.group(unit, []int{100, 101, 102, 103 /* exited meanwhile */}, 999, false, 0, 0)
			},
			target: usageTarget{name: "web", pid: 100, unit: "socketley-web.service"},
			want:   &wire.Usage{CPUUsec: (10 + 5 + 1 + 1) * 10_000, MemoryBytes: 60 * 4096, Tasks: 4, Source: wire.UsageProc, At: now},
		},
		{
			name: "only memory.current: /proc",
			setup: func(f *fakeSys) {
				f.process(100, unit, 'S', 5000, 10, 5, 3, 50)
				f.group(unit, []int{100}, 999, false, 0, 0)
				f.write(f.cgroup+unit+"/memory.current", "777\n")
			},
			target: usageTarget{name: "web", pid: 100, unit: "socketley-web.service"},
			want:   &wire.Usage{CPUUsec: 150_000, MemoryBytes: 50 * 4096, Tasks: 3, Source: wire.UsageProc, At: now},
		},
		{
			name: "no cgroup2 mount: the main process",
			setup: func(f *fakeSys) {
				f.process(100, unit, 'S', 5000, 10, 5, 3, 50)
				f.process(101, unit, 'S', 5001, 1, 1, 1, 10)
			},
			noCG:   true,
			target: usageTarget{name: "web", pid: 100, unit: "socketley-web.service"},
			want:   &wire.Usage{CPUUsec: 150_000, MemoryBytes: 50 * 4096, Tasks: 3, Source: wire.UsageProc, At: now},
		},
		{
			name: "main pid in another unit's cgroup",
			setup: func(f *fakeSys) {
				f.process(100, "/system.slice/other.service", 'S', 5000, 10, 5, 3, 50)
				f.group("/system.slice/other.service", []int{100}, 1, true, 1, 1)
			},
			target: usageTarget{name: "web", pid: 100, unit: "socketley-web.service"},
		},
		{
			name:   "main process gone",
			setup:  func(f *fakeSys) {},
			target: usageTarget{name: "web", pid: 100, unit: "socketley-web.service"},
		},
		{
			name: "attached process",
			setup: func(f *fakeSys) {
				f.process(200, "/user.slice/session-1.scope", 'R', 7000, 20, 30, 5, 100)
			},
			target: usageTarget{name: "c1", pid: 200, start: 7000},
			want:   &wire.Usage{CPUUsec: 500_000, MemoryBytes: 100 * 4096, Tasks: 5, Source: wire.UsageProc, At: now},
		},
		{
			name: "attached pid reused",
			setup: func(f *fakeSys) {
				f.process(200, "/user.slice/session-1.scope", 'R', 7001, 20, 30, 5, 100)
			},
			target: usageTarget{name: "c1", pid: 200, start: 7000},
		},
		{
			name: "attached process a zombie",
			setup: func(f *fakeSys) {
				f.process(200, "/user.slice/session-1.scope", 'Z', 7000, 20, 30, 1, 0)
			},
			target: usageTarget{name: "c1", pid: 200, start: 7000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSys(t)
			tt.setup(f)
			r := f.reader()
			if tt.noCG {
				r.cgroup = ""
			}
			got := r.sample(tt.target, now)
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("got %+v, want no sample", got.view)
			case tt.want == nil:
			case got == nil:
				t.Fatalf("got no sample, want %+v", *tt.want)
			case got.view != *tt.want:
				t.Fatalf("got %+v, want %+v", got.view, *tt.want)
			}
		})
	}
}

// TestUsageCPUPercent: CPU time per wall time between two samples of the
// same processes, 0 when there is nothing to compare with.
func TestUsageCPUPercent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const cg = "/app.slice/socketley-web.service"
	cgroup := func(pid int, usec uint64, at time.Time) *usageSample {
		return &usageSample{pid: pid, cgroup: cg, view: wire.Usage{Source: wire.UsageCgroup, CPUUsec: usec, At: at}}
	}
	procs := func(pid int, at time.Time, ps ...procCPU) *usageSample {
		s := &usageSample{pid: pid, cgroup: cg, procs: ps, view: wire.Usage{Source: wire.UsageProc, At: at}}
		for _, p := range ps {
			s.view.CPUUsec += p.usec
		}
		return s
	}
	tests := []struct {
		name      string
		prev, cur *usageSample
		want      float64
	}{
		{"first sample", nil, cgroup(1, 500_000, t0), 0},
		{"cgroup: half a CPU", cgroup(1, 1_000_000, t0), cgroup(1, 2_000_000, t0.Add(2*time.Second)), 50},
		{"cgroup: two CPUs", cgroup(1, 0, t0), cgroup(1, 4_000_000, t0.Add(2*time.Second)), 200},
		{"cgroup: a new cgroup (counter went down)", cgroup(1, 9_000_000, t0), cgroup(1, 10, t0.Add(time.Second)), 0},
		{"another main process", cgroup(1, 0, t0), cgroup(2, 1_000_000, t0.Add(time.Second)), 0},
		{"source changed", procs(1, t0, procCPU{1, 10, 0}), cgroup(1, 1_000_000, t0.Add(time.Second)), 0},
		{"no wall time", cgroup(1, 0, t0), cgroup(1, 1_000_000, t0), 0},
		{
			"proc: only processes in both samples",
			procs(1, t0, procCPU{1, 10, 100_000}, procCPU{5, 50, 100_000}, procCPU{7, 70, 0}),
			procs(1, t0.Add(time.Second),
				procCPU{1, 10, 300_000},   // +200 ms
				procCPU{3, 30, 900_000},   // new: not counted
				procCPU{5, 51, 900_000},   // pid 5 reused: not counted
				procCPU{7, 70, 50_000},    // +50 ms
				procCPU{9, 90, 1_000_000}, // new
			),
			25,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuPercent(tt.prev, tt.cur); got != tt.want {
				t.Fatalf("got %v%%, want %v%%", got, tt.want)
			}
		})
	}
}

// TestUsageKeepsCgroupPath: the cgroup path is read from /proc/PID/cgroup
// once per main process, and the second sample has a CPU percentage.
func TestUsageKeepsCgroupPath(t *testing.T) {
	f := newFakeSys(t)
	const cg = "/app.slice/socketley-web.service"
	f.process(100, cg, 'S', 5000, 10, 5, 3, 50)
	f.group(cg, []int{100}, 1_000_000, true, 4096, 1)
	r := f.reader()
	t0 := time.Now()
	tgt := usageTarget{name: "web", pid: 100, unit: "socketley-web.service"}
	first := r.sample(tgt, t0)
	if first == nil || first.view.CPUPercent != 0 || first.cgroup != cg {
		t.Fatalf("first sample: %+v", first)
	}
	// The process's cgroup file is gone: the path kept from the first
	// sample is used.
	if err := os.Remove(filepath.Join(f.proc, "100", "cgroup")); err != nil {
		t.Fatal(err)
	}
	f.group(cg, []int{100}, 1_100_000, true, 8192, 2)
	tgt.prev = first
	second := r.sample(tgt, t0.Add(time.Second))
	if second == nil || second.view.CPUPercent != 10 || second.view.MemoryBytes != 8192 || second.view.Tasks != 2 {
		t.Fatalf("second sample: %+v", second)
	}
	// A new main process: its cgroup is read again (and is gone here).
	tgt.pid = 101
	if s := r.sample(tgt, t0.Add(2*time.Second)); s != nil {
		t.Fatalf("new main pid without a cgroup file: %+v", s.view)
	}
}

// TestCgroup2Mount: the unified hierarchy's mount is found in mountinfo on
// a unified and on a hybrid system.
func TestCgroup2Mount(t *testing.T) {
	tests := []struct {
		name, mountinfo, want string
	}{
		{"unified", "" +
			"22 1 0:21 / /sys rw - sysfs sysfs rw\n" +
			"30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup"},
		{"hybrid", "" +
			"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
			"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
			"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified"},
		{"both: /sys/fs/cgroup wins", "" +
			"59 49 0:37 / /sys/fs/cgroup/unified rw,relatime shared:16 - cgroup2 cgroup2 rw\n" +
			"66 49 0:37 / /sys/fs/cgroup rw,nosuid shared:17 - cgroup2 sdh-cgroup2 rw\n", "/sys/fs/cgroup"},
		{"a sub-tree mount is not the root", "40 30 0:37 /some/sub /mnt/cg rw - cgroup2 cgroup2 rw\n", ""},
		{"escaped", `40 30 0:37 / /mnt/my\040cg rw - cgroup2 cgroup2 rw` + "\n", "/mnt/my cg"},
		{"none", "22 1 0:21 / /sys rw - sysfs sysfs rw\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mountinfo")
			if err := os.WriteFile(p, []byte(tt.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := cgroup2Mount(p); err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestUsageView: the tick samples every runtime with a process and the
// view shows the sample of the process that runs now, nothing for a
// runtime that does not run or has another main process by now.
func TestUsageView(t *testing.T) {
	m, f := newTestManager(t)
	fs := newFakeSys(t)
	m.usage = fs.reader()
	const cg = "/app.slice/socketley-web.service"
	fs.process(100, cg, 'S', 5000, 10, 5, 3, 50)
	fs.group(cg, []int{100}, 0, false, 0, 0)
	self, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	fs.process(os.Getpid(), "/user.slice/x.scope", 'S', self, 1, 1, 7, 1)
	now := time.Now()
	m.reg.put(&Entry{Name: "web", Managed: true, Path: "/bin/x", Desired: DesiredRunning, Started: true, Restart: "on-failure"})
	m.reg.put(&Entry{Name: "idle", Managed: true, Path: "/bin/x", Desired: DesiredStopped, Started: true, Restart: "on-failure"})
	m.reg.put(&Entry{Name: "c1", Type: "client", PID: os.Getpid(), StartTime: self, AttachPID: os.Getpid(), Desired: DesiredRunning, Started: true})
	m.reg.commit()
	f.set(units.Status{Unit: units.Name("web"), Name: "web", LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 100, ActiveEnter: now, ExecMainStart: now})
	f.set(units.Status{Unit: units.Name("idle"), Name: "idle", LoadState: "loaded", ActiveState: "inactive", SubState: "dead"})

	if u := m.view("web").Usage; u != nil {
		t.Fatalf("before a tick: %+v", *u)
	}
	m.tick(t.Context())
	web := m.view("web").Usage
	if web == nil || web.Source != wire.UsageProc || web.Tasks != 3 || web.MemoryBytes != 50*4096 {
		t.Fatalf("web: %+v", web)
	}
	if u := m.view("c1").Usage; u == nil || u.Source != wire.UsageProc || u.Tasks != 7 {
		t.Fatalf("attached: %+v", u)
	}
	if u := m.view("idle").Usage; u != nil {
		t.Fatalf("a stopped runtime: %+v", *u)
	}
	// The list carries the same sample.
	for _, r := range m.list(false) {
		if (r.Name != "idle") != (r.Usage != nil) {
			t.Fatalf("ls: %s usage %+v", r.Name, r.Usage)
		}
	}
	// A new main process: the old sample is not shown, and the next tick
	// (which finds no process 101) drops it.
	f.set(units.Status{Unit: units.Name("web"), Name: "web", LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 101, ActiveEnter: now, ExecMainStart: now})
	if u := m.view("web").Usage; u != nil {
		t.Fatalf("another main pid: %+v", *u)
	}
	m.tick(t.Context())
	m.mu.RLock()
	o := m.obs["web"]
	m.mu.RUnlock()
	if o != nil && o.usage != nil {
		t.Fatalf("sample kept after the process went: %+v", o.usage.view)
	}
}
