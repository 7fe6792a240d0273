package manager

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestRequestNameLimits: a request may name at most wire.MaxNames runtimes
// and wire.MaxPatterns glob patterns; more is refused with a message that
// says what the limit is and what to do, before anything is matched.
func TestRequestNameLimits(t *testing.T) {
	m, _ := newTestManager(t)
	if err := m.update(func(r *Registry) error {
		for i := range 3 {
			n := fmt.Sprintf("web-%d", i)
			r.put(&Entry{Name: n, Managed: true, Desired: DesiredStopped, OwnerUID: me().UID})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	repeat := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	tests := []struct {
		name  string
		names []string
		class error  // nil: accepted
		msg   string // part of the refusal
	}{
		{"names at the limit", repeat("web-1", wire.MaxNames), nil, ""},
		{"names over the limit", repeat("web-1", wire.MaxNames+1), ErrInvalid, fmt.Sprintf("at most %d", wire.MaxNames)},
		{"patterns at the limit", repeat("web-*", wire.MaxPatterns), nil, ""},
		{"patterns over the limit", repeat("web-*", wire.MaxPatterns+1), ErrInvalid, fmt.Sprintf("at most %d glob patterns", wire.MaxPatterns)},
	}
	for _, tt := range tests {
		for _, cmd := range []string{wire.CmdShow, wire.CmdStop, wire.CmdStart, wire.CmdRestart, wire.CmdRemove} {
			t.Run(tt.name+"/"+cmd, func(t *testing.T) {
				if tt.class == nil && cmd == wire.CmdRemove {
					testenv.Skip(t, "an accepted remove would drop the runtimes the other cases use")
				}
				_, err := m.handle(t.Context(), me(), wire.Request{Cmd: cmd, Names: tt.names})
				if tt.class == nil {
					if err != nil {
						t.Fatalf("got %v, want it accepted", err)
					}
					return
				}
				if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("got %v, want %v mentioning %q", err, tt.class, tt.msg)
				}
			})
		}
	}
}

// TestMatchOutsideTheRegistryLock: resolving names and patterns does not
// hold the registry lock, so one large request cannot stall every other
// command. The match hook writes the registry (update takes the lock for
// writing) while a match is in progress: under a read lock that would
// never finish.
func TestMatchOutsideTheRegistryLock(t *testing.T) {
	m, _ := newTestManager(t)
	if err := m.update(func(r *Registry) error {
		r.put(&Entry{Name: "web", Managed: true, Desired: DesiredStopped, OwnerUID: me().UID})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		run  func() error
	}{
		{"show", func() error { _, err := m.show(me(), []string{"w*"}); return err }},
		{"resolve", func() error { _, err := m.resolve(me(), []string{"w*"}, "stop"); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wrote := make(chan error, 1)
			m.mu.Lock()
			m.reg.onMatch = func() {
				go func() { wrote <- m.update(func(*Registry) error { return nil }) }()
				select {
				case err := <-wrote:
					if err != nil {
						t.Errorf("write during the match: %v", err)
					}
				case <-time.After(testWait):
					t.Error("a registry write waited for the match to end: the match holds the lock")
				}
			}
			m.mu.Unlock()
			if err := tt.run(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkMatchLargeRequest is the costliest request the limits allow
// (wire.MaxPatterns distinct patterns without a literal prefix among
// wire.MaxNames names) against 20,000 runtimes: the time one such request
// takes, outside the registry lock.
func BenchmarkMatchLargeRequest(b *testing.B) {
	r := newRegistry()
	for i := range 20000 {
		n := fmt.Sprintf("svc-%05d", i)
		r.put(&Entry{Name: n})
	}
	r.commit()
	names := make([]string, 0, wire.MaxNames)
	for i := range wire.MaxPatterns {
		// Distinct, and no literal prefix: each is matched against every name.
		names = append(names, fmt.Sprintf("*%d*", i))
	}
	for i := len(names); i < wire.MaxNames; i++ {
		names = append(names, fmt.Sprintf("svc-%05d", i))
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.match(names); err != nil {
			b.Fatal(err)
		}
	}
}
