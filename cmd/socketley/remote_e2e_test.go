//go:build integration

package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// runWith runs the CLI with extra environment (not bound to an env's
// socket) and returns stdout, stderr and the exit code.
func runWith(t *testing.T, environ []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), environ...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// okWith is runWith that fails the test unless the CLI exits 0.
func okWith(t *testing.T, environ []string, args ...string) string {
	t.Helper()
	out, errs, code := runWith(t, environ, args...)
	if code != 0 {
		t.Fatalf("socketley %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// writeExec writes an executable file.
func writeExec(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// leftover returns the processes whose command line contains every one of
// words (the test's own paths): ssh or dial-stdio processes that outlived
// the CLI.
func leftover(words ...string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

// listedAll returns every runtime of ls -o json, orphans included.
func listedAll(t *testing.T, environ []string, args ...string) map[string]wire.Runtime {
	t.Helper()
	var rts []wire.Runtime
	out := okWith(t, environ, append(args, "ls", "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &rts); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	m := map[string]wire.Runtime{}
	for _, r := range rts {
		m[r.Name] = r
	}
	return m
}

// listed returns the runtimes of ls -o json but the orphans: for a daemon
// that shares the sandbox's systemd manager with the other tests running
// meanwhile (other packages too), whose units show as orphans there. The
// test's runtimes never are orphans on their own daemon.
func listed(t *testing.T, environ []string, args ...string) map[string]wire.Runtime {
	t.Helper()
	m := listedAll(t, environ, args...)
	for name, r := range m {
		if r.Orphan {
			delete(m, name)
		}
	}
	return m
}

// TestRemoteFakeSSH drives a real daemon through -H with an ssh stand-in
// that runs the remote command locally (sh -c, as sshd does): the framing,
// the half-close of dial-stdio, an event stream and ssh's errors, without
// an sshd.
func TestRemoteFakeSSH(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(bin, "socketley")); err != nil {
		t.Fatal(err)
	}
	writeExec(t, filepath.Join(bin, "ssh"), "#!/bin/sh\n"+
		"while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\nshift\n"+
		"exec sh -c \"$*\"\n")
	environ := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "SOCKETLEY_SOCKET=/nonexistent/local.sock"}
	// --socket goes to the remote dial-stdio; SOCKETLEY_SOCKET of this
	// shell is not used.
	h := []string{"-H", "ssh://me@box:2222", "--socket", e.sock}
	svc := e.script("svc.sh", "exec sleep 1000")

	out := okWith(t, environ, append(h, "add", svc, "-s", "--name", "far")...)
	if !strings.Contains(out, "far: started") {
		t.Fatalf("add over -H: %q", out)
	}
	if r, ok := listed(t, environ, h...)["far"]; !ok || r.Status != wire.StatusRunning {
		t.Fatalf("ls over -H: far is %+v (listed %t)", r, ok)
	}
	if out := okWith(t, environ, append(h, "ps")...); !strings.Contains(out, "far ") {
		t.Fatalf("ps over -H:\n%s", out)
	}
	if out := okWith(t, environ, append(h, "version")...); !strings.Contains(out, "at ssh://me@box:2222") {
		t.Fatalf("version over -H:\n%s", out)
	}

	// events -f over the stream: the first reply, then a live event; the
	// interrupted CLI leaves no ssh or dial-stdio behind.
	var evOut testenv.LogBuffer
	ev := exec.Command(binPath, append(h, "events", "-f", "far")...)
	ev.Env = append(os.Environ(), environ...)
	ev.Stdout, ev.Stderr = &evOut, &evOut
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	waitText(t, &evOut, "the events so far", regexp.MustCompile(`far +started`))
	okWith(t, environ, append(h, "stop", "far")...)
	waitText(t, &evOut, "the live stop event", regexp.MustCompile(`far +stopped`))
	_ = ev.Process.Signal(syscall.SIGINT)
	_ = ev.Wait()
	eventually(t, "no dial-stdio left after events -f ends", func() bool { return len(leftover("dial-stdio", e.sock)) == 0 })

	// A relative PATH is refused: it names a file of the remote host.
	if _, errs, code := runWith(t, environ, append(h, "add", "./svc.sh")...); code != 1 || !strings.Contains(errs, "give it absolute") {
		t.Fatalf("add ./svc.sh over -H: exit %d, %s", code, errs)
	}
	okWith(t, environ, append(h, "remove", "far")...)
	if rts := listed(t, environ, h...); len(rts) != 0 {
		t.Fatalf("after remove over -H: %v", rts)
	}

	// A remote daemon that is not there: exit 2 with the remote words.
	_, errs, code := runWith(t, environ, "-H", "ssh://box", "--socket", filepath.Join(e.dir, "none.sock"), "ls")
	if code != 2 || !strings.Contains(errs, "cannot reach the socketley daemon on ssh://box") || !strings.Contains(errs, "none.sock") {
		t.Fatalf("unreachable remote daemon: exit %d, %s", code, errs)
	}
	// ssh itself failing: exit 2 with ssh's words and a hint.
	deny := writeExec(t, filepath.Join(t.TempDir(), "ssh"), "#!/bin/sh\necho 'root@box: Permission denied (publickey).' >&2\nexit 255\n")
	_, errs, code = runWith(t, append(environ, "SOCKETLEY_SSH="+deny), "-H", "ssh://box", "ls")
	if code != 2 || !strings.Contains(errs, "Permission denied (publickey).") || !strings.Contains(errs, "hint: check that this works") {
		t.Fatalf("ssh failure: exit %d, %s", code, errs)
	}
	if left := leftover("dial-stdio", e.sock); len(left) > 0 {
		t.Fatalf("dial-stdio processes left: %q", left)
	}
}

// waitText waits until re matches what b holds (woken by each write).
func waitText(t *testing.T, b *testenv.LogBuffer, what string, re *regexp.Regexp) {
	t.Helper()
	expire := time.NewTimer(waitTimeout)
	defer expire.Stop()
	for {
		s, changed := b.Next()
		if re.MatchString(s) {
			return
		}
		select {
		case <-changed:
		case <-expire.C:
			t.Fatalf("no %s within %s:\n%s", what, waitTimeout, s)
		}
	}
}

// must runs a command that must succeed (the test's setup).
func must(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// userUnitState returns "LoadState ActiveState" of socketley-NAME.service
// in the systemd user manager that environ points systemctl --user at (nil:
// the test's own, the sandbox's): "loaded active", or "not-found inactive"
// for a unit that manager does not have.
func userUnitState(t *testing.T, environ []string, name string) string {
	t.Helper()
	cmd := exec.Command("systemctl", "--user", "show", "-p", "LoadState,ActiveState", "socketley-"+name+".service")
	cmd.Env = append(os.Environ(), environ...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl --user show socketley-%s.service: %v\n%s", name, err, out)
	}
	p := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		p[k] = v
	}
	return p["LoadState"] + " " + p["ActiveState"]
}

// sshLab is what the hosts of TestRemoteSSHD share and the client side: the
// socketley binary for the hosts' logins, sshd, a throw-away key pair
// authorized on every host, and the user's ssh setup (environ runs ssh with
// the key and a known_hosts that learns each host key on first use).
type sshLab struct {
	dir        string
	bin        string // holds socketley, for the logins' PATH
	sshd       string
	sandbox    string // scripts/systemd-sandbox.sh
	authorized string
	sshConfig  string
	environ    []string // for the CLI: SOCKETLEY_SSH = ssh with sshConfig
	net        [2]int   // A, B: host i (< 4) gets the /30 10.A.(B+i).0
	hosts      int      // hosts started so far
}

// newSSHLab skips the test unless it runs as root with sshd, ssh, ip and
// network namespaces, and prepares the client side.
func newSSHLab(t *testing.T) *sshLab {
	t.Helper()
	testenv.RequireSystemd(t)
	testenv.RequireRoot(t)
	l := &sshLab{dir: t.TempDir(), sshd: "/usr/sbin/sshd"}
	if p, err := exec.LookPath("sshd"); err == nil {
		l.sshd = p
	}
	for _, p := range []string{l.sshd, "ssh", "ssh-keygen", "ip", "nsenter"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skipf(t, "%s is not installed (apt-get install openssh-server openssh-client iproute2 util-linux): %v", p, err)
		}
	}
	probe := fmt.Sprintf("skprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		testenv.Skipf(t, "cannot create a network namespace: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	var err error
	if l.sandbox, err = filepath.Abs(filepath.Join("..", "..", "scripts", "systemd-sandbox.sh")); err != nil {
		t.Fatal(err)
	}
	// sshd's privilege separation directory (the package's tmpfiles.d
	// makes it at boot).
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	l.bin = filepath.Join(l.dir, "bin")
	if err := os.Mkdir(l.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binPath, filepath.Join(l.bin, "socketley")); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(l.dir, "id")
	must(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "socketley-test", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	l.authorized = filepath.Join(l.dir, "authorized_keys")
	if err := os.WriteFile(l.authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l.sshConfig = filepath.Join(l.dir, "ssh_config")
	if err := os.WriteFile(l.sshConfig, []byte(fmt.Sprintf(`Host *
	IdentityFile %s
	IdentitiesOnly yes
	IdentityAgent none
	UserKnownHostsFile %s
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking accept-new
	ConnectTimeout 20
`, key, filepath.Join(l.dir, "known_hosts"))), 0o600); err != nil {
		t.Fatal(err)
	}
	sshWrap := writeExec(t, filepath.Join(l.dir, "ssh"), "#!/bin/sh\nexec ssh -F "+l.sshConfig+" \"$@\"\n")
	l.environ = []string{"SOCKETLEY_SSH=" + sshWrap}
	// A /30 per host in 10.A.B.0, picked at random so that runs side by
	// side do not share routes.
	l.net = [2]int{64 + rand.IntN(128), rand.IntN(63) * 4}
	return l
}

// sshHost is one "machine" of TestRemoteSSHD: a network namespace with a
// systemd sandbox of its own (scripts/systemd-sandbox.sh, nested in the
// test's: a private systemd user manager, session bus and XDG_RUNTIME_DIR)
// in which its socketley daemon and an OpenSSH sshd on the namespace's veth
// address run. Its units are invisible to the other hosts and to the test's
// own manager.
type sshHost struct {
	tag  string // "a", "b": in the names of its namespace, interfaces, files
	ns   string // its network namespace
	addr string // sshd listens on addr:22
	url  string // ssh://root@addr, for -H
	dir  string // its files: keys, configs, daemon state, service scripts
	sock string // its daemon's socket (the logins' SOCKETLEY_SOCKET)
	// systemdEnv points systemctl --user at the host's own manager:
	// XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS of its sandbox, and
	// SYSTEMCTL_FORCE_BUS=1: the manager's private socket
	// ($XDG_RUNTIME_DIR/systemd/private, systemctl's first choice) drops
	// clients from outside the sandbox's PID namespace, such as this test
	// (systemd 252: "Transport endpoint is not connected"); the session bus
	// takes them.
	systemdEnv []string
	log        *testenv.LogBuffer // the sandbox's, the daemon's and sshd's output
	ended      chan struct{}      // closed when the sandbox has exited
}

// hostEnvRE matches the line a host's start script prints first: where its
// sandbox lives (the manager's cgroup is SCOPE/user.slice/...).
var hostEnvRE = regexp.MustCompile(`host env: SDH_WORKDIR=(\S+) SDH_CGROUP=(\S+) XDG_RUNTIME_DIR=(\S+) DBUS_SESSION_BUS_ADDRESS=(\S+)\n`)

// startHost starts host tag: its network namespace with a veth pair to
// this one, and in it its systemd sandbox running the daemon and sshd
// (ForceCommand: a login script that puts socketley in the PATH and the
// daemon's socket in SOCKETLEY_SOCKET, as a login on a real host would
// find them, then runs the command ssh was given). It returns once the
// daemon has logged "daemon ready" and sshd listens. On cleanup the
// sandbox gets SIGTERM (it stops the manager and removes its cgroup and
// work dir) and the test fails if anything of the host is left.
func (l *sshLab) startHost(t *testing.T, tag string) *sshHost {
	t.Helper()
	i := l.hosts
	l.hosts++
	h := &sshHost{tag: tag, ns: fmt.Sprintf("sk%d%s", os.Getpid(), tag), dir: filepath.Join(l.dir, tag),
		log: &testenv.LogBuffer{}, ended: make(chan struct{})}
	hostIf, nsIf := fmt.Sprintf("skh%d%s", os.Getpid()%100000, tag), fmt.Sprintf("skn%d%s", os.Getpid()%100000, tag)
	hostAddr := fmt.Sprintf("10.%d.%d.1", l.net[0], l.net[1]+i)
	h.addr = fmt.Sprintf("10.%d.%d.2", l.net[0], l.net[1]+i)
	h.url = "ssh://root@" + h.addr
	must(t, "ip", "netns", "add", h.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.ns).Run() })
	must(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", h.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	must(t, "ip", "addr", "add", hostAddr+"/30", "dev", hostIf)
	must(t, "ip", "link", "set", hostIf, "up")
	must(t, "ip", "-n", h.ns, "addr", "add", h.addr+"/30", "dev", nsIf)
	must(t, "ip", "-n", h.ns, "link", "set", nsIf, "up")
	must(t, "ip", "-n", h.ns, "link", "set", "lo", "up")

	if err := os.Mkdir(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.sock = filepath.Join(h.dir, "run", "socketley.sock")
	hostKey := filepath.Join(h.dir, "host_key")
	must(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
	login := writeExec(t, filepath.Join(h.dir, "login"), fmt.Sprintf(
		"#!/bin/sh\nexport PATH=%s:$PATH SOCKETLEY_SOCKET=%s\nexec sh -c \"$SSH_ORIGINAL_COMMAND\"\n", l.bin, h.sock))
	cfg := filepath.Join(h.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`ListenAddress %s:22
HostKey %s
PidFile none
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
ForceCommand %s
LogLevel VERBOSE
`, h.addr, hostKey, l.authorized, login)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The host's boot, the sandbox's COMMAND. The sandbox's teardown sends
	// it SIGTERM: it passes that on and waits for both.
	start := writeExec(t, filepath.Join(h.dir, "start"), fmt.Sprintf(`#!/bin/sh
echo "host env: SDH_WORKDIR=$SDH_WORKDIR SDH_CGROUP=$SDH_CGROUP XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS"
'%s' daemon --user --socket '%s' --state-dir '%s' --log-level debug &
daemon=$!
'%s' -D -e -f '%s' &
sshd=$!
trap 'kill -TERM $daemon $sshd 2>/dev/null' TERM INT
wait
wait
`, binPath, h.sock, filepath.Join(h.dir, "state"), l.sshd, cfg))

	// nsenter --net, not ip netns exec: that also mounts a fresh /sys,
	// which hides the cgroup2 mount the sandbox needs.
	sb := exec.Command("nsenter", "--net=/run/netns/"+h.ns, "--", l.sandbox, "--", start)
	sb.Stdout, sb.Stderr = h.log, h.log
	sb.WaitDelay = 10 * time.Second // a leftover holding the output pipe
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	var sbErr error
	go func() { sbErr = sb.Wait(); close(h.ended) }()
	var workdir, scope string
	t.Cleanup(func() {
		_ = sb.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.ended:
		case <-time.After(2 * waitTimeout):
			_ = sb.Process.Kill()
			<-h.ended
			t.Errorf("the sandbox of host %s did not end within %s of SIGTERM", tag, 2*waitTimeout)
		}
		// Nothing of the host is left: sshd, the daemon (their command
		// lines name cfg and the socket), the sandbox's cgroup, its work
		// dir.
		for _, w := range []string{cfg, h.sock} {
			if left := leftover(w); len(left) > 0 {
				t.Errorf("host %s: processes left after its sandbox ended: %q", tag, left)
			}
		}
		if workdir != "" {
			if _, err := os.Stat(workdir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("host %s: sandbox work dir %s left (%v)", tag, workdir, err)
			}
		}
		if scope != "" {
			for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				if _, err := os.Stat(root + scope); err == nil {
					t.Errorf("host %s: sandbox cgroup %s%s left", tag, root, scope)
				}
			}
		}
		if t.Failed() {
			t.Logf("host %s (%s): sandbox exit %v, log:\n%s", tag, h.addr, sbErr, h.log.String())
		}
	})
	m := h.waitLog(t, "where its sandbox is", hostEnvRE)
	workdir = m[1]
	scope, _, _ = strings.Cut(m[2], "/user.slice/")
	h.systemdEnv = []string{"XDG_RUNTIME_DIR=" + m[3], "DBUS_SESSION_BUS_ADDRESS=" + m[4], "SYSTEMCTL_FORCE_BUS=1"}
	h.waitLog(t, "daemon ready", regexp.MustCompile(`msg="daemon ready" `))
	h.waitLog(t, "sshd listening on "+h.addr, regexp.MustCompile(`Server listening on `+regexp.QuoteMeta(h.addr)+` port 22`))
	return h
}

// waitLog waits, woken by each write, until re matches the host's log and
// returns the submatches; it fails the test if the sandbox ends first or
// after waitTimeout.
func (h *sshHost) waitLog(t *testing.T, what string, re *regexp.Regexp) []string {
	t.Helper()
	expire := time.NewTimer(waitTimeout)
	defer expire.Stop()
	for {
		s, changed := h.log.Next()
		if m := re.FindStringSubmatch(s); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-h.ended:
			t.Fatalf("host %s: the sandbox ended before %s:\n%s", h.tag, what, h.log.String())
		case <-expire.C:
			t.Fatalf("host %s: no %s within %s:\n%s", h.tag, what, waitTimeout, s)
		}
	}
}

// script writes an executable shell script into the host's directory.
func (h *sshHost) script(t *testing.T, name, body string) string {
	t.Helper()
	return writeExec(t, filepath.Join(h.dir, name), "#!/bin/sh\n"+body+"\n")
}

// show returns the runtime as the host's daemon reports it (on its socket,
// not through ssh).
func (h *sshHost) show(t *testing.T, name string) wire.Runtime {
	t.Helper()
	var rts []wire.Runtime
	if err := json.Unmarshal([]byte(okWith(t, nil, "--socket", h.sock, "show", name, "-o", "json")), &rts); err != nil || len(rts) != 1 {
		t.Fatalf("host %s: show %s: %v (%d runtimes)", h.tag, name, err, len(rts))
	}
	return rts[0]
}

// systemctl runs systemctl --user ARGS against the host's own manager and
// returns its output; it fails the test unless systemctl exits 0.
func (h *sshHost) systemctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("systemctl", append([]string{"--user"}, args...)...)
	cmd.Env = append(os.Environ(), h.systemdEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("host %s: systemctl --user %s: %v\n%s", h.tag, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRemoteSSHD is -H for real: two "hosts", each a network namespace with
// a systemd sandbox of its own running an OpenSSH sshd on its own address
// and a socketley daemon behind it; a throw-away key pair and known_hosts.
// Runtimes are added, listed, applied (one manifest on both, --hosts) and
// removed on both through -H, each lands in its host's systemd manager
// only, and a login that ssh refuses is reported.
func TestRemoteSSHD(t *testing.T) {
	lab := newSSHLab(t)
	hosts := []*sshHost{lab.startHost(t, "a"), lab.startHost(t, "b")}
	environ := lab.environ
	web := func(h *sshHost) string { return "web-" + h.tag }

	// Add on both hosts through -H, each its own runtime.
	for _, h := range hosts {
		svc := h.script(t, "svc.sh", "exec sleep 1000")
		out := okWith(t, environ, "-H", h.url+":22", "add", svc, "--name", web(h), "-s", "--wait")
		if !strings.Contains(out, web(h)+": running") {
			t.Fatalf("add on %s: %q", h.addr, out)
		}
	}
	// Each host lists its own runtime only, and it runs there: the other
	// host's runtime is not even an orphan here, its unit is in the other
	// host's manager. The unit is in the host's own manager, and neither in
	// the other host's nor in the test's.
	for i, h := range hosts {
		other := hosts[1-i]
		rts := listedAll(t, environ, "-H", h.url)
		if r, ok := rts[web(h)]; !ok || r.Status != wire.StatusRunning || r.PID == 0 || r.Orphan {
			t.Fatalf("ls on %s: %s is %+v (listed %t)", h.addr, web(h), r, ok)
		}
		if len(rts) != 1 {
			t.Fatalf("ls on %s lists more than %s: %+v", h.addr, web(h), rts)
		}
		if r := h.show(t, web(h)); r.Status != wire.StatusRunning {
			t.Fatalf("the daemon of %s says %s is %s", h.addr, web(h), r.Status)
		}
		for _, m := range []struct {
			manager string
			environ []string
			want    string
		}{
			{"its host's", h.systemdEnv, "loaded active"},
			{"the other host's", other.systemdEnv, "not-found inactive"},
			{"the test's", nil, "not-found inactive"},
		} {
			if got := userUnitState(t, m.environ, web(h)); got != m.want {
				t.Fatalf("the unit of %s in %s manager: %s, want %s", web(h), m.manager, got, m.want)
			}
		}
	}
	// ls and ps with several -H: a HOST column, each runtime on its host;
	// a host that cannot be reached is reported and the others listed
	// (exit 2).
	ha, hb := hosts[0].url, hosts[1].url
	for _, verb := range []string{"ls", "ps"} {
		out := okWith(t, environ, "-H", ha, "-H", hb, verb)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if f := strings.Fields(lines[0]); len(f) < 2 || f[0] != "HOST" || f[1] != "NAME" {
			t.Fatalf("%s with two -H: header %q", verb, lines[0])
		}
		rows := map[string]bool{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			rows[f[0]+" "+f[1]] = true
		}
		if !rows[ha+" web-a"] || !rows[hb+" web-b"] || len(rows) != 2 {
			t.Fatalf("%s with two -H:\n%s", verb, out)
		}
	}
	bad := "ssh://no-such-user@" + hosts[1].addr
	out, errs, code := runWith(t, environ, "-H", ha, "-H", bad, "ls")
	if code != 2 || !strings.Contains(errs, "cannot reach the socketley daemon on "+bad) || !strings.Contains(errs, "Permission denied") ||
		!strings.Contains(out, ha) || !strings.Contains(out, "web-a") || strings.Contains(out, bad) {
		t.Fatalf("ls with an unreachable host: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// SOCKETLEY_HOST is -H's default.
	if out := okWith(t, append(environ, "SOCKETLEY_HOST="+hosts[1].url), "ps"); !strings.Contains(out, "web-b") {
		t.Fatalf("ps with SOCKETLEY_HOST:\n%s", out)
	}
	// A login that ssh refuses: exit 2, ssh's words, and nothing left.
	_, errs, code = runWith(t, environ, "-H", "ssh://no-such-user@"+hosts[0].addr, "ls")
	if code != 2 || !strings.Contains(errs, "Permission denied") || !strings.Contains(errs, "cannot reach the socketley daemon on ssh://no-such-user@"+hosts[0].addr) {
		t.Fatalf("refused login: exit %d\n%s", code, errs)
	}
	// apply on both hosts from one file (--hosts, with a host ssh refuses):
	// the dry run shows each host's plan, the refused one is reported
	// (exit 2); then the same runtime api runs on both, each in its own
	// host's manager, and --prune has removed the web runtimes.
	dir := t.TempDir()
	api := writeExec(t, filepath.Join(dir, "api.sh"), "#!/bin/sh\nexec sleep 1002\n")
	manifest := filepath.Join(dir, "socketley.yaml")
	if err := os.WriteFile(manifest, []byte("runtimes:\n  - name: api\n    path: "+api+"\n    args: [--port, \"7070\"]\n    env: {MODE: fleet}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fleet := filepath.Join(dir, "fleet")
	if err := os.WriteFile(fleet, []byte("# the fleet\n"+ha+"\n"+hb+"\n"+bad+"  # retired\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runWith(t, environ, "--hosts", fleet, "apply", "-f", manifest, "--prune", "--dry-run")
	for _, h := range hosts {
		section := "== " + h.url + " ==\nplan:\n  create    api\n  remove    " + web(h) + "\ndry run: 2 change(s) not made\n"
		if !strings.Contains(out, section) {
			t.Errorf("dry run on the fleet lacks %q", section)
		}
	}
	if code != 2 || !strings.Contains(out, "== "+bad+" ==") || !strings.Contains(errs, "Permission denied") || t.Failed() {
		t.Fatalf("dry run on the fleet: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	out = okWith(t, environ, "-H", ha, "-H", hb, "apply", "-f", manifest, "--prune")
	if strings.Count(out, "api: created and started\n") != 2 || !strings.Contains(out, "web-a: removed") || !strings.Contains(out, "web-b: removed") ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(ha)+` +ok$`).MatchString(out) || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(hb)+` +ok$`).MatchString(out) {
		t.Fatalf("apply on two hosts:\n%s", out)
	}
	for _, h := range hosts {
		rts := listedAll(t, environ, "-H", h.url)
		if r, ok := rts["api"]; len(rts) != 1 || !ok || r.Status != wire.StatusRunning || strings.Join(r.Args, " ") != "--port 7070" {
			t.Fatalf("ls on %s after apply: %+v", h.addr, rts)
		}
		if got := userUnitState(t, h.systemdEnv, "api"); got != "loaded active" {
			t.Fatalf("the unit of api in the manager of %s: %s", h.addr, got)
		}
	}
	out = okWith(t, environ, "-H", ha, "-H", hb, "apply", "-f", manifest, "--prune")
	if strings.Count(out, "nothing to change: 1 runtime(s) as the manifest says\n") != 2 {
		t.Fatalf("the second apply on two hosts:\n%s", out)
	}
	// export from one host, applied to the other: the same runtime,
	// nothing to change.
	exported := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(exported, []byte(okWith(t, environ, "-H", ha, "export")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := okWith(t, environ, "-H", hb, "apply", "-f", exported); !strings.HasPrefix(out, "nothing to change: 1 runtime(s)") {
		t.Fatalf("export -H a | apply -H b:\n%s", out)
	}

	// Remove on both through -H: nothing listed, and the unit has left the
	// host's manager.
	for _, h := range hosts {
		okWith(t, environ, "-H", h.url, "remove", "api")
	}
	for _, h := range hosts {
		if rts := listedAll(t, environ, "-H", h.url); len(rts) != 0 {
			t.Fatalf("ls on %s after remove: %v", h.addr, rts)
		}
		if units := h.systemctl(t, "list-units", "--all", "--plain", "--no-legend", "socketley-*"); units != "" {
			t.Fatalf("units left in the manager of %s after remove:\n%s", h.addr, units)
		}
	}
	if left := leftover("-F", lab.sshConfig); len(left) > 0 {
		t.Fatalf("ssh processes left: %q", left)
	}
	if left := leftover("dial-stdio"); len(left) > 0 {
		// The hosts' dial-stdio run in their sandboxes' PID namespaces,
		// which this one's /proc shows too.
		t.Logf("dial-stdio processes now: %q", left)
		eventually(t, "no dial-stdio left", func() bool { return len(leftover("dial-stdio")) == 0 })
	}
}
