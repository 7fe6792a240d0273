package manager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/metrics"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// managerWith1000 returns a test manager with 1,000 running managed
// runtimes in its registry and unit cache (as BenchmarkList1000 builds them).
func managerWith1000(t testing.TB) *Manager {
	m, f := newTestManager(t)
	now := time.Now()
	for i := range 1000 {
		name := fmt.Sprintf("r%04d", i)
		m.reg.put(&Entry{Name: name, Managed: true, Path: "/usr/bin/x", Args: []string{"-p", "1"},
			Restart: "on-failure", Desired: DesiredRunning, Started: true, Created: now})
		f.set(units.Status{Unit: units.Name(name), Name: name, LoadState: "loaded", ActiveState: "active",
			SubState: "running", MainPID: 1000 + i, ActiveEnter: now, ExecMainStart: now})
	}
	m.reg.commit()
	return m
}

// BenchmarkScrape1000 measures one metrics scrape at 1,000 runtimes: the
// view built from the registry and the unit cache (no D-Bus call), then
// encoded (the goal of issue #13: ≤ 20 ms).
func BenchmarkScrape1000(b *testing.B) {
	m := managerWith1000(b)
	src := &metrics.Source{Runtimes: m.Runtimes, Requests: &metrics.Requests{}}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		n = len(src.Scrape())
	}
	b.ReportMetric(float64(n), "bytes/scrape")
}

// TestRuntimesView: Runtimes is the ls view, and says so only while the
// daemon is connected to systemd; the request hook sees each request's
// command and error class.
func TestRuntimesView(t *testing.T) {
	m := managerWith1000(t)
	rts, ok := m.Runtimes()
	if !ok || len(rts) != 1000 || rts[0].Status != wire.StatusRunning || rts[0].Mode != wire.ModeUnit {
		t.Fatalf("Runtimes: %d runtimes, ok %v", len(rts), ok)
	}
	m.mu.Lock()
	sd := m.sd
	m.sd = nil
	m.mu.Unlock()
	if rts, ok := m.Runtimes(); ok || rts != nil {
		t.Errorf("Runtimes while disconnected: %d runtimes, ok %v; want none, false", len(rts), ok)
	}
	m.mu.Lock()
	m.sd = sd
	m.mu.Unlock()

	type seen struct {
		cmd   string
		class wire.ErrorClass
	}
	var got []seen
	m.cfg.OnRequest = func(cmd string, class wire.ErrorClass, d time.Duration) {
		if d <= 0 {
			t.Errorf("%s took %v", cmd, d)
		}
		got = append(got, seen{cmd, class})
	}
	for _, line := range []string{"ls", `{"cmd":"show","names":["nope"]}`, "frobnicate", strings.Repeat("x", 10)} {
		m.dispatch(t.Context(), me(), line)
	}
	want := []seen{{"ls", ""}, {"show", wire.ClassNotFound}, {"", wire.ClassInvalid}, {"", wire.ClassInvalid}} // an unknown command is not parsed
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("OnRequest saw %v, want %v", got, want)
	}
}
