//go:build integration

package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
)

// userUnitDir is where the test's user manager reads unit files:
// $XDG_CONFIG_HOME/systemd/user (the sandbox sets XDG_CONFIG_HOME).
func userUnitDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		base = filepath.Join(home, ".config")
	}
	dir := filepath.Join(base, "systemd", "user")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// userctl runs systemctl --user and fails the test on an error.
func userctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("systemctl", append([]string{"--user"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestExportSystemd: a runtime with --listen, arguments that need quoting,
// environment, a restart policy, limits and -p settings is exported with
// export --format systemd, removed from socketley and installed into the
// user manager's unit path; plain systemd then runs it: a connection to the
// listen port starts it (socket activation), it gets its arguments and
// environment literally, the unit has the settings socketley's unit had,
// and systemd restarts it after kill -9.
func TestExportSystemd(t *testing.T) {
	e := newEnv(t)
	bin := testenv.ListenEcho(t)
	port := freeTCPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	record := filepath.Join(e.dir, "record")
	// Records its arguments and environment, then serves fd 3 tagged with
	// its first argument.
	svc := e.script("svc.sh", `printf '%s|' "$@" > `+record+`
printf 'G=%s M=%s\n' "$GREETING" "${SOCKETLEY_MANAGED-unset}" >> `+record+`
exec `+bin+` "$1"`)
	const name = "exported-echo"
	e.ok("add", svc, "--name", name, "-s", "--listen", listen, "--restart", "always", "--stop-timeout", "7s",
		"--env", `GREETING=hi "there" 100%`, "--memory-max", "64M", "--tasks-max", "32", "--nofile", "1024",
		"-p", "Nice=3", "--", "T", "a b", "$HOME", "50%")
	if got := askLine(t, port, "one"); got != "T:one" {
		t.Fatalf("under socketley: %q", got)
	}
	same := []string{"MemoryMax", "TasksMax", "LimitNOFILE", "LimitNOFILESoft", "Nice", "TimeoutStopUSec",
		"WorkingDirectory", "Type", "KillMode", "MemoryAccounting", "SyslogIdentifier"}
	before := map[string]string{}
	for _, p := range same {
		before[p] = unitProp(t, name, p)
	}

	// stdout and --dir give the same files.
	out := e.ok("export", "--format", "systemd", name)
	dir := t.TempDir()
	e.ok("export", "--format", "systemd", "--dir", dir, name)
	var fromDir strings.Builder
	for i, f := range []string{"socketley-" + name + ".service", "socketley-" + name + ".socket"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			fromDir.WriteString("\n")
		}
		fromDir.WriteString("# " + f + "\n" + string(b))
	}
	if out != fromDir.String() {
		t.Fatalf("stdout differs from --dir:\n%s\n---\n%s", out, fromDir.String())
	}
	if _, errs, code := e.run("export", "--format", "systemd", "--dir", dir, name); code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("export over existing files: exit %d, %s", code, errs)
	}
	if _, errs, code := e.run("export", "--format", "nomadic", name); code != 1 || !strings.Contains(errs, `--format "nomadic"`) {
		t.Fatalf("bad --format: exit %d, %s", code, errs)
	}
	nomadOut, nomadErr, code := e.run("export", "--format", "nomad", "--job", "apps", name)
	if code != 0 || !strings.Contains(nomadOut, `"ID": "apps"`) || !strings.Contains(nomadOut, `"command": "`+svc+`"`) ||
		!strings.Contains(nomadErr, "not carried over to Nomad") {
		t.Fatalf("export --format nomad: exit %d\n%s\n%s", code, nomadOut, nomadErr)
	}
	e.ok("remove", name)

	units := userUnitDir(t)
	for _, f := range []string{"socketley-" + name + ".service", "socketley-" + name + ".socket"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(units, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("systemctl", "--user", "stop", "socketley-"+name+".socket", "socketley-"+name+".service").Run()
		_ = os.Remove(filepath.Join(units, "socketley-"+name+".service"))
		_ = os.Remove(filepath.Join(units, "socketley-"+name+".socket"))
		_ = exec.Command("systemctl", "--user", "daemon-reload").Run()
		_ = exec.Command("systemctl", "--user", "reset-failed", "socketley-"+name+".service").Run()
	})
	if err := os.Remove(record); err != nil {
		t.Fatal(err)
	}
	userctl(t, "daemon-reload")
	userctl(t, "start", "socketley-"+name+".socket")
	// The connection starts the service (socket activation).
	if got := askLine(t, port, "two"); got != "T:two" {
		t.Fatalf("under plain systemd: %q", got)
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	if want := "T|a b|$HOME|50%|G=hi \"there\" 100% M=unset\n"; string(b) != want {
		t.Fatalf("arguments and environment: %q, want %q", b, want)
	}
	for _, p := range same {
		if got := unitProp(t, name, p); got != before[p] {
			t.Errorf("%s=%s, socketley's unit had %s", p, got, before[p])
		}
	}
	if got := unitProp(t, name, "Restart"); got != "always" {
		t.Errorf("Restart=%s, want always", got)
	}
	if got := unitProp(t, name, "FragmentPath"); !strings.HasPrefix(got, units) {
		t.Errorf("FragmentPath=%s: not the installed file", got)
	}
	// systemd restarts it; the socket keeps the port meanwhile.
	killGone(t, mainPID(t, name))
	if got := askLine(t, port, "three"); got != "T:three" {
		t.Fatalf("after kill -9: %q", got)
	}
	eventually(t, "systemd counts the restart", func() bool { return unitProp(t, name, "NRestarts") != "0" })
}
