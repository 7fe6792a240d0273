package manager

import (
	"fmt"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// BenchmarkList1000 measures ls at 1,000 running runtimes: the daemon's
// side of `socketley ls` (view building and JSON encoding).
func BenchmarkList1000(b *testing.B) {
	m := managerWith1000(b)
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
	// The same with a usage sample for every runtime, as after a health
	// tick: the view shares the sample; the reply grows by the usage
	// object (JSON) and three columns (table).
	now := time.Now()
	m.mu.Lock()
	for i := range 1000 {
		m.obsOf(fmt.Sprintf("r%04d", i)).usage = &usageSample{pid: 1000 + i, view: wire.Usage{
			CPUPercent: 1.25, CPUUsec: 123456789, MemoryBytes: 12_900_000, Tasks: 3, Source: wire.UsageProc, At: now}}
	}
	m.mu.Unlock()
	if m.view("r0001").Usage == nil {
		b.Fatal("no usage in the view")
	}
	b.Run("json+usage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res := wire.Result{Runtimes: m.list(false)}
			if _, err := res.AppendJSON(make([]byte, 0, 256+512*len(res.Runtimes))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("table+usage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			code, _ := m.dispatch(b.Context(), me(), "ls")
			if code != 0 {
				b.Fatal(code)
			}
		}
	})
}
