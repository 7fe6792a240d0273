// Package testenv holds the gates integration tests use to find a real systemd.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// EnvRequire, when set to 1, turns a missing systemd into a test failure
// instead of a skip, so CI can never pass by skipping.
const EnvRequire = "SOCKETLEY_REQUIRE_SYSTEMD"

// RequireSystemd skips t unless a systemd user manager answers on the session
// bus ($DBUS_SESSION_BUS_ADDRESS, as set up by scripts/systemd-sandbox.sh). With
// SOCKETLEY_REQUIRE_SYSTEMD=1 it fails instead of skipping.
func RequireSystemd(t testing.TB) {
	t.Helper()
	if reason := systemdMissing(); reason != "" {
		msg := "no systemd user manager (" + reason + "); run the tests with `make test`, " +
			"which starts scripts/systemd-sandbox.sh"
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func systemdMissing() string {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return "DBUS_SESSION_BUS_ADDRESS is not set"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "busctl", "--user", "--timeout=2", "call",
		"org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
		"NameHasOwner", "s", "org.freedesktop.systemd1").CombinedOutput()
	if err != nil {
		return "busctl: " + err.Error() + ": " + string(out)
	}
	if string(out) != "b true\n" {
		return "org.freedesktop.systemd1 is not on the session bus"
	}
	return ""
}

// RequireRoot skips t unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal("this test needs root")
		}
		t.Skip("this test needs root")
	}
}

// Skip skips t with reason. Every skip of the module's tests goes through
// here (scripts/lint.sh refuses a direct t.Skip), so that each says why in
// the same form and CI's skip list (internal/testreport) shows it.
func Skip(t testing.TB, reason string) {
	t.Helper()
	t.Skip("skipped: " + reason)
}

// Skipf is Skip with a formatted reason.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}

// OpenFiles returns the soft and hard "Max open files" of pid, as
// /proc/PID/limits shows them ("1024 524288"): what a unit's LimitNOFILE=
// gave its process.
func OpenFiles(t testing.TB, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			return strings.Join(strings.Fields(line)[3:5], " ")
		}
	}
	t.Fatalf("no Max open files in /proc/%d/limits", pid)
	return ""
}
