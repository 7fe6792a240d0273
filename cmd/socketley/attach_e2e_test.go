//go:build integration

// End-to-end tests of attach, health and the socket's peer checks: the built
// daemon, the real systemd user manager of the sandbox, shell scripts and a C
// client (testdata/sockclient.c) that speaks the C++ SDK's wire format.
package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// fastTick is the health tick of the tests that are not about the default.
const fastTick = "200ms"

// newEnvWith is newEnv with extra daemon flags (such as --tick).
func newEnvWith(t *testing.T, daemonArgs ...string) *env {
	t.Helper()
	dir := t.TempDir()
	return newEnvAt(t, dir, filepath.Join(dir, "state"), daemonArgs...)
}

func startDaemonWith(e *env, args ...string) {
	e.t.Helper()
	e.log = &testenv.LogBuffer{}
	cmd := exec.Command(binPath, append([]string{"daemon", "--user", "--socket", e.sock, "--state-dir", e.state, "--log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = cmd
	e.exited = make(chan error, 1)
	go func() { e.exited <- cmd.Wait() }()
	// "daemon ready" is logged once the daemon has reconciled and listens.
	e.waitLog(0, "daemon ready", regexp.MustCompile(`msg="daemon ready" `))
	if out, errs, code := e.run("ls"); code != 0 {
		e.t.Fatalf("ls right after \"daemon ready\": exit %d\n%s%s\n%s", code, out, errs, e.log.String())
	}
}

// tickRE matches the daemon's debug line at the end of each health tick.
var tickRE = regexp.MustCompile(`msg=tick entries=\d+ probed=(\d+) `)

// waitTicks waits until n health ticks have ended after offset from and
// returns the last tick line. Ticks run one after another, so all but the
// first of them began after from.
func (e *env) waitTicks(from, n int) string {
	e.t.Helper()
	var m []int
	for i := range n {
		m = e.waitLog(from, fmt.Sprintf("tick %d of %d", i+1, n), tickRE)
		from = m[1]
	}
	return e.log.String()[m[0]:m[1]]
}

// line sends one request line the way the C++ clients do and returns the
// reply's code and text.
func (e *env) line(req string) (byte, string) {
	e.t.Helper()
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		e.t.Fatal(err)
	}
	code, payload, err := wire.ReadReply(bufio.NewReader(c))
	if err != nil {
		e.t.Fatalf("%s: %v", req, err)
	}
	return code, string(payload)
}

// fail runs the CLI and fails the test unless it exits with code and says msg.
func (e *env) fail(code int, msg string, args ...string) {
	e.t.Helper()
	out, errs, got := e.run(args...)
	if got != code || !strings.Contains(errs, msg) {
		e.t.Fatalf("socketley %s: exit %d, stderr %q (stdout %q); want exit %d mentioning %q",
			strings.Join(args, " "), got, errs, out, code, msg)
	}
}

// refusingPort returns a loopback port that refuses connections until the
// test ends: it is bound (so nothing else can take it, unlike a port listened
// on and closed again) but not listening.
func refusingPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// listen listens on a loopback port until the test ends.
func listen(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	cOnce sync.Once
	cPath string
	cErr  error
)

// cClient compiles testdata/sockclient.c once (next to the socketley binary).
func cClient(t *testing.T) string {
	t.Helper()
	cOnce.Do(func() {
		cPath = filepath.Join(filepath.Dir(binPath), "sockclient")
		out, err := exec.Command("cc", "-Wall", "-Werror", "-O2", "-o", cPath, "testdata/sockclient.c").CombinedOutput()
		if err != nil {
			cErr = fmt.Errorf("cc testdata/sockclient.c: %v\n%s", err, out)
		}
	})
	if cErr != nil {
		t.Fatal(cErr)
	}
	return cPath
}

// cServe runs `sockclient serve` outside any unit (an unmanaged attach) on
// a port the kernel picks, and waits for its "attached PID PORT" line. It is
// killed at the end of the test.
type cProc struct {
	cmd  *exec.Cmd
	out  *bufio.Reader
	done chan struct{}
	port int
}

func (e *env) cServe(typ, name string) (*cProc, error) {
	e.t.Helper()
	cmd := exec.Command(cClient(e.t), "serve", typ, name, "0")
	cmd.Env = append(os.Environ(), "SOCKETLEY_SOCKET="+e.sock)
	cmd.Env = slicesWithout(cmd.Env, "SOCKETLEY_MANAGED=", "SOCKETLEY_NAME=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &cProc{cmd: cmd, out: bufio.NewReader(pr), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = pw.Close(); close(p.done) }()
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	got := make(chan string, 1)
	go func() { l, _ := p.out.ReadString('\n'); got <- l }()
	select {
	case l := <-got:
		var pid int
		if n, _ := fmt.Sscanf(l, "attached %d %d\n", &pid, &p.port); n != 2 {
			<-p.done
			return nil, fmt.Errorf("sockclient serve: %q, stderr %q, exit %v", l, stderr.String(), cmd.ProcessState)
		}
	case <-time.After(waitTimeout):
		e.t.Fatalf("sockclient did not attach within %s; stderr %q", waitTimeout, stderr.String())
	}
	return p, nil
}

// readLine returns the next stdout line of the C client.
func (p *cProc) readLine(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() { l, _ := p.out.ReadString('\n'); got <- l }()
	select {
	case l := <-got:
		return l
	case <-time.After(waitTimeout):
		t.Fatalf("no output from sockclient within %s", waitTimeout)
	}
	return ""
}

// alive requires the C client to answer SIGWINCH with "alive PID": proof
// that no signal the daemon sent while handling a request (before its reply)
// ended it. Such a signal is pending before the reply is read, the client
// takes pending signals lowest number first, so a SIGTERM or SIGINT ends it
// before it answers SIGWINCH, and an unblocked fatal one kills it at once.
func (p *cProc) alive(t *testing.T, after string) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGWINCH)
	if l := p.readLine(t); l != fmt.Sprintf("alive %d\n", p.cmd.Process.Pid) {
		exit := "still running"
		select {
		case <-p.done:
			exit = p.cmd.ProcessState.String()
		default:
		}
		t.Fatalf("after %s the client answers %q (%s), want alive", after, l, exit)
	}
}

func slicesWithout(env []string, prefixes ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// mainPID is the unit's MainPID as systemd reports it.
func mainPID(t *testing.T, name string) int {
	t.Helper()
	pid, _ := strconv.Atoi(unitProp(t, name, "MainPID"))
	return pid
}

// TestManagedAttach: a script in the unit attaches with the CLI; ls/ps show
// type, port and pid; a spoofed attach from outside is refused; after a
// crash the new process re-attaches and the entry follows it.
func TestManagedAttach(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	port := listen(t)
	e.script("web.sh", fmt.Sprintf("%s attach server web %d || exit 9\nexec sleep 1000", binPath, port))

	e.ok("add", "./web.sh", "--attach", "-s", "--wait")
	pid := mainPID(t, "web")
	r := e.show("web")
	if r.Status != wire.StatusRunning || r.Type != "server" || r.Port != port || r.AttachPID != pid || r.PID != pid || r.AttachedAt.IsZero() {
		t.Fatalf("after add --wait: %+v (MainPID %d)", r, pid)
	}
	if got := e.psPID("web"); got != pid {
		t.Fatalf("ps PID %d, want %d", got, pid)
	}
	ls := e.ok("ls")
	if !strings.Contains(ls, "server") || !strings.Contains(ls, strconv.Itoa(port)) {
		t.Fatalf("ls does not show type and port:\n%s", ls)
	}

	// Spoofed: this test process is not in the unit.
	code, msg := e.line(fmt.Sprintf("attach proxy web %d --pid %d --managed", port+1, pid))
	if code != 1 || !strings.Contains(msg, "refused") || !strings.Contains(msg, "socketley-web.service") {
		t.Fatalf("spoofed managed attach: %d %q, want 1 and a refusal", code, msg)
	}
	e.fail(1, "refused", "attach", "proxy", "web", strconv.Itoa(port+1), "--pid", strconv.Itoa(pid), "--managed")
	if r := e.show("web"); r.Type != "server" || r.Port != port {
		t.Fatalf("a refused attach changed the entry: %+v", r)
	}

	// kill -9: systemd restarts the script, which attaches again.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var np int
	eventually(t, "the new process to re-attach", func() bool {
		r := e.show("web")
		np = r.PID
		return np != 0 && np != pid && r.AttachPID == np && r.Status == wire.StatusRunning
	})
	if got := mainPID(t, "web"); got != np {
		t.Fatalf("entry follows pid %d, MainPID is %d", np, got)
	}
}

// TestHealthRestartsUnhealthy: a process that attaches a port it does not
// listen on turns unhealthy and is restarted after --health-fails ticks.
func TestHealthRestartsUnhealthy(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	port := refusingPort(t)
	e.script("liar.sh", fmt.Sprintf("%s attach server liar %d || exit 9\nexec sleep 1000", binPath, port))
	from := e.mark()
	e.ok("add", "./liar.sh", "-s", "--attach", "--health-fails", "2")
	// The daemon's own decisions, in order: unhealthy, then the restart of
	// the process the decision was about; then the new process shows.
	e.waitLog(from, "liar unhealthy", regexp.MustCompile(fmt.Sprintf(`msg=unhealthy name=liar reason="port %d refuses connections on loopback" limit=2`, port)))
	m := e.waitLog(from, "the health restart of liar", regexp.MustCompile(`msg="restarting unhealthy runtime" name=liar pid=(\d+)`))
	first, _ := strconv.Atoi(e.log.String()[m[2]:m[3]])
	eventually(t, "the restarted liar to run", func() bool {
		r := e.show("liar")
		return r.Restarts >= 1 && r.PID != 0 && r.PID != first
	})

	// --health-fails 0: unhealthy, never restarted. Five ticks that each
	// found it unhealthy (the daemon counts them) and restarted nothing.
	e.script("liar2.sh", fmt.Sprintf("%s attach server liar2 %d || exit 9\nexec sleep 1000", binPath, port))
	from = e.mark()
	e.ok("add", "./liar2.sh", "-s", "--attach", "--health-fails", "0")
	p2 := mainPID(t, "liar2")
	e.waitLog(from, "five unhealthy ticks of liar2", regexp.MustCompile(`msg="still unhealthy" name=liar2 reason="[^"]*" ticks=5 limit=0`))
	if regexp.MustCompile(`msg="restarting unhealthy runtime" name=liar2 `).MatchString(e.log.String()[from:]) {
		t.Fatal("health-fails 0: liar2 was restarted")
	}
	if r := e.show("liar2"); r.PID != p2 || r.Restarts != 0 || r.Status != wire.StatusUnhealthy || !strings.Contains(r.Reason, "refuses connections") {
		t.Fatalf("health-fails 0: %+v, want unhealthy (port refuses connections), same pid %d, no restart", r, p2)
	}
}

// TestAttachOverdue: added with --attach, never attaches: starting, then
// unhealthy after --attach-timeout, then restarted; --wait fails with the reason.
func TestAttachOverdue(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	e.script("mute.sh", "exec sleep 1000")
	from := e.mark()
	t0 := time.Now()
	e.ok("add", "./mute.sh", "--attach", "--attach-timeout", "1500ms", "--health-fails", "2", "-s")
	r := e.show("mute")
	// The process started after t0; if show answered within 1.5 s of t0, the
	// attach cannot be overdue yet. On a machine slow enough to take longer,
	// the state may rightly have moved on: nothing to check then.
	if d := time.Since(t0); d < 1500*time.Millisecond {
		if r.Status != wire.StatusStarting || !strings.Contains(r.Reason, "waiting for pid") {
			t.Fatalf("%s after add: %s (%s), want starting", d, r.Status, r.Reason)
		}
	} else {
		t.Logf("add and show took %s, not less than the attach timeout: the starting state is not checked", d)
	}
	// The daemon's decisions, in order: overdue (unhealthy), then a restart
	// of that process; then the new process shows.
	e.waitLog(from, "mute overdue", regexp.MustCompile(`msg=unhealthy name=mute reason="pid \d+ has not attached after 1.5s" limit=2`))
	m := e.waitLog(from, "the health restart of mute", regexp.MustCompile(`msg="restarting unhealthy runtime" name=mute pid=(\d+)`))
	first, _ := strconv.Atoi(e.log.String()[m[2]:m[3]])
	eventually(t, "mute to be restarted", func() bool {
		r := e.show("mute")
		return r.Restarts >= 1 && r.PID != first && r.PID != 0
	})
	// With --health-fails 0 the overdue state stays, so show can be polled for it.
	e.ok("add", "./mute.sh", "--name", "stuck", "--attach", "--attach-timeout", "1500ms", "--health-fails", "0", "-s")
	eventually(t, "stuck to be unhealthy", func() bool {
		r := e.show("stuck")
		return r.Status == wire.StatusUnhealthy && strings.Contains(r.Reason, "has not attached after 1.5s")
	})

	// The message names the --timeout, so it proves the wait used it.
	e.fail(1, "still unattached after 1s", "add", "./mute.sh", "--name", "mute2", "--attach", "-s", "--wait", "--timeout", "1s")
}

// TestStatesAndWait: a binary that never attaches is running with "-" for
// type and port; a binary that exits at once crash-loops (and --wait says
// why); start --wait succeeds after the settle time.
func TestStatesAndWait(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	e.script("plain.sh", "exec sleep 1000")
	// Exits at once, but not before its start job has completed (a process
	// gone within the job fails the job itself, which is covered too).
	e.script("crash.sh", "echo crashing; sleep 0.2; exit 3")
	e.script("instant.sh", "exit 3")

	t0 := time.Now()
	e.ok("add", "./plain.sh", "-s", "--wait")
	if d := time.Since(t0); d < 900*time.Millisecond {
		t.Fatalf("add --wait of a non-attaching runtime returned after %s, want the ~1 s settle", d)
	}
	r := e.show("plain")
	if r.Status != wire.StatusRunning || r.Type != "" || r.Port != 0 {
		t.Fatalf("plain: %+v", r)
	}
	for _, l := range strings.Split(e.ok("ps"), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "plain" && (f[1] != "-" || f[2] != "-") {
			t.Fatalf("ps shows type/port for a runtime that never attached: %q", l)
		}
	}

	e.ok("add", "./plain.sh", "--name", "later")
	t0 = time.Now()
	e.ok("start", "later", "--wait")
	if d := time.Since(t0); d < 900*time.Millisecond || e.show("later").Status != wire.StatusRunning {
		t.Fatalf("start --wait: %s after %s", e.show("later").Status, d)
	}

	// The exit shows either in the wait ("exited (exit code 3)") or, when the
	// process is gone before the start job completes, in the job's failure
	// ("exited with status 3"); both are runtime failures: exit 1.
	exit3 := func(args ...string) {
		t.Helper()
		out, errs, code := e.run(args...)
		if code != 1 || !(strings.Contains(errs, "exit code 3") || strings.Contains(errs, "exited with status 3")) {
			t.Fatalf("socketley %s: exit %d, stderr %q (stdout %q); want exit 1 naming exit status 3", strings.Join(args, " "), code, errs, out)
		}
	}
	exit3("add", "./instant.sh", "-s", "--wait")
	exit3("add", "./crash.sh", "-s", "--wait")
	eventually(t, "crash to hit the start limit", func() bool {
		r := e.show("crash")
		return r.Status == wire.StatusCrashLoop && strings.Contains(r.Reason, "exit code 3")
	})
	exit3("start", "crash", "--wait")

	e.ok("add", "./crash.sh", "--name", "once", "--restart", "no", "-s")
	eventually(t, "once to fail", func() bool {
		r := e.show("once")
		return r.Status == wire.StatusFailed && strings.Contains(r.Reason, "exit code 3")
	})
}

// TestUnmanagedAttach uses the default 2 s tick: a C client attaches itself;
// ls/ps show it; detach forgets without killing; stop sends SIGTERM; a
// killed process disappears within one tick; the name can be attached again.
func TestUnmanagedAttach(t *testing.T) {
	e := newEnv(t) // default tick
	a, err := e.cServe("server", "uc")
	if err != nil {
		t.Fatal(err)
	}
	pid, port := a.cmd.Process.Pid, a.port
	r := e.show("uc")
	if r.Managed || r.Status != wire.StatusRunning || r.PID != pid || r.Type != "server" || r.Port != port {
		t.Fatalf("attached entry: %+v", r)
	}
	if got := e.psPID("uc"); got != pid {
		t.Fatalf("ps PID %d, want %d", got, pid)
	}
	// The C client lists too; PID is the last column of ps.
	cmd := exec.Command(cClient(t), "cmd", "ps")
	cmd.Env = append(os.Environ(), "SOCKETLEY_SOCKET="+e.sock)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "uc") || !strings.HasSuffix(strings.TrimSpace(strings.Split(string(out), "\n")[1]), strconv.Itoa(pid)) {
		t.Fatalf("sockclient cmd ps: %v\n%s", err, out)
	}
	// A second process may not take the name while the first lives.
	if _, err := e.cServe("server", "uc"); err == nil || !strings.Contains(err.Error(), "runtime already exists: uc") {
		t.Fatalf("duplicate attach: %v", err)
	}

	// Detach (SIGUSR1 makes the client send `remove uc`): forgotten, alive.
	_ = a.cmd.Process.Signal(syscall.SIGUSR1)
	if l := a.readLine(t); !strings.HasPrefix(l, "detach 0: detached uc") {
		t.Fatalf("detach reply %q", l)
	}
	if _, _, code := e.run("show", "uc"); code != 1 {
		t.Fatalf("show after detach: exit %d, want 1", code)
	}
	a.alive(t, "detach")

	// Attach again under the same name (another process); stop sends
	// SIGTERM, the client detaches at exit, the entry is gone.
	b, err := e.cServe("client", "uc")
	if err != nil {
		t.Fatal(err)
	}
	e.ok("stop", "uc")
	if l := b.readLine(t); !strings.HasPrefix(l, "detach 0") {
		t.Fatalf("detach at exit: %q", l)
	}
	<-b.done
	if ws := b.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.ExitStatus() != 0 {
		t.Fatalf("stopped client: %v", b.cmd.ProcessState)
	}
	eventually(t, "the stopped entry to go", func() bool { _, _, c := e.run("show", "uc"); return c == 1 })
	a.alive(t, "the stop of the second client")

	// SIGKILL: no detach; the first tick that begins after the death
	// forgets the entry. Ticks run one after another and log "tick" at their
	// end, so at most one tick (the one under way at the kill) ends between
	// the kill and the "forgotten" line.
	c, err := e.cServe("cache", "uc")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Process.Kill()
	<-c.done // reaped: its /proc entry is gone
	from := e.mark()
	m := e.waitLog(from, "uc forgotten", regexp.MustCompile(`msg="attached process exited; forgotten" name=uc\b`))
	if n := len(tickRE.FindAllStringIndex(e.log.String()[from:m[0]], -1)); n > 1 {
		t.Fatalf("the entry of a killed process was forgotten only after %d ticks, want the first tick after the kill", n)
	}
	if _, _, code := e.run("show", "uc"); code != 1 {
		t.Fatalf("show after \"forgotten\": exit %d, want 1", code)
	}
	// Re-attach after the old pid died.
	if _, err := e.cServe("server", "uc"); err != nil {
		t.Fatalf("re-attach after the old process died: %v", err)
	}

	// The CLI attaches its caller (the shell) by default; the shell says so
	// once the CLI got the reply.
	sh := exec.Command("sh", "-c", binPath+" --socket "+e.sock+" attach client shell 9999 >/dev/null && echo attached && exec sleep 1000")
	shOut, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sh.Process.Kill(); _ = sh.Wait() })
	shLine := make(chan string, 1)
	go func() { l, _ := bufio.NewReader(shOut).ReadString('\n'); shLine <- l }()
	select {
	case l := <-shLine:
		if l != "attached\n" {
			t.Fatalf("sh -c 'socketley attach ...': %q, want the attach to succeed", l)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the shell did not attach within %s", waitTimeout)
	}
	if r := e.show("shell"); r.PID != sh.Process.Pid || r.Type != "client" {
		t.Fatalf("CLI attach: %+v, want pid %d", r, sh.Process.Pid)
	}
}

// TestCClientManaged: the C client as a managed runtime attaches from
// inside its unit (--managed and the name from the environment).
func TestCClientManaged(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	e.ok("add", cClient(t), "--name", "capp", "--attach", "-s", "--wait", "--", "serve", "cache", "ignored", "0")
	from := e.mark()
	r := e.show("capp")
	if r.Status != wire.StatusRunning || r.Type != "cache" || r.Port == 0 || r.AttachPID != mainPID(t, "capp") {
		t.Fatalf("C client, managed: %+v", r)
	}
	// The port it attached is the one it listens on (it picked a free one).
	if c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)), waitTimeout); err != nil {
		t.Fatalf("attached port %d: %v", r.Port, err)
	} else {
		_ = c.Close()
	}
	// Two ticks that ended after the attach: the second began after it, and
	// checked capp's port (probed=1); it answers, so capp stays running.
	if l := e.waitTicks(from, 2); !strings.Contains(l, "probed=1 ") {
		t.Fatalf("the tick after the attach did not check capp's port: %s", l)
	}
	if r := e.show("capp"); r.Status != wire.StatusRunning {
		t.Fatalf("after some ticks: %s (%s)", r.Status, r.Reason)
	}
	// remove stops the unit (a managed runtime never sends remove itself).
	e.ok("remove", "capp")
	if st := unitProp(t, "capp", "LoadState"); st != "not-found" {
		t.Fatalf("after remove: %s", st)
	}
}

// TestSocketPeerCheck: another Unix user may not use a user-mode daemon.
// File permissions stop it first (0700 directory, 0600 socket); with them
// opened up, the daemon's SO_PEERCRED check still refuses it.
func TestSocketPeerCheck(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to create a user")
	}
	name := fmt.Sprintf("sltest%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	// The binaries must be reachable for that user.
	for _, d := range []string{filepath.Dir(binPath), filepath.Dir(cClient(t))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	as := func(args ...string) (string, int) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}, args...)...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SOCKETLEY_SOCKET=" + e.sock}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	// Layer 1: the file system.
	if fi, err := os.Stat(filepath.Dir(e.sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(e.sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	out, code := as(binPath, "ls")
	if code != 2 || !strings.Contains(out, "permission denied") {
		t.Fatalf("other user, private socket: exit %d\n%s", code, out)
	}

	// Layer 2: the daemon's peer check, with the path opened up.
	for p := filepath.Dir(e.sock); len(p) > 1 && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(e.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out, code = as(binPath, "ls")
	if code != 1 || !strings.Contains(out, "may not use it") {
		t.Fatalf("other user, open socket, CLI: exit %d\n%s", code, out)
	}
	out, code = as(cClient(t), "cmd", "attach", "server", "intruder", "80", "--pid", "1")
	if code != 1 || !strings.Contains(out, "may not use it") {
		t.Fatalf("other user, open socket, C client: exit %d\n%s", code, out)
	}
	if _, _, c := e.run("show", "intruder"); c != 1 {
		t.Fatal("a refused user created an entry")
	}
	// The owner (root here) still gets through.
	e.ok("ls")
}
