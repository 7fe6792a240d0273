package manager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// BenchmarkTick measures one health tick over 1,000 entries with a fake
// systemd (so D-Bus costs are not included): 400 managed runtimes attached on
// listening ports, 100 attached on ports that refuse (health restarts off),
// 300 managed that never attach, and 200 attached (unmanaged) entries bound to
// this live process, half of them with a listening port. It reports the
// process CPU time (user + system, from getrusage) per tick as cpu-ms/tick;
// the budget is 50 ms.
//
// Sub-benchmarks: "mixed" as above; "healthy" with the 100 refusing ports
// listening too (the usual case: no probe connects at all). Both sample
// the usage of what runs with the daemon's reader, but the managed main
// pids do not exist (each costs one failed open). The "usage" ones are
// "healthy" with the usage sampling: "off" without it, "proc" and "cgroup"
// with every managed main pid found in its own unit cgroup (a fake tree:
// /proc/PID/cgroup and the cgroup files are regular files, each
// /proc/PID/stat is this process's real one through a symlink), the
// controller files absent ("proc": cgroup.procs plus one /proc/PID/stat
// per runtime) or present ("cgroup": memory.current, pids.current,
// cpu.stat).
func BenchmarkTick(b *testing.B) {
	b.Run("mixed", func(b *testing.B) { benchTick(b, 100, "") })
	b.Run("healthy", func(b *testing.B) { benchTick(b, 0, "") })
	for _, u := range []string{"off", "proc", "cgroup"} {
		b.Run("usage-"+u, func(b *testing.B) { benchTick(b, 0, u) })
	}
}

// benchUsageTree makes the fake tree of BenchmarkTick's "usage" runs for
// the managed main pids 100000+i, i < n (see there); cgroup: with the
// controller files.
func benchUsageTree(b *testing.B, n int, cgroup bool) *usageReader {
	dir := b.TempDir()
	r := &usageReader{proc: filepath.Join(dir, "proc"), cgroup: filepath.Join(dir, "cg"), pageSize: 4096}
	self := strconv.Itoa(os.Getpid())
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.MkdirAll(r.proc, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("/proc/"+self, filepath.Join(r.proc, self)); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		pid := strconv.Itoa(100000 + i)
		cg := "/app.slice/" + units.Name(fmt.Sprintf("rt-%04d", i))
		write(filepath.Join(r.proc, pid, "cgroup"), "0::"+cg+"\n")
		if err := os.Symlink("/proc/"+self+"/stat", filepath.Join(r.proc, pid, "stat")); err != nil {
			b.Fatal(err)
		}
		write(r.cgroup+cg+"/cgroup.procs", pid+"\n")
		write(r.cgroup+cg+"/cpu.stat", "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 0\n")
		if cgroup {
			write(r.cgroup+cg+"/memory.current", "12345678\n")
			write(r.cgroup+cg+"/pids.current", "3\n")
		}
	}
	return r
}

func benchTick(b *testing.B, refusing int, usage string) {
	m, f := newBenchManager(b)
	switch usage {
	case "off":
		m.usage = nil
	case "proc", "cgroup":
		m.usage = benchUsageTree(b, 800, usage == "cgroup")
	}
	zero := 0
	now := time.Now()
	self, err := procStartTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	add := func(e *Entry, st *units.Status) {
		m.reg.put(e)
		if st != nil {
			f.units[e.Name] = *st
		}
	}
	for i := range 1000 {
		name := fmt.Sprintf("rt-%04d", i)
		pid := 100000 + i
		st := &units.Status{Unit: units.Name(name), Name: name, LoadState: "loaded", ActiveState: "active",
			SubState: "running", MainPID: pid, ActiveEnter: now, ExecMainStart: now, ExecStart: []string{"/bin/x", "--flag"}}
		e := &Entry{Name: name, Managed: true, Path: "/bin/x", Args: []string{"--flag"}, Desired: DesiredRunning,
			Started: true, Restart: "on-failure", HealthFails: &zero}
		switch {
		case i < 400:
			e.Type, e.Port, e.AttachPID = "server", listenPort(b, "tcp4", "127.0.0.1:0"), pid
		case i < 400+refusing:
			e.Type, e.Port, e.AttachPID = "server", closedPort(b), pid
		case i < 500:
			e.Type, e.Port, e.AttachPID = "server", listenPort(b, "tcp4", "127.0.0.1:0"), pid
		case i < 800:
		default:
			st = nil
			e = &Entry{Name: name, Type: "client", PID: os.Getpid(), StartTime: self, AttachPID: os.Getpid(),
				Desired: DesiredRunning, Started: true}
			if i%2 == 0 {
				e.Type, e.Port = "server", listenPort(b, "tcp4", "127.0.0.1:0")
			}
		}
		add(e, st)
	}
	m.reg.commit()
	ctx := b.Context()
	m.tick(ctx) // warm up
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for b.Loop() {
		m.tick(ctx)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/tick")
	if n := m.reg.len(); n != 1000 {
		b.Fatalf("the tick dropped entries: %d left", n)
	}
	if v := m.view("rt-0450"); (v.Status == wire.StatusUnhealthy) != (refusing > 0) {
		b.Fatalf("rt-0450: %s", v.Status)
	}
	if v := m.view("rt-0010"); v.Status != wire.StatusRunning {
		b.Fatalf("listening port: %s (%s)", v.Status, v.Reason)
	}
	if v := m.view("rt-0010"); (v.Usage != nil) != (usage == "proc" || usage == "cgroup") {
		b.Fatalf("rt-0010: usage %+v with %q", v.Usage, usage)
	}
}

// newBenchManager is newTestManager for benchmarks.
func newBenchManager(b *testing.B) (*Manager, *fakeSystemd) {
	b.Helper()
	dir := b.TempDir()
	f := newFake()
	m, err := New(Config{Mode: paths.User, Socket: filepath.Join(dir, "s.sock"), StateDir: dir,
		Dial: func(context.Context) (Systemd, error) { return f, nil }})
	if err != nil {
		b.Fatal(err)
	}
	m.reg = loadForTest(b, m.store)
	m.sd, m.watch = f, f
	return m, f
}
