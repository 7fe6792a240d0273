package control

import (
	"context"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestFollowCanceledDuringFirst: a Ctrl-C while the first batch is being
// printed ends Follow (nil), although the stream then sends nothing more.
// (Before the fix Follow hung when the cancel's deadline was set before
// the stream cleared it: a race this test loses only sometimes; run it
// with -count.)
func TestFollowCanceledDuringFirst(t *testing.T) {
	sock := testenv.FakeDaemon(t, func(string) (byte, []byte) {
		return 0, []byte(`{"events":[{"time":"2026-01-01T00:00:00Z","name":"api","event":"added"}]}`)
	})
	c := &Client{Socket: sock}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(ctx, wire.Request{}, func(res *wire.Result) error {
			if len(res.Events) != 1 || res.Events[0].Name != "api" {
				t.Errorf("first batch %+v", res.Events)
			}
			cancel() // as Ctrl-C would, while first runs
			return nil
		}, func(ev wire.Event) error {
			t.Errorf("an event after the cancel: %+v", ev)
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow after a cancel: %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Follow did not return after its context was canceled during the first batch")
	}
}
