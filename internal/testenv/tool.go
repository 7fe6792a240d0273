package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of the program name, and skips t when it is
// not installed (install names the Debian package that has it) — or, with
// SOCKETLEY_REQUIRE_SYSTEMD=1 (CI), fails it: CI installs every tool the
// tests use (.ci/run), so a missing one is a broken setup, not a skip.
func RequireTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not installed (apt-get install " + install + ")"
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(msg)
		}
		Skip(t, msg)
	}
	return p
}
