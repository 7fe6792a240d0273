package manager

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/proc"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// What each runtime uses (wire.Usage) is sampled once per health tick, for
// every runtime in one pass, from files only: no D-Bus call.
//
//   - A managed runtime's cgroup is read from /proc/MAINPID/cgroup (the
//     "0::/path" line of the unified hierarchy) when its main pid changes,
//     and must end in its unit's name (a pid reused by another process is
//     not taken for it).
//   - Where the cgroup has the memory and pids controllers (memory.current
//     and pids.current exist), the figures are the cgroup's: memory.current,
//     usage_usec of cpu.stat, pids.current (wire.UsageCgroup).
//   - Otherwise (controllers not delegated to the manager: accounting
//     off), they are summed over the processes of the cgroup's cgroup.procs
//     from /proc/PID/stat: utime+stime, rss, num_threads (wire.UsageProc).
//     Without a cgroup2 mount, the main process alone.
//   - An attached runtime is its one process, from /proc (wire.UsageProc).
//
// CPUPercent is the CPU time between two samples of the same processes per
// wall time between them: for the cgroup, the same cgroup and main pid;
// for /proc, the processes present in both samples (same pid and start
// time).

// usageReader reads what processes use under a proc root (normally /proc)
// and a cgroup2 root (the unified hierarchy's mount, normally
// /sys/fs/cgroup; "" when there is none). Tests point both at fake trees.
// It keeps a read buffer: one goroutine at a time (the tick) uses it.
type usageReader struct {
	proc, cgroup string
	pageSize     uint64
	buf          []byte
}

// newUsageReader returns the reader of the running system: /proc and the
// first cgroup2 mount of this process's mount namespace.
func newUsageReader() *usageReader {
	root, _ := cgroup2Mount("/proc/self/mountinfo")
	return &usageReader{proc: "/proc", cgroup: root, pageSize: uint64(os.Getpagesize())}
}

// cgroup2Mount returns where the unified cgroup hierarchy is mounted with
// its root (/sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on a
// hybrid one), from a mountinfo file; "" when it is not mounted.
func cgroup2Mount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	found := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 1 || qf[0] != "cgroup2" || pf[3] != "/" {
			continue
		}
		mp := unescapeMount(pf[4])
		if mp == "/sys/fs/cgroup" {
			return mp, nil
		}
		if found == "" {
			found = mp
		}
	}
	return found, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// usageSample is one sample of a runtime. Once stored in observed it is
// never modified (views share its wire.Usage); the next tick stores a new
// one.
type usageSample struct {
	view wire.Usage
	// pid is the main (or attached) process the sample was taken for: the
	// view shows the sample only while that process runs.
	pid int
	// cgroup is the unit's cgroup path (managed runtimes; "" unknown).
	cgroup string
	// procs is, for wire.UsageProc, each process's CPU time, by pid.
	procs []procCPU
	// probed is, for wire.UsageProc, when the cgroup's controller files
	// were last found missing: the next samples of the same process do
	// not look for them again until usageReprobe later.
	probed time.Time
}

// usageReprobe is how long a runtime whose cgroup has no controller files
// is sampled from /proc before they are looked for again (they appear
// when someone delegates the controllers).
const usageReprobe = time.Minute

// procCPU is one process's CPU time in a sample.
type procCPU struct {
	pid   int
	start uint64 // start time (clock ticks since boot): with pid, the process
	usec  uint64
}

// usageTarget is what to sample for one runtime.
type usageTarget struct {
	name string
	// pid is the unit's main process or the attached process.
	pid int
	// unit is the managed runtime's unit name ("" for an attached process).
	unit string
	// start is the attached process's start time (0: not checked).
	start uint64
	prev  *usageSample
}

// sample takes a sample of t at now; nil when nothing could be read (the
// process is gone, or it is not in its unit's cgroup).
func (r *usageReader) sample(t usageTarget, now time.Time) *usageSample {
	s := &usageSample{pid: t.pid, view: wire.Usage{At: now}}
	if t.unit != "" {
		if t.prev != nil && t.prev.pid == t.pid && t.prev.cgroup != "" {
			s.cgroup = t.prev.cgroup
		} else {
			cg, err := r.cgroupOf(t.pid)
			if err != nil || filepath.Base(cg) != t.unit {
				return nil
			}
			s.cgroup = cg
		}
		if p := t.prev; p != nil && p.pid == t.pid && !p.probed.IsZero() && now.Sub(p.probed) < usageReprobe {
			s.probed = p.probed
		} else if r.cgroup != "" && r.readCgroup(s) {
			s.view.CPUPercent = cpuPercent(t.prev, s)
			return s
		} else {
			s.probed = now
		}
	}
	var pids []int
	if t.unit != "" && r.cgroup != "" {
		ps, err := r.cgroupProcs(s.cgroup)
		if err != nil {
			return nil
		}
		pids = ps
	} else {
		pids = []int{t.pid}
	}
	s.view.Source = wire.UsageProc
	for _, pid := range pids {
		st, err := r.stat(pid)
		if err != nil || !st.Alive() || t.start != 0 && pid == t.pid && st.StartTime != t.start {
			continue // exited since cgroup.procs was read, or another process
		}
		usec := (st.UTime + st.STime) * (1_000_000 / proc.ClockTicks)
		s.procs = append(s.procs, procCPU{pid: pid, start: st.StartTime, usec: usec})
		s.view.CPUUsec += usec
		s.view.MemoryBytes += st.RSS * r.pageSize
		s.view.Tasks += st.Threads
	}
	if len(s.procs) == 0 {
		return nil
	}
	slices.SortFunc(s.procs, func(a, b procCPU) int { return a.pid - b.pid })
	s.view.CPUPercent = cpuPercent(t.prev, s)
	return s
}

// cpuPercent is the CPU time cur's processes used since prev per wall time,
// in percent of one CPU; 0 without a previous sample of the same processes.
func cpuPercent(prev, cur *usageSample) float64 {
	if prev == nil || prev.pid != cur.pid || prev.view.Source != cur.view.Source || prev.cgroup != cur.cgroup {
		return 0
	}
	wall := cur.view.At.Sub(prev.view.At)
	if wall <= 0 {
		return 0
	}
	var used uint64
	if cur.view.Source == wire.UsageCgroup {
		if cur.view.CPUUsec < prev.view.CPUUsec {
			return 0 // a new cgroup under the same path
		}
		used = cur.view.CPUUsec - prev.view.CPUUsec
	} else {
		// Both lists are sorted by pid: count the processes in both.
		i := 0
		for _, c := range cur.procs {
			for i < len(prev.procs) && prev.procs[i].pid < c.pid {
				i++
			}
			if i < len(prev.procs) && prev.procs[i].pid == c.pid && prev.procs[i].start == c.start && c.usec >= prev.procs[i].usec {
				used += c.usec - prev.procs[i].usec
			}
		}
	}
	return float64(used) / float64(wall.Microseconds()) * 100
}

// readCgroup fills s from its cgroup's controller files and reports
// whether they exist (memory.current and pids.current; cpu.stat is always
// there).
func (r *usageReader) readCgroup(s *usageSample) bool {
	dir := r.cgroup + s.cgroup + "/"
	mem, err := r.readUint(dir + "memory.current")
	if err != nil {
		return false
	}
	tasks, err := r.readUint(dir + "pids.current")
	if err != nil {
		return false
	}
	b, err := r.read(dir + "cpu.stat")
	if err != nil {
		return false
	}
	usec, ok := statField(b, "usage_usec")
	if !ok {
		return false
	}
	s.view.Source = wire.UsageCgroup
	s.view.CPUUsec, s.view.MemoryBytes, s.view.Tasks = usec, mem, int(tasks)
	return true
}

// statField returns the value of key in a flat-keyed file ("key value"
// lines, as cpu.stat).
func statField(b []byte, key string) (uint64, bool) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(" "))
		if ok && string(k) == key {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// cgroupOf returns pid's cgroup in the unified hierarchy (the "0::" line
// of /proc/PID/cgroup).
func (r *usageReader) cgroupOf(pid int) (string, error) {
	b, err := r.read(r.proc + "/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok && len(p) > 0 && p[0] == '/' {
			return string(p), nil
		}
	}
	return "", fmt.Errorf("/proc/%d/cgroup: no unified (0::) line", pid)
}

// cgroupProcs returns the pids of a cgroup's cgroup.procs.
func (r *usageReader) cgroupProcs(cg string) ([]int, error) {
	b, err := r.read(r.cgroup + cg + "/cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range bytes.FieldsSeq(b) {
		pid, err := strconv.Atoi(string(f))
		if err != nil {
			return nil, fmt.Errorf("%s/cgroup.procs: %w", cg, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// stat reads /proc/PID/stat under the proc root.
func (r *usageReader) stat(pid int) (proc.Stat, error) {
	b, err := r.read(r.proc + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc.Stat{}, err
	}
	return proc.ParseStat(b)
}

// readUint reads a file holding one decimal number.
func (r *usageReader) readUint(path string) (uint64, error) {
	b, err := r.read(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// read returns the contents of a small file (up to 1 MiB), in the
// reader's buffer: valid until the next read. It goes straight to the
// system calls, as few as it can (open, read, close): os.Open would also
// try to add each file to the poller, and a read that does not fill the
// buffer is taken for the whole file (proc, cgroup and regular files
// return all they have up to the size asked for), so no read for the end
// of the file follows.
func (r *usageReader) read(path string) ([]byte, error) {
	if r.buf == nil {
		r.buf = make([]byte, 4096)
	}
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for {
		m, err := unix.Read(fd, r.buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		n += m
		if m == 0 || n < len(r.buf) {
			return r.buf[:n], nil
		}
		if len(r.buf) >= 1<<20 {
			return nil, fmt.Errorf("read %s: larger than 1 MiB", path)
		}
		r.buf = append(r.buf, make([]byte, len(r.buf))...)
	}
}

// sampleUsage samples every runtime that has a process (one pass, files
// only) and stores the samples in their observed records; a runtime with no
// process loses its sample. snap is the tick's unit view.
func (m *Manager) sampleUsage(entries []*Entry, snap map[string]units.Status) {
	if m.usage == nil {
		return
	}
	targets := make([]usageTarget, 0, len(entries))
	m.mu.RLock()
	for _, e := range entries {
		t := usageTarget{name: e.Name}
		if e.Managed {
			if st, ok := snap[e.Name]; ok && st.MainPID > 0 && isUp(st) {
				t.pid, t.unit = st.MainPID, units.Name(e.Name)
			}
		} else if e.PID > 0 {
			t.pid, t.start = e.PID, e.StartTime
		}
		if o := m.obs[e.Name]; o != nil {
			t.prev = o.usage
		}
		if t.pid > 0 || t.prev != nil {
			targets = append(targets, t)
		}
	}
	m.mu.RUnlock()
	rd := *m.usage // its own read buffer
	samples := make([]*usageSample, len(targets))
	for i, t := range targets {
		if t.pid > 0 {
			samples[i] = rd.sample(t, time.Now())
		}
	}
	m.mu.Lock()
	for i, t := range targets {
		if !m.reg.has(t.name) {
			continue // removed meanwhile
		}
		if samples[i] == nil {
			if o := m.obs[t.name]; o != nil {
				o.usage = nil
			}
			continue
		}
		m.obsOf(t.name).usage = samples[i]
	}
	m.mu.Unlock()
}

// usageView returns the sample to show for a runtime whose live process is
// pid: nil when there is none, or when it was taken for another process.
func usageView(s *usageSample, pid int) *wire.Usage {
	if s == nil || pid <= 0 || s.pid != pid {
		return nil
	}
	return &s.view
}
