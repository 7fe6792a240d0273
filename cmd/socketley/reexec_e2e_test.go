//go:build integration

package main_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestDaemonReexecKeepsTracking: `systemctl daemon-reexec` of the service
// manager (a systemd upgrade does one) does not blind the daemon: a crash
// after it is restarted by systemd and seen (restart count, new pid), the new
// process attaches, and commands keep working. It re-executes the sandbox's
// manager, so scripts/test.sh runs it alone (DISRUPTIVE).
func TestDaemonReexecKeepsTracking(t *testing.T) {
	e := newEnvWith(t, "--tick", fastTick)
	e.ok("add", cClient(t), "--name", "rx", "--attach", "-s", "--wait", "--", "serve", "cache", "ignored", "0")
	before := e.show("rx")
	if before.Status != wire.StatusRunning || before.AttachPID == 0 {
		t.Fatalf("before the re-exec: %+v", before)
	}
	if out, err := exec.Command("systemctl", "--user", "daemon-reexec").CombinedOutput(); err != nil {
		t.Fatalf("daemon-reexec: %v: %s", err, out)
	}
	// systemctl returns once the request is taken; a query answered is the
	// manager back on the bus.
	if out, err := exec.Command("systemctl", "--user", "show", "-p", "Version", "--value").CombinedOutput(); err != nil {
		t.Fatalf("systemd after the re-exec: %v: %s", err, out)
	}

	from := e.mark()
	if err := syscall.Kill(before.AttachPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The attach of the restarted process is logged after the daemon saw
	// the restart.
	re := regexp.MustCompile(`msg=attached name=rx unit=\S+ pid=(\d+)`)
	var pid int
	for pid == 0 || pid == before.AttachPID {
		m := e.waitLog(from, "the restarted rx attaching", re)
		pid, _ = strconv.Atoi(e.log.String()[m[2]:m[3]])
		from = m[1]
	}
	after := e.show("rx")
	if after.Status != wire.StatusRunning || after.AttachPID != pid || after.PID != pid || after.Restarts < 1 {
		t.Fatalf("after a crash following the re-exec: %+v; want running, attached by pid %d, restarts >= 1", after, pid)
	}
	if mp := mainPID(t, "rx"); mp != pid {
		t.Fatalf("systemd's MainPID %d, the daemon shows %d", mp, pid)
	}
	// Commands that need systemd work: restart waits for the new process.
	e.ok("restart", "rx", "--wait")
	if r := e.show("rx"); r.Status != wire.StatusRunning || r.PID == pid {
		t.Fatalf("restart after the re-exec: %+v", r)
	}
	e.ok("stop", "rx")
	if st := unitProp(t, "rx", "ActiveState"); st != "inactive" && st != "" {
		t.Fatalf("after stop: ActiveState %s", st)
	}
}
