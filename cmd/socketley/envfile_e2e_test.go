//go:build integration

package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestEnvFile: add --env-file FILE (relative to the CLI's directory) gives
// the program FILE's variables, after --env (a key in both takes the
// file's value), read again at every start; show and -o json list the
// path. A missing file is refused with exit 1 naming the flag, and
// nothing is registered.
func TestEnvFile(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "report")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(e.dir, "conf", "app.env")
	if err := os.Mkdir(filepath.Dir(envFile), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(envFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# comment\nGREETING=hello from the file\nBOTH=file\n")
	e.script("envp.sh", `exec 3>`+fifo+`
printf '%s\n' "GREETING=$GREETING" "BOTH=$BOTH" "ONLY=$ONLY" >&3
exec 3>&-
exec sleep 1000`)
	e.ok("add", "./envp.sh", "-s", "--env-file", "conf/app.env", "--env", "BOTH=flag", "--env", "ONLY=flag")
	check := func(want ...string) {
		t.Helper()
		got := strings.Split(strings.TrimSpace(readFIFO(t, fifo)), "\n")
		if !slices.Equal(got, want) {
			t.Fatalf("the program reported %q, want %q", got, want)
		}
	}
	check("GREETING=hello from the file", "BOTH=file", "ONLY=flag")
	if got := e.show("envp").EnvFiles; !slices.Equal(got, []string{envFile}) {
		t.Fatalf("show -o json env_files %q, want [%s]", got, envFile)
	}
	if out := e.ok("show", "envp"); !strings.Contains(out, "Env file") || !strings.Contains(out, envFile) {
		t.Errorf("show does not list the env file:\n%s", out)
	}
	if got := unitProp(t, "envp", "EnvironmentFiles"); !strings.Contains(got, envFile) || !strings.Contains(got, "ignore_errors=no") {
		t.Errorf("EnvironmentFiles=%s, want %s with ignore_errors=no", got, envFile)
	}

	// Read again at every start, a daemon restart included.
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	write("GREETING=changed\n")
	e.ok("restart", "envp")
	check("GREETING=changed", "BOTH=flag", "ONLY=flag")

	// A missing file: exit 1, the flag named, nothing registered.
	before := stateFiles(t, e.state)
	_, errs, code := e.run("add", "./envp.sh", "--name", "bad", "-s", "--env-file", "conf/missing.env")
	if code != 1 || !strings.Contains(errs, "--env-file "+filepath.Join(e.dir, "conf", "missing.env")+" does not exist") {
		t.Errorf("add with a missing --env-file: exit %d, stderr %q", code, errs)
	}
	if after := stateFiles(t, e.state); !bytes.Equal(before, after) {
		t.Error("a refused add changed the state files")
	}
	if _, _, code := e.run("show", "bad"); code != 1 {
		t.Error("a refused add registered its runtime")
	}
}
