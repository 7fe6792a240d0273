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

// listed returns the runtimes of ls -o json.
func listed(t *testing.T, environ []string, args ...string) map[string]wire.Runtime {
	t.Helper()
	var rts []wire.Runtime
	out := okWith(t, environ, append(args, "ls", "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &rts); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	m := map[string]wire.Runtime{}
	for _, r := range rts {
		// The daemons share the sandbox's systemd manager with the other
		// tests running meanwhile (other packages too): their units show
		// as orphans here. The test's runtimes never are orphans on their
		// own host.
		if r.Orphan {
			continue
		}
		m[r.Name] = r
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

// sshHost is one "machine" of TestRemoteSSHD: a network namespace with an
// sshd on its veth address, in front of its own socketley daemon.
type sshHost struct {
	ns   string
	addr string
	env  *env
}

// run runs a command that must succeed (the test's setup).
func must(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestRemoteSSHD is -H for real: two network namespaces, each with an
// OpenSSH sshd on its own address and a socketley daemon behind it, a
// throw-away key pair and known_hosts; runtimes are added, listed and
// removed on both through -H, and a login that ssh refuses is reported.
func TestRemoteSSHD(t *testing.T) {
	testenv.RequireSystemd(t)
	testenv.RequireRoot(t)
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	for _, p := range []string{sshd, "ssh", "ssh-keygen", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skipf(t, "%s is not installed (apt-get install openssh-server openssh-client iproute2): %v", p, err)
		}
	}
	probe := fmt.Sprintf("skprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		testenv.Skipf(t, "cannot create a network namespace: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	// sshd's privilege separation directory (the package's tmpfiles.d
	// makes it at boot).
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binPath, filepath.Join(bin, "socketley")); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id")
	must(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "socketley-test", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	// The user's ssh setup: a config with the key and a known_hosts file
	// that learns each host key on first use; SOCKETLEY_SSH runs ssh with it.
	sshConfig := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(sshConfig, []byte(fmt.Sprintf(`Host *
	IdentityFile %s
	IdentitiesOnly yes
	IdentityAgent none
	UserKnownHostsFile %s
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking accept-new
	ConnectTimeout 20
`, key, filepath.Join(dir, "known_hosts"))), 0o600); err != nil {
		t.Fatal(err)
	}
	sshWrap := writeExec(t, filepath.Join(dir, "ssh"), "#!/bin/sh\nexec ssh -F "+sshConfig+" \"$@\"\n")
	environ := []string{"SOCKETLEY_SSH=" + sshWrap}

	// A /30 per host in 10.x.y.0, picked at random so that runs side by
	// side do not share routes.
	a, b := 64+rand.IntN(128), rand.IntN(63)*4
	var hosts []*sshHost
	for i, tag := range []string{"a", "b"} {
		h := &sshHost{ns: fmt.Sprintf("sk%d%s", os.Getpid(), tag)}
		hostIf, nsIf := fmt.Sprintf("skh%d%s", os.Getpid()%100000, tag), fmt.Sprintf("skn%d%s", os.Getpid()%100000, tag)
		hostAddr := fmt.Sprintf("10.%d.%d.1", a, b+i)
		h.addr = fmt.Sprintf("10.%d.%d.2", a, b+i)
		must(t, "ip", "netns", "add", h.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.ns).Run() })
		must(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", h.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
		must(t, "ip", "addr", "add", hostAddr+"/30", "dev", hostIf)
		must(t, "ip", "link", "set", hostIf, "up")
		must(t, "ip", "-n", h.ns, "addr", "add", h.addr+"/30", "dev", nsIf)
		must(t, "ip", "-n", h.ns, "link", "set", nsIf, "up")
		must(t, "ip", "-n", h.ns, "link", "set", "lo", "up")

		// The host's daemon; a session on the host finds it as a login
		// there would: socketley in the PATH, its socket in
		// SOCKETLEY_SOCKET (ForceCommand sets both, then runs the
		// command ssh was given).
		h.env = newEnv(t)
		hdir := filepath.Join(dir, tag)
		if err := os.Mkdir(hdir, 0o755); err != nil {
			t.Fatal(err)
		}
		hostKey := filepath.Join(hdir, "host_key")
		must(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
		login := writeExec(t, filepath.Join(hdir, "login"), fmt.Sprintf(
			"#!/bin/sh\nexport PATH=%s:$PATH SOCKETLEY_SOCKET=%s\nexec sh -c \"$SSH_ORIGINAL_COMMAND\"\n", bin, h.env.sock))
		cfg := filepath.Join(hdir, "sshd_config")
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
`, h.addr, hostKey, authorized, login)), 0o600); err != nil {
			t.Fatal(err)
		}
		var log testenv.LogBuffer
		srv := exec.Command("ip", "netns", "exec", h.ns, sshd, "-D", "-e", "-f", cfg)
		srv.Stdout, srv.Stderr = &log, &log
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = srv.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("sshd %s log:\n%s", h.addr, log.String())
			}
		})
		waitText(t, &log, "sshd listening on "+h.addr, regexp.MustCompile(`Server listening on `+regexp.QuoteMeta(h.addr)+` port 22`))
		hosts = append(hosts, h)
	}

	// Add on both hosts through -H, each its own runtime.
	for _, h := range hosts {
		svc := h.env.script("svc.sh", "exec sleep 1000")
		name := "web-" + h.ns[len(h.ns)-1:]
		out := okWith(t, environ, "-H", "ssh://root@"+h.addr+":22", "add", svc, "--name", name, "-s", "--wait")
		if !strings.Contains(out, name+": running") {
			t.Fatalf("add on %s: %q", h.addr, out)
		}
	}
	// Each host lists its own runtime only, and it runs there.
	for _, h := range hosts {
		mine, other := "web-"+h.ns[len(h.ns)-1:], ""
		for _, o := range hosts {
			if o != h {
				other = "web-" + o.ns[len(o.ns)-1:]
			}
		}
		rts := listed(t, environ, "-H", "ssh://root@"+h.addr)
		if r, ok := rts[mine]; !ok || r.Status != wire.StatusRunning || r.PID == 0 {
			t.Fatalf("ls on %s: %s is %+v (listed %t)", h.addr, mine, r, ok)
		}
		// Both daemons share the sandbox's one systemd manager: the
		// other host's unit shows here as an orphan (which listed
		// leaves out), never as ours.
		if r, ok := rts[other]; ok {
			t.Fatalf("ls on %s lists %s of the other host as its own: %+v", h.addr, other, r)
		}
		if r := h.env.show(mine); r.Status != wire.StatusRunning {
			t.Fatalf("the daemon of %s says %s is %s", h.addr, mine, r.Status)
		}
	}
	// ls and ps with several -H: a HOST column, each runtime on its host;
	// a host that cannot be reached is reported and the others listed
	// (exit 2).
	ha, hb := "ssh://root@"+hosts[0].addr, "ssh://root@"+hosts[1].addr
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
		if !rows[ha+" web-a"] || !rows[hb+" web-b"] {
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
	if out := okWith(t, append(environ, "SOCKETLEY_HOST=ssh://root@"+hosts[1].addr), "ps"); !strings.Contains(out, "web-b") {
		t.Fatalf("ps with SOCKETLEY_HOST:\n%s", out)
	}
	// A login that ssh refuses: exit 2, ssh's words, and nothing left.
	_, errs, code = runWith(t, environ, "-H", "ssh://no-such-user@"+hosts[0].addr, "ls")
	if code != 2 || !strings.Contains(errs, "Permission denied") || !strings.Contains(errs, "cannot reach the socketley daemon on ssh://no-such-user@"+hosts[0].addr) {
		t.Fatalf("refused login: exit %d\n%s", code, errs)
	}
	// Remove on both through -H.
	for _, h := range hosts {
		okWith(t, environ, "-H", "ssh://root@"+h.addr, "remove", "web-"+h.ns[len(h.ns)-1:])
	}
	for _, h := range hosts {
		if rts := listed(t, environ, "-H", "ssh://root@"+h.addr); len(rts) != 0 {
			t.Fatalf("ls on %s after remove: %v", h.addr, rts)
		}
	}
	if left := leftover("-F", sshConfig); len(left) > 0 {
		t.Fatalf("ssh processes left: %q", left)
	}
	if left := leftover("dial-stdio"); len(left) > 0 {
		// Only this test's dial-stdio runs in this sandbox's PID namespace.
		t.Logf("dial-stdio processes now: %q", left)
		eventually(t, "no dial-stdio left", func() bool { return len(leftover("dial-stdio")) == 0 })
	}
}
