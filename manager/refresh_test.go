package manager

import (
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestStartStopRefreshView checks that every start and stop job is followed
// by a Refresh of the unit view (so that the reply and the next ls agree
// with systemd without waiting for signals), in job order.
func TestStartStopRefreshView(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	ctx := t.Context()
	res, err := m.add(ctx, me(), wire.AddSpec{Name: "web", Path: bin, Start: true}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Runtimes[0]; got.Status != wire.StatusRunning || got.PID == 0 {
		t.Fatalf("after add -s: status %q pid %d, want running with a pid", got.Status, got.PID)
	}
	if _, err := m.add(ctx, me(), wire.AddSpec{Name: "api", Path: bin}, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.stop(ctx, me(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.start(ctx, me(), []string{"web", "api"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.restart(ctx, me(), []string{"api"}, false, 0); err != nil {
		t.Fatal(err)
	}
	// add -s web; stop web; start api, web (sorted); restart api (stop, start).
	if got := strings.Join(f.refreshed, ","); got != "web,web,api,web,api,api" {
		t.Fatalf("refreshes after the start/stop jobs: %s", got)
	}
	// Refresh after a stop finds no unit: that is no error.
	if _, err := m.remove(ctx, me(), []string{"*"}); err != nil {
		t.Fatal(err)
	}
	if len(f.Snapshot()) != 0 {
		t.Fatalf("units left: %v", f.Snapshot())
	}
}
