package server

import (
	"testing"

	"github.com/socketley/socketley/internal/testenv"
)

// TestCurg: curg tells goroutines apart and is stable within one, or is 0
// (the locked Send path only) where it is not implemented.
func TestCurg(t *testing.T) {
	g := curg()
	if g == 0 {
		testenv.Skip(t, "curg not implemented on this architecture: every Send takes the locked path")
	}
	if again := curg(); again != g {
		t.Fatalf("curg changed within one goroutine: %#x then %#x", g, again)
	}
	other := make(chan uintptr)
	release := make(chan struct{})
	go func() {
		other <- curg()
		<-release // alive while compared: a finished goroutine's g may be reused
	}()
	o := <-other
	close(release)
	if o == g || o == 0 {
		t.Fatalf("curg of another goroutine: %#x, this one %#x", o, g)
	}
}
