//go:build linux

// Command bench compares echo servers: the socketley server wrapper on its
// io_uring engine (default options, without batch wait, and with raw
// framing) and on its net engine, a plain Go net echo server, and a gnet v2
// echo server. The wrapper rows use Lines framing (a callback and a Send
// per 64-byte message) unless marked raw; the plain Go net and gnet servers
// echo bytes as they come. Each server runs as a separate process (this
// binary re-executed with -serve) pinned to CPU 0; the load generator runs
// pinned to CPU 1. Every test runs -runs times per server, interleaved, and
// the table shows medians, ratios to Go net and to gnet, and the server's
// CPU time (utime + stime from /proc/PID/stat) per message.
//
//	cd bench && go run .                  # or: make bench
//	go run . -runs 5 -d 2s -only uring,gnet -tests ping
//	go run . -only uring/0s,uring/200us   # io_uring with other batch waits
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	envPinned  = "SOCKETLEY_BENCH_PINNED"
	serverCPU  = 0
	clientCPU  = 1
	msgSize    = 64
	defaultRun = 3
)

func main() {
	serveKind := flag.String("serve", "", "run one echo server of this kind (internal)")
	port := flag.Int("port", 0, "port for -serve (internal)")
	runs := flag.Int("runs", defaultRun, "runs per test (the median is reported)")
	dur := flag.Duration("d", time.Second, "duration of the timed tests")
	only := flag.String("only", "", "comma-separated server kinds to run (default all)")
	filter := flag.String("tests", "", "run only tests whose name contains this")
	flag.Parse()

	if *serveKind != "" {
		if err := serve(*serveKind, *port); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	if os.Getenv(envPinned) == "" {
		if runtime.NumCPU() < 2 {
			fmt.Fprintln(os.Stderr, "bench needs 2 CPUs (server on CPU 0, load on CPU 1)")
			os.Exit(2)
		}
		// Re-execute pinned to the client CPU so that every thread of the
		// load generator, the runtime's included, stays there.
		os.Exit(reexecPinned(clientCPU, os.Args[1:], nil))
	}
	ks := kinds()
	if *only != "" {
		ks = strings.Split(*only, ",")
	}
	if err := run(ks, *runs, *dur, *filter); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// startPinned starts cmd from a thread whose affinity is cpu, so the child
// and all of its threads inherit it.
func startPinned(cmd *exec.Cmd, cpu int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread keeps its changed mask: never unlock it, so it exits
		// with this goroutine instead of returning to the scheduler.
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func reexecPinned(cpu int, args []string, env []string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envPinned+"=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := startPinned(cmd, cpu); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 1
	}
	return 0
}

// proc is one running server process.
type proc struct {
	kind  string
	port  int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	info  string
}

func startServer(kind string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", kind, "-port", fmt.Sprint(port))
	cmd.Env = os.Environ()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := startPinned(cmd, serverCPU); err != nil {
		return nil, err
	}
	br := bufio.NewReader(out)
	var line string
	for i := 0; i < 20 && err == nil && !strings.HasPrefix(line, "ready"); i++ {
		line, err = br.ReadString('\n')
	}
	if err != nil || !strings.HasPrefix(line, "ready") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("server %s did not start: %q %v", kind, line, err)
	}
	go io.Copy(io.Discard, br)
	return &proc{kind: kind, port: port, cmd: cmd, stdin: stdin, info: strings.TrimSpace(line)}, nil
}

func (p *proc) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// cpuTime returns the process's utime+stime from /proc/PID/stat.
func (p *proc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	fmt.Sscan(f[11], &ut) // field 14 of stat
	fmt.Sscan(f[12], &st) // field 15
	const clkTck = 100    // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// result is one measurement.
type result struct {
	rate   float64       // messages (or connections) per second
	p50    time.Duration // latency, ping-pong tests only
	p99    time.Duration
	cpuPer time.Duration // server CPU per message
}

func run(ks []string, runs int, dur time.Duration, filter string) error {
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, k := range ks {
		p, err := startServer(k)
		if err != nil {
			return err
		}
		procs[k] = p
	}
	fmt.Printf("bench: server on CPU %d, load generator on CPU %d, %s, %d runs per test (medians)\n",
		serverCPU, clientCPU, runtime.Version(), runs)
	for _, k := range ks {
		fmt.Printf("  %-17s pid %d port %d (%s)\n", kindTitle(k), procs[k].cmd.Process.Pid, procs[k].port, procs[k].info)
	}
	var ts []test
	for _, t := range tests(dur) {
		if strings.Contains(t.name, filter) {
			ts = append(ts, t)
		}
	}
	all := map[string]map[string][]result{} // test -> kind -> runs
	for _, t := range ts {
		all[t.name] = map[string][]result{}
	}
	for r := 0; r < runs; r++ {
		for _, t := range ts {
			for _, k := range ks {
				p := procs[k]
				res, err := measure(p, t)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", t.name, k, err)
				}
				all[t.name][k] = append(all[t.name][k], res)
				time.Sleep(100 * time.Millisecond)
			}
		}
		fmt.Fprintf(os.Stderr, "run %d/%d done\n", r+1, runs)
	}
	printTable(ks, ts, all)
	return nil
}

func measure(p *proc, t test) (result, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", p.port)
	st, err := t.setup(addr)
	if err != nil {
		return result{}, err
	}
	defer st.close()
	c0, err := p.cpuTime()
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	n, lat, err := st.run()
	el := time.Since(start)
	c1, _ := p.cpuTime()
	if err != nil {
		return result{}, err
	}
	res := result{rate: float64(n) / el.Seconds()}
	if n > 0 {
		res.cpuPer = (c1 - c0) / time.Duration(n)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[len(lat)*99/100]
	}
	return res, nil
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func printTable(ks []string, ts []test, all map[string]map[string][]result) {
	fmt.Println()
	fmt.Println("| test | server | rate | vs Go net | vs gnet | p50 | p99 | server CPU/msg | CPU vs Go net | CPU vs gnet |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, t := range ts {
		rate := func(k string) float64 { return median(all[t.name][k], func(r result) float64 { return r.rate }) }
		cpu := func(k string) float64 {
			return median(all[t.name][k], func(r result) float64 { return float64(r.cpuPer) })
		}
		ratio := func(a, b float64, ok bool) string {
			if !ok || b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", a/b)
		}
		_, haveNet := all[t.name]["gonet"]
		_, haveGnet := all[t.name]["gnet"]
		for _, k := range ks {
			p50, p99 := "-", "-"
			if t.latency {
				p50 = fmtDur(time.Duration(median(all[t.name][k], func(r result) float64 { return float64(r.p50) })))
				p99 = fmtDur(time.Duration(median(all[t.name][k], func(r result) float64 { return float64(r.p99) })))
			}
			var rn, rg, cn, cg float64
			if haveNet {
				rn, cn = rate("gonet"), cpu("gonet")
			}
			if haveGnet {
				rg, cg = rate("gnet"), cpu("gnet")
			}
			fmt.Printf("| %s | %s | %s %s | %s | %s | %s | %s | %s | %s | %s |\n",
				t.name, kindTitle(k), fmtRate(rate(k)), t.unit,
				ratio(rate(k), rn, haveNet), ratio(rate(k), rg, haveGnet), p50, p99,
				fmtDur(time.Duration(cpu(k))), ratio(cpu(k), cn, haveNet), ratio(cpu(k), cg, haveGnet))
		}
	}
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fK", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d >= time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	}
	return fmt.Sprintf("%dns", d.Nanoseconds())
}
