//go:build integration

package main_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// hardenEnv starts a daemon in a directory outside /tmp and /var/tmp:
// a hardened unit has a private /tmp (PrivateTmp=), where it would see
// neither its binary nor the daemon's socket.
func hardenEnv(t *testing.T) *env {
	t.Helper()
	dir := hardenDir(t)
	return newEnvAt(t, dir, filepath.Join(dir, "state"))
}

// hardenDir makes a directory for the test outside /tmp and /var/tmp.
func hardenDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/lib", "socketley-harden-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // after the daemon's cleanup
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+\.[0-9]+)`)

// TestHardenEcho: examples/echo-service added with --harden attaches to
// the daemon over its unix socket and serves TCP under the preset; the unit
// has the preset's properties (systemd's view); show says so; systemd-analyze
// --user security rates the unit 2.0 or lower (docs/harden.md).
func TestHardenEcho(t *testing.T) {
	hardenEcho(t, hardenEnv(t), "--user")
}

// TestHardenEchoSystem is TestHardenEcho against a system daemon (the
// runtime added by root), with the system manager's preset
// (ProtectKernelTunables, ProtectKernelLogs) and systemd-analyze security.
// Runs only inside `systemd-sandbox.sh --system` (scripts/test.sh, stage
// system-reboot).
func TestHardenEchoSystem(t *testing.T) {
	if os.Getenv("SOCKETLEY_SYSTEM_SANDBOX") != "1" {
		testenv.Skip(t, "needs systemd as PID 1: run in scripts/systemd-sandbox.sh --system with SOCKETLEY_SYSTEM_SANDBOX=1 (make test's system-reboot stage does)")
	}
	if b, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(b)) != "systemd" {
		t.Fatalf("SOCKETLEY_SYSTEM_SANDBOX=1 but PID 1 is %q, not systemd", b)
	}
	dir := hardenDir(t)
	e := &env{t: t, dir: dir, sock: filepath.Join(dir, "run", "socketley.sock"), state: filepath.Join(dir, "state")}
	e.log = &testenv.LogBuffer{}
	cmd := exec.Command(binPath, "daemon", "--system", "--group", "root", "--socket", e.sock, "--state-dir", e.state, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.daemon = cmd
	e.exited = make(chan error, 1)
	go func() { e.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		e.run("remove", "*")
		e.stopDaemon(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.log.String())
		}
	})
	e.waitLog(0, "daemon ready", regexp.MustCompile(`msg="daemon ready" `))
	hardenEcho(t, e, "--system")
	if got := systemProp(t, "hecho", "ProtectKernelTunables"); got != "yes" {
		t.Errorf("ProtectKernelTunables=%s, want yes (system daemon)", got)
	}
}

// systemProp is unitProp for the system manager.
func systemProp(t *testing.T, name, prop string) string {
	t.Helper()
	out, err := exec.Command("systemctl", "show", "-p", prop, "--value", "socketley-"+name+".service").Output()
	if err != nil {
		t.Fatalf("systemctl show %s: %v", prop, err)
	}
	return strings.TrimSpace(string(out))
}

// hardenEcho adds the hardened echo-service to e's daemon, whose manager
// is mode (--user or --system), and checks that it attaches and echoes,
// its unit's properties and its exposure.
func hardenEcho(t *testing.T, e *env, mode string) {
	t.Helper()
	prop := unitProp
	if mode == "--system" {
		prop = systemProp
	}
	bin := filepath.Join(e.dir, "echo-service")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/echo-service").CombinedOutput(); err != nil {
		t.Fatalf("build echo-service: %v\n%s", err, out)
	}
	port := unassignedPort(t)
	e.ok("add", bin, "--name", "hecho", "-s", "--wait", "--attach", "--harden", "--", "-port", strconv.Itoa(port))
	r := e.show("hecho")
	if !r.Harden || r.Type != "server" || r.Port != port {
		t.Fatalf("show -o json: harden %v, type %q, port %d; want true, server, %d", r.Harden, r.Type, r.Port, port)
	}
	if out := e.ok("show", "hecho"); !strings.Contains(out, "Hardened") {
		t.Errorf("show does not say the runtime is hardened:\n%s", out)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte("hello hardened\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello hardened\n" {
		t.Fatalf("echo replied %q, %v", line, err)
	}
	for p, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictNamespaces": "yes", "MemoryDenyWriteExecute": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "", "SystemCallArchitectures": "native",
		"LockPersonality": "yes", "RestrictSUIDSGID": "yes", "UMask": "0077"} {
		if got := prop(t, "hecho", p); got != want {
			t.Errorf("%s=%s, want %s", p, got, want)
		}
	}
	args := []string{"security", "--no-pager", "socketley-hecho.service"}
	if mode == "--user" {
		args = append([]string{"--user"}, args...)
	}
	out, err := exec.Command("systemd-analyze", args...).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze %s: %v, no exposure level in\n%s", strings.Join(args, " "), err, out)
	}
	exposure, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze %s: exposure %.1f", strings.Join(args, " "), exposure)
	if exposure > 2.0 {
		t.Errorf("exposure %.1f, want 2.0 or lower:\n%s", exposure, out)
	}
}

// TestHardenWorkdir: under --harden the program may write its --workdir
// and nothing else of the host's file system.
func TestHardenWorkdir(t *testing.T) {
	e := hardenEnv(t)
	wd := filepath.Join(e.dir, "work")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(wd, "report")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	e.script("w.sh", `exec 3>`+fifo+`
if echo x > ./made; then echo workdir=ok >&3; else echo workdir=refused >&3; fi
if echo x > `+e.dir+`/outside 2>/dev/null; then echo outside=ok >&3; else echo outside=refused >&3; fi
exec 3>&-
exec sleep 1000`)
	e.ok("add", "./w.sh", "-s", "--harden", "--workdir", wd)
	if got := strings.Fields(readFIFO(t, fifo)); strings.Join(got, " ") != "workdir=ok outside=refused" {
		t.Fatalf("the program reported %q, want workdir=ok outside=refused", got)
	}
	if got := unitProp(t, "w", "ReadWritePaths"); got != wd {
		t.Errorf("ReadWritePaths=%s, want %s", got, wd)
	}
}
