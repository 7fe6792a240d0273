package manager

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// restartDaemon is a daemon started again on m's state directory, after m
// died: it loads the registry from disk and reconciles with the same
// (fake) systemd, whose units outlived the old daemon.
func restartDaemon(t *testing.T, m *Manager, f *fakeSystemd) *Manager {
	t.Helper()
	m2, err := New(Config{Mode: paths.User, Socket: filepath.Join(m.cfg.StateDir, "s.sock"), StateDir: m.cfg.StateDir,
		Dial: func(context.Context) (Systemd, error) { return f, nil }})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := m2.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	reg.commit()
	m2.reg = reg
	m2.sd, m2.watch = f, f
	m2.reconcile(t.Context())
	return m2
}

// TestInterruptedRemoveAndStop interrupts remove and stop between their
// steps (a failed write, as on a full disk, or a failed stop job, as when
// the daemon dies before systemd answers), restarts the daemon and checks
// that the next reconcile finishes what was asked instead of resurrecting
// the runtime, and that a remove that failed before it did anything leaves
// the runtime as it was.
func TestInterruptedRemoveAndStop(t *testing.T) {
	enospc := func(what string) error { return errors.New(what + ": " + syscall.ENOSPC.Error()) }
	tests := []struct {
		name string
		// arm injects the failure into m (its store) or f (systemd).
		arm func(m *Manager, f *fakeSystemd)
		op  func(m *Manager) error
		// wantRegistered and wantUnit: is the runtime still registered,
		// and is its unit up, after the restart's reconcile.
		wantRegistered, wantUnit bool
		// statusAfter is the runtime's STATUS right after the failed command.
		statusAfter wire.Status
	}{
		{
			name: "remove: write of the intent fails",
			arm: func(m *Manager, _ *fakeSystemd) {
				m.store.failSave = func(*Registry) error { return enospc("write intent") }
			},
			op:             func(m *Manager) error { _, err := m.remove(t.Context(), me(), []string{"web"}); return err },
			wantRegistered: true, wantUnit: true, statusAfter: wire.StatusRunning,
		},
		{
			name:        "remove: stop fails after the intent was written",
			arm:         func(_ *Manager, f *fakeSystemd) { f.stopErr = errors.New("daemon killed") },
			op:          func(m *Manager) error { _, err := m.remove(t.Context(), me(), []string{"web"}); return err },
			statusAfter: wire.StatusRemoving,
		},
		{
			name: "remove: unit stopped, dropping the entry fails",
			arm: func(m *Manager, _ *fakeSystemd) {
				m.store.failSave = func(next *Registry) error {
					if !next.has("web") {
						return enospc("drop entry")
					}
					return nil
				}
			},
			op:          func(m *Manager) error { _, err := m.remove(t.Context(), me(), []string{"web"}); return err },
			statusAfter: wire.StatusRemoving,
		},
		{
			name:           "stop: stop fails after the intent was written",
			arm:            func(_ *Manager, f *fakeSystemd) { f.stopErr = errors.New("daemon killed") },
			op:             func(m *Manager) error { _, err := m.stop(t.Context(), me(), []string{"web"}); return err },
			wantRegistered: true, statusAfter: wire.StatusRunning,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newTestManager(t)
			bin := exe(t, t.TempDir(), "svc")
			if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0); err != nil {
				t.Fatal(err)
			}
			tt.arm(m, f)
			if err := tt.op(m); err == nil {
				t.Fatal("the interrupted command answered success")
			}
			if got := m.view("web").Status; got != tt.statusAfter {
				t.Fatalf("STATUS after the failed command: %q, want %q", got, tt.statusAfter)
			}
			// The daemon dies; systemd and the disk stay as they are.
			f.stopErr = nil
			m2 := restartDaemon(t, m, f)
			_, registered := m2.entry("web")
			_, unit := f.Snapshot()["web"]
			if registered != tt.wantRegistered || unit != tt.wantUnit {
				t.Fatalf("after the restart: registered %v, unit up %v; want %v, %v", registered, unit, tt.wantRegistered, tt.wantUnit)
			}
			disk, err := m2.store.Load()
			if err != nil {
				t.Fatal(err)
			}
			if disk.has("web") != tt.wantRegistered {
				t.Fatalf("state file has the runtime: %v, want %v", disk.has("web"), tt.wantRegistered)
			}
		})
	}
}
