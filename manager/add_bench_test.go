package manager

import (
	"fmt"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// BenchmarkAddAt measures add (register, not start: no systemd job) against
// registries of 10, 1,000, 10,000 and 20,000 runtimes, with the real store
// (journal append + fdatasync on the test's temp directory). A registry
// change costs the same at every size: compare the ns/op of runtimes=10000
// with runtimes=10 (issue #11: within 1.5×). Each add is undone by a remove
// outside the timed part, so the size stays put.
func BenchmarkAddAt(b *testing.B) {
	for _, size := range []int{10, 1000, 10000, 20000} {
		b.Run(fmt.Sprintf("runtimes=%d", size), func(b *testing.B) {
			m, _ := newTestManager(b)
			path := exe(b, b.TempDir(), "svc")
			seed := m.reg.begin()
			now := time.Now().UTC().Truncate(time.Second)
			for i := range size {
				seed.put(&Entry{Name: fmt.Sprintf("svc-%05d", i), Managed: true, Path: path, Args: []string{"--port", "1"},
					Restart: "on-failure", Desired: DesiredStopped, OwnerUID: me().UID, Created: now,
					StopTimeout: wire.Duration(DefaultStopTimeout)})
			}
			seed.commit()
			if err := m.store.Save(seed); err != nil {
				b.Fatal(err)
			}
			m.reg = seed
			ctx := b.Context()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				name := fmt.Sprintf("new-%d", i)
				if _, err := m.add(ctx, me(), wire.AddSpec{Name: name, Path: path, Args: []string{"--port", "1"}}, false, 0); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := m.remove(ctx, me(), []string{name}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			m.store.Wait()
		})
	}
}
