// Command restart measures kill -9 → answering for socketley and PM2 side by
// side, in one run, with the same binary: the C echo server in
// testdata/echo.c, compiled here with gcc.
//
// Every manager runs -services copies of it on their own ports and each gets
// -kills SIGKILLs, round robin over its services. For a kill the harness reads
// the current main PID through the manager (systemctl --user show -p MainPID
// for socketley-NAME.service, pm2 jlist for PM2), checks that it is the echo
// server on that port, opens a pidfd on it, sends SIGKILL through the pidfd,
// waits until the old process has exited (so its listening socket is gone),
// then polls every 0.5 ms until a fresh TCP connect to the port succeeds and a
// 14-byte echo round trip comes back. The time from the kill to that echo is
// the sample. The managers' kills are interleaved (one at a time, never
// overlapping), so load on the machine hits all of them alike, and a service
// is only killed once it has been answering for -uptime (default 15 s: longer
// than socketley's crash-backoff reset period and PM2's min_uptime, so every
// kill measures the restart of a process that had been up a while).
//
// Rows: socketley with default restart settings; socketley with
// --restart-sec VALUE (-restart-sec, default 0; "" leaves the row out); PM2
// with its defaults (autorestart, no restart delay; -pm2 "" leaves it out).
// PM2 gets a private PM2_HOME and is killed (pm2 kill) at the end; the
// socketley runtimes are removed and the daemon stopped, also on failure and
// on SIGINT/SIGTERM.
//
// Run it as root inside the sandbox (make bench-restart does, through
// scripts/bench-restart.sh, which also installs PM2 when it is missing):
//
//	scripts/systemd-sandbox.sh --journal -- go -C bench run ./restart -socketley $PWD/bin/socketley
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type options struct {
	socketley, pm2, restartSec, src, cc string
	services, kills                     int
	uptime, gap, timeout                time.Duration
	verbose                             bool
}

func main() {
	var o options
	flag.StringVar(&o.socketley, "socketley", "bin/socketley", "socketley binary")
	flag.StringVar(&o.pm2, "pm2", "pm2", `pm2 command ("" = no PM2 row)`)
	flag.StringVar(&o.restartSec, "restart-sec", "0", `extra socketley row added with --restart-sec VALUE ("" = no extra row)`)
	flag.IntVar(&o.services, "services", 5, "services (ports) per manager")
	flag.IntVar(&o.kills, "kills", 20, "kill -9s per manager, round robin over its services")
	flag.DurationVar(&o.uptime, "uptime", 15*time.Second, "a service is killed only after it has been answering this long (0 = back to back: measures crash backoff)")
	flag.DurationVar(&o.gap, "gap", 200*time.Millisecond, "pause between reading a PID and the kill, so that the CLI call is over")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "a service that does not answer this long after its kill counts as failed")
	flag.StringVar(&o.src, "src", "restart/testdata/echo.c", "echo server source")
	flag.StringVar(&o.cc, "cc", "gcc", "C compiler")
	flag.BoolVar(&o.verbose, "v", false, "print every kill")
	flag.Parse()
	if o.services < 1 || o.kills < 1 {
		fmt.Fprintln(os.Stderr, "restart bench: -services and -kills must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "restart bench:", err)
		os.Exit(1)
	}
}

// group is one row of the result: one manager (and setting) with its services.
type group struct {
	label   string
	setting string // the restart setting, as the manager reports it
	pm2     bool
	pid     func(s *service) (int, error)
	svcs    []*service
	samples []time.Duration
	failed  []string
}

type service struct {
	g      *group
	name   string
	port   int
	upAt   time.Time // when it last answered
	killed int       // the PID killed last
}

func run(ctx context.Context, o options) (err error) {
	var cleanups []func()
	defer func() {
		for _, c := range slices.Backward(cleanups) {
			c()
		}
	}()
	// inside the sandbox its work dir is removed even if this process dies hard
	dir, err := os.MkdirTemp(os.Getenv("SDH_WORKDIR"), "restart-bench-")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })

	echo := filepath.Join(dir, "echo")
	if out, err := exec.Command(o.cc, "-O2", "-o", echo, o.src).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", o.cc, o.src, err, out)
	}
	load0 := loadavg()
	t0 := time.Now()

	var groups []*group
	nGroups := 1
	if o.restartSec != "" {
		nGroups++
	}
	if o.pm2 != "" {
		nGroups++
	}
	ports, err := freePorts(nGroups * o.services)
	if err != nil {
		return err
	}
	nextPort := func() int { p := ports[0]; ports = ports[1:]; return p }

	// socketley: one daemon, a group of services per setting
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return errors.New("no user bus: run inside scripts/systemd-sandbox.sh (make bench-restart)")
	}
	sl, err := startSocketley(ctx, o.socketley, dir)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, sl.stop)
	settings := []struct{ label, prefix string }{{"socketley (defaults)", "rbdef"}}
	if o.restartSec != "" {
		settings = append(settings, struct{ label, prefix string }{"socketley --restart-sec " + o.restartSec, "rbrs"})
	}
	for _, st := range settings {
		g := &group{label: st.label, pid: sl.mainPID}
		for i := range o.services {
			s := &service{g: g, name: fmt.Sprintf("%s%d", st.prefix, i), port: nextPort()}
			args := []string{"add", echo, "--name", s.name, "-s"}
			if st.prefix == "rbrs" {
				args = append(args, "--restart-sec", o.restartSec)
			}
			cleanups = append(cleanups, func() { _, _ = sl.cli(context.Background(), "remove", s.name) })
			if _, err := sl.cli(ctx, append(args, "--", strconv.Itoa(s.port))...); err != nil {
				return err
			}
			g.svcs = append(g.svcs, s)
		}
		g.setting = sl.restartSetting(g.svcs[0].name)
		groups = append(groups, g)
	}

	// PM2: private PM2_HOME, defaults
	var pm *pm2
	if o.pm2 != "" {
		pm = &pm2{bin: o.pm2, home: filepath.Join(dir, "pm2")}
		cleanups = append(cleanups, pm.kill)
		ver, err := pm.run(ctx, "--version")
		if err != nil {
			return err
		}
		g := &group{label: "PM2 " + lastLine(ver), pm2: true, pid: pm.pid}
		for i := range o.services {
			s := &service{g: g, name: fmt.Sprintf("rbpm2-%d", i), port: nextPort()}
			if _, err := pm.run(ctx, "start", echo, "--name", s.name, "--interpreter", "none", "--", strconv.Itoa(s.port)); err != nil {
				return err
			}
			g.svcs = append(g.svcs, s)
		}
		g.setting = pm.restartSetting(ctx, g.svcs[0].name)
		groups = append(groups, g)
	}

	for _, g := range groups {
		for _, s := range g.svcs {
			if err := waitAnswer(ctx, s.port, time.Now().Add(o.timeout)); err != nil {
				return fmt.Errorf("%s %s (port %d) never answered: %w", g.label, s.name, s.port, err)
			}
			s.upAt = time.Now()
		}
	}
	fmt.Fprintf(os.Stderr, "restart bench: %d managers × %d services up after %s; %d kills each, interleaved, every victim up ≥ %s first (≈%s more)\n",
		len(groups), o.services, time.Since(t0).Round(time.Second), o.kills, o.uptime, estimate(o, len(groups)).Round(time.Second))
	tk := time.Now()

	total := o.kills * len(groups)
	n := 0
	for k := range o.kills {
		for j := range groups {
			g := groups[(j+k)%len(groups)]
			s := g.svcs[k%len(g.svcs)]
			n++
			d, err := killOne(ctx, o, s, echo)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				g.failed = append(g.failed, err.Error())
				fmt.Fprintf(os.Stderr, "[%2d/%d] %-28s %-8s FAILED: %v\n", n, total, g.label, s.name, err)
				continue
			}
			g.samples = append(g.samples, d)
			if o.verbose {
				fmt.Fprintf(os.Stderr, "[%2d/%d] %-28s %-8s %s\n", n, total, g.label, s.name, ms(d))
			}
		}
		if !o.verbose && ((k+1)%o.services == 0 || k+1 == o.kills) {
			fmt.Fprintf(os.Stderr, "  %d/%d kills on each manager done (%s)\n", k+1, o.kills, time.Since(tk).Round(time.Second))
		}
	}

	// after the run: every service must be up, and its manager must agree
	var notes []string
	for _, g := range groups {
		for _, s := range g.svcs {
			if err := waitAnswer(ctx, s.port, time.Now().Add(o.timeout)); err != nil {
				notes = append(notes, fmt.Sprintf("%s %s is down after the run: %v", g.label, s.name, err))
			}
		}
		if g.pm2 {
			notes = append(notes, pm.check(ctx, g)...)
		} else {
			notes = append(notes, sl.check(ctx, g)...)
		}
	}
	report(o, groups, load0, loadavg(), time.Since(t0), notes)
	for _, g := range groups {
		if len(g.failed) > 0 {
			return fmt.Errorf("%s: %d of %d kills failed", g.label, len(g.failed), o.kills)
		}
	}
	return nil
}

// killOne reads s's PID through its manager, kills it and times kill → echo.
func killOne(ctx context.Context, o options, s *service, echo string) (time.Duration, error) {
	pid, err := s.g.pid(s)
	if err != nil {
		return 0, err
	}
	if pid <= 0 {
		return 0, errors.New("the manager reports no main PID (not running)")
	}
	if pid == s.killed {
		return 0, fmt.Errorf("the manager still reports PID %d, which was killed", pid)
	}
	if err := isEcho(pid, echo, s.port); err != nil {
		return 0, err
	}
	due := time.Now().Add(o.gap)
	if up := s.upAt.Add(o.uptime); up.After(due) {
		due = up
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(time.Until(due)):
	}
	d, err := killAndTime(ctx, pid, s.port, o.timeout)
	s.killed = pid
	s.upAt = time.Now()
	return d, err
}

// killAndTime sends SIGKILL to pid through a pidfd, waits until the process
// has exited (its listening socket is closed then: whatever answers later is
// a new process) and polls every 0.5 ms until a fresh connection to port
// echoes. It returns the time from the kill to the echo.
func killAndTime(ctx context.Context, pid, port int, timeout time.Duration) (time.Duration, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	t0 := time.Now()
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return 0, fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 5000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("poll pidfd %d: %w", pid, err)
		}
		if n == 0 {
			return 0, fmt.Errorf("PID %d still alive 5 s after SIGKILL", pid)
		}
		break
	}
	deadline := t0.Add(timeout)
	for {
		if echoOnce(port) == nil {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("port %d not answering %s after the kill", port, timeout)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(500 * time.Microsecond)
	}
}

var probe = []byte("restart-bench\n")

// echoOnce connects to 127.0.0.1:port (a blocking connect: on loopback a
// refused connection fails at once) and does one echo round trip.
func echoOnce(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 1}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	if n, err := unix.Write(fd, probe); err != nil || n != len(probe) {
		return fmt.Errorf("write: %d, %v", n, err)
	}
	buf := make([]byte, len(probe))
	for got := 0; got < len(buf); {
		n, err := unix.Read(fd, buf[got:])
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("closed before the echo")
		}
		got += n
	}
	if !bytes.Equal(buf, probe) {
		return fmt.Errorf("echo %q", buf)
	}
	return nil
}

func waitAnswer(ctx context.Context, port int, deadline time.Time) error {
	for {
		err := echoOnce(port)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// isEcho checks that pid is our echo binary serving port.
func isEcho(pid int, echo string, port int) error {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return fmt.Errorf("PID %d: %w", pid, err)
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	if exe != echo || args[len(args)-1] != strconv.Itoa(port) {
		return fmt.Errorf("PID %d is %s %q, not the echo server on port %d", pid, exe, args, port)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ---------------------------------------------------------------- socketley

type socketley struct {
	bin, sock string
	daemon    *exec.Cmd
	log       bytes.Buffer
}

func startSocketley(ctx context.Context, bin, dir string) (*socketley, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	s := &socketley{bin: abs, sock: filepath.Join(dir, "s.sock")}
	s.daemon = exec.Command(abs, "daemon", "--user", "--socket", s.sock, "--state-dir", filepath.Join(dir, "state"))
	s.daemon.Stderr = &s.log
	if err := s.daemon.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for exec.CommandContext(ctx, abs, "--socket", s.sock, "ls").Run() != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("socketley daemon not ready:\n%s", s.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, nil
}

func (s *socketley) stop() {
	if s.daemon != nil {
		_ = s.daemon.Process.Signal(syscall.SIGTERM)
		_ = s.daemon.Wait()
		s.daemon = nil
	}
}

func (s *socketley) cli(ctx context.Context, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, s.bin, append([]string{"--socket", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("socketley %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

func unitProp(name, prop string) (string, error) {
	out, err := exec.Command("systemctl", "--user", "show", "-p", prop, "--value", "socketley-"+name+".service").Output()
	if err != nil {
		return "", fmt.Errorf("systemctl show %s %s: %w", prop, name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (s *socketley) mainPID(svc *service) (int, error) {
	v, err := unitProp(svc.name, "MainPID")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// restartSetting says what systemd was given, whatever the daemon's defaults are.
func (s *socketley) restartSetting(name string) string {
	var f []string
	for _, p := range []string{"Restart", "RestartUSec", "StartLimitBurst", "StartLimitIntervalUSec"} {
		v, err := unitProp(name, p)
		if err != nil {
			v = "?"
		}
		p = strings.Replace(strings.TrimPrefix(p, "StartLimit"), "USec", "Sec", 1)
		f = append(f, p+"="+v)
	}
	return strings.Join(f, " ")
}

func (s *socketley) check(ctx context.Context, g *group) []string {
	args := []string{"show", "-o", "json"}
	for _, sv := range g.svcs {
		args = append(args, sv.name)
	}
	out, err := s.cli(ctx, args...)
	if err != nil {
		return []string{err.Error()}
	}
	var rts []struct {
		Name     string `json:"name"`
		Status   string `json:"status"`
		Restarts int    `json:"restarts"`
	}
	if err := json.Unmarshal(out, &rts); err != nil {
		return []string{fmt.Sprintf("socketley show -o json: %v", err)}
	}
	var notes []string
	restarts := 0
	for _, r := range rts {
		restarts += r.Restarts
		if r.Status != "running" {
			notes = append(notes, fmt.Sprintf("%s: socketley show says %s is %s after the run", g.label, r.Name, r.Status))
		}
	}
	if restarts != len(g.samples) {
		notes = append(notes, fmt.Sprintf("%s: socketley counts %d restarts for %d measured kills", g.label, restarts, len(g.samples)))
	}
	return notes
}

// ---------------------------------------------------------------- PM2

type pm2 struct{ bin, home string }

func (p *pm2) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), "PM2_HOME="+p.home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("pm2 %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

// kill deletes the apps and stops the private PM2 daemon.
func (p *pm2) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(p.home); err != nil {
		return // never started
	}
	_, _ = p.run(ctx, "delete", "all")
	if _, err := p.run(ctx, "kill"); err != nil {
		fmt.Fprintln(os.Stderr, "restart bench:", err)
	}
}

type pm2App struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	PM2  struct {
		Status           string `json:"status"`
		RestartTime      int    `json:"restart_time"`
		UnstableRestarts int    `json:"unstable_restarts"`
		Autorestart      *bool  `json:"autorestart"`
		RestartDelay     *int   `json:"restart_delay"`
		ExpBackoff       *int   `json:"exp_backoff_restart_delay"`
		MinUptime        any    `json:"min_uptime"`
		MaxRestarts      any    `json:"max_restarts"`
	} `json:"pm2_env"`
}

func (p *pm2) list(ctx context.Context) ([]pm2App, error) {
	out, err := p.run(ctx, "jlist")
	if err != nil {
		return nil, err
	}
	// jlist prints the JSON array last; anything before it is noise
	if i := bytes.Index(out, []byte("\n[")); i >= 0 {
		out = out[i+1:]
	}
	var apps []pm2App
	if err := json.Unmarshal(out, &apps); err != nil {
		return nil, fmt.Errorf("pm2 jlist: %v", err)
	}
	return apps, nil
}

func (p *pm2) app(ctx context.Context, name string) (pm2App, error) {
	apps, err := p.list(ctx)
	if err != nil {
		return pm2App{}, err
	}
	for _, a := range apps {
		if a.Name == name {
			return a, nil
		}
	}
	return pm2App{}, fmt.Errorf("pm2 jlist: no app %s", name)
}

func (p *pm2) pid(s *service) (int, error) {
	a, err := p.app(context.Background(), s.name)
	if err != nil {
		return 0, err
	}
	if a.PM2.Status != "online" {
		return 0, fmt.Errorf("pm2 says %s is %s", s.name, a.PM2.Status)
	}
	return a.PID, nil
}

func (p *pm2) restartSetting(ctx context.Context, name string) string {
	a, err := p.app(ctx, name)
	if err != nil {
		return "?"
	}
	// unset fields are PM2's defaults; jlist shows only what was set
	e := a.PM2
	f := []string{"autorestart=default(on)", "restart_delay=default(0)", "exp_backoff_restart_delay=default(off)",
		"min_uptime=default", "max_restarts=default"}
	if e.Autorestart != nil {
		f[0] = "autorestart=" + strconv.FormatBool(*e.Autorestart)
	}
	if e.RestartDelay != nil {
		f[1] = "restart_delay=" + strconv.Itoa(*e.RestartDelay)
	}
	if e.ExpBackoff != nil {
		f[2] = "exp_backoff_restart_delay=" + strconv.Itoa(*e.ExpBackoff)
	}
	if e.MinUptime != nil {
		f[3] = fmt.Sprint("min_uptime=", e.MinUptime)
	}
	if e.MaxRestarts != nil {
		f[4] = fmt.Sprint("max_restarts=", e.MaxRestarts)
	}
	return strings.Join(f, " ")
}

func (p *pm2) check(ctx context.Context, g *group) []string {
	apps, err := p.list(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var notes []string
	restarts := 0
	for _, a := range apps {
		restarts += a.PM2.RestartTime
		if a.PM2.Status != "online" {
			notes = append(notes, fmt.Sprintf("%s: %s is %s after the run", g.label, a.Name, a.PM2.Status))
		}
	}
	if restarts != len(g.samples) {
		notes = append(notes, fmt.Sprintf("%s: PM2 counts %d restarts for %d measured kills", g.label, restarts, len(g.samples)))
	}
	return notes
}

// ---------------------------------------------------------------- report

func report(o options, groups []*group, load0, load1 string, took time.Duration, notes []string) {
	fmt.Printf("\nkill -9 → answering (fresh TCP connect + echo round trip, polled every 0.5 ms): same C echo binary,\n")
	fmt.Printf("%d kills per manager round robin over %d services, managers interleaved, each victim up ≥ %s before its kill\n\n",
		o.kills, o.services, o.uptime)
	var ref *group
	for _, g := range groups {
		if g.pm2 && len(g.samples) > 0 {
			ref = g
		}
	}
	fmt.Printf("%-30s %5s %10s %10s %10s   %s\n", "manager", "n", "median", "p90", "max", "ratio to PM2 (median, p90)")
	for _, g := range groups {
		if len(g.samples) == 0 {
			fmt.Printf("%-30s %5d %10s %10s %10s   %d failed\n", g.label, 0, "-", "-", "-", len(g.failed))
			continue
		}
		r := "-"
		if ref != nil && g != ref {
			r = fmt.Sprintf("%.2f×, %.2f×", ratio(g.samples, ref.samples, 50), ratio(g.samples, ref.samples, 90))
		} else if g == ref {
			r = "1 (reference)"
		}
		if len(g.failed) > 0 {
			r += fmt.Sprintf("   (%d failed)", len(g.failed))
		}
		fmt.Printf("%-30s %5d %10s %10s %10s   %s\n", g.label, len(g.samples), ms(pct(g.samples, 50)), ms(pct(g.samples, 90)), ms(slices.Max(g.samples)), r)
	}
	fmt.Println()
	for _, g := range groups {
		fmt.Printf("  %-28s %s\n", g.label+":", g.setting)
	}
	fmt.Printf("\nmachine: %d CPUs, load average %s at the start, %s at the end; run took %s\n",
		runtime.NumCPU(), load0, load1, took.Round(time.Second))
	if l := max(loadFloat(load0), loadFloat(load1)); l > float64(runtime.NumCPU())/2 {
		fmt.Printf("  note: the machine was busy (1-min load up to %.2f on %d CPUs): absolute figures are noisy", l, runtime.NumCPU())
		if len(groups) > 1 {
			fmt.Printf(";\n  the managers were interleaved kill by kill, so the ratios are fairer than the absolute values")
		}
		fmt.Println()
	}
	// The manager the units ran under (systemctl --version is the client's).
	if v, err := exec.Command("systemctl", "--user", "show", "-p", "Version", "--value").Output(); err == nil {
		fmt.Printf("  systemd user manager %s\n", strings.TrimSpace(string(v)))
	} else if v, err := exec.Command("systemctl", "show", "-p", "Version", "--value").Output(); err == nil {
		fmt.Printf("  systemd manager %s\n", strings.TrimSpace(string(v)))
	}
	for _, n := range notes {
		fmt.Println("  warning:", n)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func loadFloat(s string) float64 {
	f, _ := strconv.ParseFloat(strings.Fields(s + " ")[0], 64)
	return f
}

// estimate is the rough duration of the kill phase: a service's k-th kill
// comes k × -uptime after it first answered, or later when the kills of a
// round (PID read, gap, restart) take longer than that.
func estimate(o options, groups int) time.Duration {
	rounds := (o.kills + o.services - 1) / o.services
	perRound := max(o.uptime, time.Duration(o.services*groups)*(o.gap+500*time.Millisecond))
	return time.Duration(rounds)*perRound + 10*time.Second
}

func lastLine(b []byte) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(l[len(l)-1])
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

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
