// Command listen measures what a client sees while a managed TCP service is
// killed, restarted and upgraded (issue #10): fresh TCP connections at a
// fixed rate (default 500/s) for a fixed time (default 30 s) against the Go
// SDK echo example, while the harness does kill -9s, `socketley restart`s and
// `socketley upgrade`s spread over the run. It runs twice in one go: with
// `add --listen` (systemd holds the listening socket, connections queue
// during the gap) and without (the program binds itself: the comparison
// row). For each it prints the requests sent, answered, refused, reset or
// failed otherwise, and the p50, p99 and max request latency (dial to the
// echoed line) next to RestartSec.
//
// Run it as root inside the sandbox (make bench-listen does):
//
//	scripts/systemd-sandbox.sh -- go -C bench run ./listen -socketley $PWD/bin/socketley
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	bin, dir, sock string
	echo           [2]string // two copies of the example, for upgrades back and forth
	rate           int
	duration       time.Duration
	kills          int
	restarts       int
	upgrades       int
	restartSec     time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "socketley", "bin/socketley", "socketley binary")
	flag.IntVar(&c.rate, "rate", 500, "new connections per second")
	flag.DurationVar(&c.duration, "d", 30*time.Second, "duration of each run")
	flag.IntVar(&c.kills, "kills", 10, "kill -9s of the service per run")
	flag.IntVar(&c.restarts, "restarts", 10, "socketley restarts per run")
	flag.IntVar(&c.upgrades, "upgrades", 2, "socketley upgrades per run")
	flag.DurationVar(&c.restartSec, "restart-sec", 100*time.Millisecond, "the runtime's --restart-sec")
	flag.Parse()
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		fail("no user bus: run inside scripts/systemd-sandbox.sh (make bench-listen)")
	}
	var err error
	c.bin, err = filepath.Abs(c.bin)
	check(err)
	c.dir, err = os.MkdirTemp("", "socketley-bench-listen-")
	check(err)
	defer os.RemoveAll(c.dir)
	c.sock = filepath.Join(c.dir, "s.sock")
	for i := range c.echo {
		c.echo[i] = filepath.Join(c.dir, fmt.Sprintf("echo-v%d", i+1))
		out, err := exec.Command("go", "build", "-o", c.echo[i], "github.com/socketley/socketley/examples/echo-service").CombinedOutput()
		if err != nil {
			fail(fmt.Sprintf("build the echo example: %v\n%s", err, out))
		}
	}
	daemon := exec.Command(c.bin, "daemon", "--user", "--socket", c.sock, "--state-dir", filepath.Join(c.dir, "state"))
	var dlog bytes.Buffer
	daemon.Stderr = &dlog
	check(daemon.Start())
	defer func() { _ = daemon.Process.Signal(syscall.SIGTERM); _ = daemon.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := c.cli("version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail("the daemon did not answer:\n" + dlog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("%d new connections/s for %s, %d kill -9, %d restart, %d upgrade per run; RestartSec=%s\n\n",
		c.rate, c.duration, c.kills, c.restarts, c.upgrades, c.restartSec)
	fmt.Printf("%-16s %8s %8s %8s %8s %8s %9s %9s %9s\n", "run", "sent", "answered", "refused", "reset", "other", "p50", "p99", "max")
	for _, listen := range []bool{true, false} {
		r := c.run(listen)
		name := "add --listen"
		if !listen {
			name = "without"
		}
		fmt.Printf("%-16s %8d %8d %8d %8d %8d %9s %9s %9s\n", name, r.sent, r.answered, r.refused, r.reset, r.other,
			pct(r.lat, 50), pct(r.lat, 99), pct(r.lat, 100))
		for _, e := range r.examples {
			fmt.Printf("    e.g. %s\n", e)
		}
	}
}

type result struct {
	sent, answered, refused, reset, other int
	lat                                   []time.Duration
	examples                              []string
}

// run adds the echo service (with or without --listen), drives the load and
// the disruptions, and removes the service.
func (c *config) run(listen bool) *result {
	port := freePort()
	name := "bench-plain"
	args := []string{"add", c.echo[0], "--name", name, "--restart-sec", c.restartSec.String(), "-s", "--wait"}
	if listen {
		name = "bench-listen"
		args = []string{"add", c.echo[0], "--name", name, "--listen", "127.0.0.1:" + strconv.Itoa(port), "--restart-sec", c.restartSec.String(), "-s", "--wait"}
	}
	args = append(args, "--", "-port", strconv.Itoa(port))
	if out, err := c.cli(args...); err != nil {
		fail(fmt.Sprintf("socketley %s: %v\n%s", strings.Join(args, " "), err, out))
	}
	defer func() { _, _ = c.cli("remove", name) }()

	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(c.rate))
	defer tick.Stop()
	go c.disrupt(ctx, name)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-tick.C:
		}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			d, err := request(addr, n)
			mu.Lock()
			defer mu.Unlock()
			res.sent++
			switch {
			case err == nil:
				res.answered++
				res.lat = append(res.lat, d)
				return
			case errors.Is(err, syscall.ECONNREFUSED):
				res.refused++
			case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, errClosed):
				res.reset++
			default:
				res.other++
			}
			if len(res.examples) < 3 {
				res.examples = append(res.examples, err.Error())
			}
		}(n)
	}
}

var errClosed = errors.New("connection closed before the reply")

// request opens a connection, sends one line and waits for its echo.
func request(addr string, n int) (time.Duration, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(start.Add(20 * time.Second))
	msg := fmt.Sprintf("ping %d\n", n)
	if _, err := conn.Write([]byte(msg)); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		if line == "" && (errors.Is(err, os.ErrDeadlineExceeded) || err.Error() == "EOF") {
			return 0, fmt.Errorf("%w (%v)", errClosed, err)
		}
		return 0, err
	}
	if line != msg {
		return 0, fmt.Errorf("echoed %q, want %q", line, msg)
	}
	return time.Since(start), nil
}

// disrupt spreads the kill -9s, restarts and upgrades evenly over the run.
func (c *config) disrupt(ctx context.Context, name string) {
	var plan []string
	for i := range max(c.kills, c.restarts, c.upgrades) {
		if i < c.kills {
			plan = append(plan, "kill")
		}
		if i < c.restarts {
			plan = append(plan, "restart")
		}
		if i < c.upgrades {
			plan = append(plan, "upgrade")
		}
	}
	gap := c.duration / time.Duration(len(plan)+1)
	next := 1
	for i, what := range plan {
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		var out string
		var err error
		switch what {
		case "kill":
			var pid int
			pid, err = c.mainPID(name)
			if err == nil {
				err = syscall.Kill(pid, syscall.SIGKILL)
			}
		case "restart":
			out, err = c.cli("restart", name)
		case "upgrade":
			out, err = c.cli("upgrade", name, c.echo[next])
			next = 1 - next
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "disruption %d (%s): %v %s\n", i+1, what, err, out)
		}
	}
}

func (c *config) mainPID(name string) (int, error) {
	out, err := c.cli("show", name, "-o", "json")
	if err != nil {
		return 0, fmt.Errorf("show: %v: %s", err, out)
	}
	var rts []struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(out), &rts); err != nil || len(rts) != 1 || rts[0].PID == 0 {
		return 0, fmt.Errorf("show %s: no pid in %q", name, out)
	}
	return rts[0].PID, nil
}

func (c *config) cli(args ...string) (string, error) {
	out, err := exec.Command(c.bin, append([]string{"--socket", c.sock}, args...)...).CombinedOutput()
	return string(out), err
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return s[max(i, 0)].Round(100 * time.Microsecond).String()
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench-listen:", msg)
	os.Exit(1)
}
