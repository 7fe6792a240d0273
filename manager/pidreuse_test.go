package manager

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// userChild starts a process that sleeps, running as uid (and gid), and
// reaps it at cleanup. It needs root.
func userChild(t *testing.T, uid int) *exec.Cmd {
	t.Helper()
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to run processes as another user")
	}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// notSignalled checks that nothing signalled cmd: our SIGKILL is what ends
// it. The daemon signals before it answers, and a default-fatal signal to a
// process that neither blocks nor handles it (sleep) decides its exit status
// at the kill, so a SIGTERM sent by the request would show.
func notSignalled(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, cmd); sig != syscall.SIGKILL {
		t.Fatalf("pid %d was signalled: it ended by %v, want our SIGKILL", cmd.Process.Pid, sig)
	}
}

// TestAttachRefusesARecycledPID: the pid a non-root caller connected from
// now belongs to a process of another user (the caller exited, the pid was
// reused, a process that inherited the connection asks): the attach is
// refused, so no entry can make the daemon signal that process.
func TestAttachRefusesARecycledPID(t *testing.T) {
	const mallory, victimUID = 4242, 65534
	tests := []struct {
		name string
		uid  int // of the process now holding the caller's pid
	}{
		{"another user's process", victimUID},
		{"root's process", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			victim := userChild(t, tt.uid)
			pid := victim.Process.Pid
			_, err := m.attach(t.Context(), Caller{UID: mallory, GID: mallory, PID: pid}, attachSpec("x", pid))
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "runs as uid") {
				t.Fatalf("attach of a pid that runs as uid %d by uid %d: %v, want denied (runs as uid)", tt.uid, mallory, err)
			}
			if _, ok := m.entry("x"); ok {
				t.Fatal("a refused attach left an entry")
			}
		})
	}
}

// TestSignalChecksTheAttachedIdentity: stop and remove signal an attached
// process only while it is the process that attached, running as the uids
// it had then, and, for a non-root caller, as the uid that attached it. The
// pid reuse is simulated by pointing the entry at another live process, the
// check that runs is the real one.
func TestSignalChecksTheAttachedIdentity(t *testing.T) {
	const mallory, victimUID = 4242, 65534
	root := Caller{PID: os.Getpid()}
	owner := Caller{UID: mallory, GID: mallory, PID: os.Getpid()}
	tests := []struct {
		name string
		// legacy: the entry was persisted by an older daemon, with no uids
		// recorded; else the owner's own process attached itself.
		legacy bool
		// reused: the pid now belongs to the victim (uid victimUID).
		reused bool
		caller Caller
		op     string // stop or remove
		// signalled: the request sends SIGTERM; else it sends nothing, and
		// a stop fails (the entry stays) while a remove drops the entry and
		// says that the process was not signalled.
		signalled bool
	}{
		{"own process, stop", false, false, owner, "stop", true},
		{"own process, remove", false, false, owner, "remove", true},
		{"reused by another user, owner stops", false, true, owner, "stop", false},
		{"reused by another user, owner removes", false, true, owner, "remove", false},
		{"reused by another user, root stops", false, true, root, "stop", false},
		{"legacy entry, another user's process, owner stops", true, true, owner, "stop", false},
		{"legacy entry, another user's process, owner removes", true, true, owner, "remove", false},
		{"legacy entry, another user's process, root stops", true, true, root, "stop", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			own := userChild(t, mallory)
			target := own
			if tt.legacy {
				start, err := procStartTime(own.Process.Pid)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.update(func(r *Registry) error {
					r.put(&Entry{Name: "x", Type: "server", Port: 7070, PID: own.Process.Pid, StartTime: start,
						OwnerUID: mallory, Desired: DesiredRunning, Started: true, Created: time.Now()})
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := m.attach(t.Context(), Caller{UID: mallory, GID: mallory, PID: own.Process.Pid},
				attachSpec("x", own.Process.Pid)); err != nil {
				t.Fatalf("attach of the caller's own process: %v", err)
			}
			if tt.reused {
				target = userChild(t, victimUID)
				start, err := procStartTime(target.Process.Pid)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.update(func(r *Registry) error {
					x := r.mod("x")
					x.PID, x.StartTime = target.Process.Pid, start
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			var (
				res *wire.Result
				err error
			)
			switch tt.op {
			case "stop":
				res, err = m.stop(t.Context(), tt.caller, []string{"x"})
			case "remove":
				res, err = m.remove(t.Context(), tt.caller, []string{"x"})
			}
			_, kept := m.entry("x")
			switch {
			case tt.signalled:
			case tt.op == "stop":
				// Refused; the entry stays.
				if !errors.Is(err, ErrDenied) || !kept {
					t.Errorf("stop: %v (entry kept: %v), want denied, entry kept", err, kept)
				}
			default:
				// The entry goes, the process is left alone, and the
				// reply says so.
				if err != nil || kept || !strings.Contains(res.Message, "not signalled") {
					t.Errorf("remove: %v %+v (entry kept: %v), want removed, the process not signalled", err, res, kept)
				}
			}
			if !tt.signalled {
				notSignalled(t, target)
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			if sig := exitSignal(t, target); sig != syscall.SIGTERM {
				t.Fatalf("%s: the process ended by %v, want SIGTERM", tt.op, sig)
			}
		})
	}
}
