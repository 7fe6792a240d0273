package server

import (
	"context"
	"runtime"
	"testing"
)

// TestGOMAXPROCS: by default the io_uring engine leaves GOMAXPROCS alone;
// WithRaiseGOMAXPROCS raises it to the loop count plus one while the server
// runs and restores it once Run has returned.
func TestGOMAXPROCS(t *testing.T) {
	requireURing(t)
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	tests := []struct {
		name    string
		opts    []Option
		running int
	}{
		{"default", nil, 2},
		{"WithRaiseGOMAXPROCS", []Option{WithRaiseGOMAXPROCS()}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New("127.0.0.1:0", append([]Option{WithEngine(EngineURing), WithLoops(2), WithoutAttach()}, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			s.OnMessage(func(c *Conn, msg []byte) { _ = c.Send(msg) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- s.Run(ctx) }()
			c := dial(t, s)
			c.send(t, "ping")
			if got := c.line(t); got != "ping" {
				t.Fatalf("echo: %q", got)
			}
			// Run holds s.mu from before the loops start (which the echo
			// needs) until the engine has started: past this lock, the
			// engine has set GOMAXPROCS, if it does.
			s.mu.Lock()
			//lint:ignore SA2001 the empty critical section waits for Run's start
			s.mu.Unlock()
			if got := runtime.GOMAXPROCS(0); got != tt.running {
				t.Errorf("GOMAXPROCS while running: %d, want %d", got, tt.running)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := runtime.GOMAXPROCS(0); got != 2 {
				t.Errorf("GOMAXPROCS after Run: %d, want 2", got)
			}
		})
	}
}
