// Command lifecycle measures socketley's managed-runtime lifecycle against a
// real systemd user manager and prints medians and p90 next to the goals:
//
//   - add -s → unit active, next to raw systemd-run --user for the same binary;
//   - kill -9 → the new process running (polled on the unit's cgroup);
//   - socketley ls through the CLI with N registered, running runtimes, and the
//     daemon's RSS then;
//   - daemon restart with N active units → every unit adopted, same pids.
//
// Run it as root inside the sandbox (make bench-lifecycle does):
//
//	scripts/systemd-sandbox.sh -- go -C bench run ./lifecycle -socketley $PWD/bin/socketley
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type runtime struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	PID    int    `json:"pid"`
}

func main() {
	bin := flag.String("socketley", "bin/socketley", "socketley binary")
	reps := flag.Int("reps", 20, "repetitions for add and kill")
	n := flag.Int("n", 1000, "runtimes for the ls and daemon-restart measurements")
	flag.Parse()
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		fail("no user bus: run inside scripts/systemd-sandbox.sh")
	}
	abs, err := filepath.Abs(*bin)
	check(err)
	b := &bench{bin: abs}
	b.dir, err = os.MkdirTemp("", "socketley-bench-")
	check(err)
	defer os.RemoveAll(b.dir)
	b.sock = filepath.Join(b.dir, "s.sock")
	b.metrics = freeAddr()
	b.payload = filepath.Join(b.dir, "payload")
	check(os.WriteFile(b.payload, []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755))
	b.startDaemon()
	defer b.stopDaemon()

	fmt.Printf("%-44s %10s %10s %12s\n", "measurement", "median", "p90", "goal")
	add, raw := b.addVsSystemdRun(*reps)
	row("add -s → unit active (socketley)", add, "")
	row("systemd-run --user (same binary)", raw, "")
	fmt.Printf("%-44s %10.2fx %10.2fx %12s\n", "  ratio socketley / systemd-run", ratio(add, raw, 50), ratio(add, raw, 90), "<= 1.3x")
	kill := b.killRestart(*reps)
	row("kill -9 → new process running", kill, "RestartSec+50ms = 150ms")
	ls, start, scrape, rss := b.lsAt(*n)
	row(fmt.Sprintf("socketley ls, %d runtimes", *n), ls, "<= 5ms")
	row("  of which the CLI's start (socketley --version)", start, "")
	fmt.Printf("%-44s %10s\n", "  the rest (daemon, socket, table)", ms(pct(ls, 50)-pct(start, 50)))
	row(fmt.Sprintf("GET /metrics, %d runtimes", *n), scrape, "<= 20ms")
	fmt.Printf("%-44s %10.2fx %10.2fx\n", "  ratio to the CLI's start", ratio(scrape, start, 50), ratio(scrape, start, 90))
	fmt.Printf("%-44s %10.1f MB %21s\n", fmt.Sprintf("daemon RSS, %d runtimes", *n), rss, "<= 20 MB")
	restart := b.daemonRestart(*n, 5)
	row(fmt.Sprintf("daemon restart, %d active units adopted", *n), restart, "<= 1s")
}

type bench struct {
	bin, dir, sock, payload string
	metrics                 string // the daemon's --metrics-listen address
	daemon                  *exec.Cmd
	log                     bytes.Buffer
}

func (b *bench) startDaemon() {
	b.daemon = exec.Command(b.bin, "daemon", "--user", "--socket", b.sock, "--state-dir", filepath.Join(b.dir, "state"),
		"--metrics-listen", b.metrics)
	b.daemon.Stderr = &b.log
	check(b.daemon.Start())
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command(b.bin, "--socket", b.sock, "ls").Run() != nil {
		if time.Now().After(deadline) {
			fail("daemon not ready:\n" + b.log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (b *bench) stopDaemon() {
	if b.daemon != nil {
		_ = b.daemon.Process.Signal(syscall.SIGTERM)
		_ = b.daemon.Wait()
		b.daemon = nil
	}
}

func (b *bench) cli(args ...string) []byte {
	out, err := exec.Command(b.bin, append([]string{"--socket", b.sock}, args...)...).CombinedOutput()
	if err != nil {
		fail(fmt.Sprintf("socketley %s: %v\n%s", strings.Join(args, " "), err, out))
	}
	return out
}

func (b *bench) list() []runtime {
	var rts []runtime
	check(json.Unmarshal(b.cli("ls", "-o", "json"), &rts))
	return rts
}

// addVsSystemdRun times add -s and systemd-run for the same binary, alternating.
func (b *bench) addVsSystemdRun(reps int) ([]time.Duration, []time.Duration) {
	var add, raw []time.Duration
	for i := range reps {
		name := fmt.Sprintf("add%d", i)
		t0 := time.Now()
		b.cli("add", b.payload, "--name", name, "-s")
		add = append(add, time.Since(t0))
		b.cli("remove", name)

		unit := fmt.Sprintf("raw%d.service", i)
		t0 = time.Now()
		out, err := exec.Command("systemd-run", "--user", "--quiet", "--unit", unit, "-p", "Type=exec", b.payload).CombinedOutput()
		raw = append(raw, time.Since(t0))
		if err != nil {
			fail(fmt.Sprintf("systemd-run: %v %s", err, out))
		}
		_ = exec.Command("systemctl", "--user", "stop", unit).Run()
	}
	return add, raw
}

// killRestart kills the main process and polls the unit's cgroup until a new
// process is in it. Each victim is killed at most twice, well inside
// systemd's start limit (5 starts in 10 s), which would otherwise end the
// measurement in crash-loop, as it should.
func (b *bench) killRestart(reps int) []time.Duration {
	victims := (reps + 1) / 2
	var cgs []string
	for i := range victims {
		name := fmt.Sprintf("victim%d", i)
		b.cli("add", b.payload, "--name", name, "-s")
		defer b.cli("remove", name)
		cg, err := exec.Command("systemctl", "--user", "show", "-p", "ControlGroup", "--value", "socketley-"+name+".service").Output()
		check(err)
		cgs = append(cgs, filepath.Join("/sys/fs/cgroup", strings.TrimSpace(string(cg)), "cgroup.procs"))
	}
	var out []time.Duration
	for i := range reps {
		procs := cgs[i%victims]
		old := cgroupPIDs(procs)
		if len(old) != 1 {
			fail(fmt.Sprintf("expected one process in %s, got %v", procs, old))
		}
		t0 := time.Now()
		check(syscall.Kill(old[0], syscall.SIGKILL))
		for {
			p := cgroupPIDs(procs)
			if len(p) == 1 && p[0] != old[0] {
				break
			}
			if time.Since(t0) > 10*time.Second {
				fail("no new process after 10s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		out = append(out, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

func cgroupPIDs(path string) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// lsAt registers and starts n runtimes, then times ls, and in turn with it
// the CLI's own start (socketley --version, which asks the daemon nothing)
// and a metrics scrape (GET /metrics, the body read), and reads the
// daemon's RSS.
func (b *bench) lsAt(n int) (ls, start, scrape []time.Duration, rss float64) {
	t0 := time.Now()
	for i := range n {
		b.cli("add", b.payload, "--name", fmt.Sprintf("r%04d", i), "-s")
	}
	fmt.Fprintf(os.Stderr, "(added and started %d runtimes in %s)\n", n, time.Since(t0).Round(time.Millisecond))
	for range 30 {
		t0 := time.Now()
		b.cli("ls")
		ls = append(ls, time.Since(t0))
		t0 = time.Now()
		check(exec.Command(b.bin, "--version").Run())
		start = append(start, time.Since(t0))
		t0 = time.Now()
		resp, err := http.Get("http://" + b.metrics + "/metrics")
		check(err)
		body, err := io.ReadAll(resp.Body)
		check(err)
		_ = resp.Body.Close()
		scrape = append(scrape, time.Since(t0))
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("socketley_runtime_up{")) {
			fail(fmt.Sprintf("GET /metrics: %s\n%.300s", resp.Status, body))
		}
	}
	return ls, start, scrape, rssMB(b.daemon.Process.Pid)
}

// freeAddr returns a loopback address with a port free now.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

func rssMB(pid int) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(s), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// daemonRestart restarts the daemon and times until it answers with every
// runtime running under the pid it had before.
func (b *bench) daemonRestart(n, reps int) []time.Duration {
	before := map[string]int{}
	for _, r := range b.list() {
		before[r.Name] = r.PID
	}
	var out []time.Duration
	for range reps {
		b.stopDaemon()
		t0 := time.Now()
		b.startDaemon()
		d := time.Since(t0)
		rts := b.list()
		adopted := 0
		for _, r := range rts {
			if r.Status == "running" && r.PID != 0 && r.PID == before[r.Name] {
				adopted++
			}
		}
		if adopted < n {
			fail(fmt.Sprintf("after daemon restart only %d of %d runtimes adopted with the same pid", adopted, n))
		}
		out = append(out, d)
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ratio(a, b []time.Duration, p int) float64 { return float64(pct(a, p)) / float64(pct(b, p)) }

func row(name string, ds []time.Duration, goal string) {
	fmt.Printf("%-44s %10s %10s %12s\n", name, ms(pct(ds, 50)), ms(pct(ds, 90)), goal)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "lifecycle bench:", msg)
	os.Exit(1)
}
