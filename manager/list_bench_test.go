package manager

import (
	"fmt"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// BenchmarkList1000 measures ls at 1,000 running runtimes: the daemon's
// side of `socketley ls` (view building and JSON encoding).
func BenchmarkList1000(b *testing.B) {
	m, f := newTestManager(b)
	now := time.Now()
	for i := range 1000 {
		name := fmt.Sprintf("r%04d", i)
		m.reg.put(&Entry{Name: name, Managed: true, Path: "/usr/bin/x", Args: []string{"-p", "1"},
			Restart: "on-failure", Desired: DesiredRunning, Started: true, Created: now})
		f.set(units.Status{Unit: units.Name(name), Name: name, LoadState: "loaded", ActiveState: "active",
			SubState: "running", MainPID: 1000 + i, ActiveEnter: now, ExecMainStart: now})
	}
	m.reg.commit()
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res := wire.Result{Runtimes: m.list(false)}
			if _, err := res.AppendJSON(make([]byte, 0, 256+512*len(res.Runtimes))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("table", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			code, _ := m.dispatch(b.Context(), me(), "ls")
			if code != 0 {
				b.Fatal(code)
			}
		}
	})
}
