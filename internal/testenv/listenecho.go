package testenv

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// ListenEcho compiles testdata/listen-echo.c — a plain C socket-activated
// echo that serves fd 3 per sd_listen_fds(3) and answers "TAG:" + the first
// line of each connection (TAG is its first argument) — into a directory of
// the test and returns the binary's path. It fails t when gcc is missing.
func ListenEcho(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate testdata")
	}
	src := filepath.Join(filepath.Dir(file), "testdata", "listen-echo.c")
	bin := filepath.Join(t.TempDir(), "listen-echo")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, out)
	}
	return bin
}
