package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSendOrderAcrossGoroutines: Sends that happen one after another keep
// their order on the wire when some come from the callback and some from
// another goroutine (on the io_uring engine the callback's own Sends take a
// lock-free path, the other goroutine's queue behind them).
func TestSendOrderAcrossGoroutines(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		s := serve(t, eng, func(s *Server) {
			s.OnMessage(func(c *Conn, msg []byte) {
				m := string(msg)
				_ = c.Send([]byte(m + " 1"))
				done := make(chan struct{})
				go func() {
					_ = c.Send([]byte(m + " 2"))
					close(done)
				}()
				<-done
				_ = c.Send([]byte(m + " 3"))
				_ = c.Send([]byte(m + " 4"))
			})
		})
		c := dial(t, s)
		const n = 200
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "m%d\n", i)
		}
		if _, err := c.Write([]byte(b.String())); err != nil { // pipelined: many per read
			t.Fatal(err)
		}
		for i := range n {
			for k := 1; k <= 4; k++ {
				if got, want := c.line(t), fmt.Sprintf("m%d %d", i, k); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		}
	})
}

// TestSlowConsumerFromCallback: the queue cap holds for Sends made inside
// OnMessage, which on the io_uring engine are queued without the lock.
func TestSlowConsumerFromCallback(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		var disc counter
		errs := make(chan [2]error, 1)
		s := serve(t, eng, func(s *Server) {
			s.OnMessage(func(c *Conn, _ []byte) {
				msg := payload(1000, 4)
				var err error
				for i := 0; i < 100000 && err == nil; i++ {
					err = c.Send(msg)
				}
				errs <- [2]error{err, c.Send(msg)}
			})
			s.OnDisconnect(func(c *Conn) { disc.inc(c.ID()) })
		}, WithMaxQueue(256<<10), WithMaxMessage(1024))
		c := dial(t, s)
		c.send(t, "go") // and never read
		got := receive(t, errs, "the Sends of OnMessage")
		if !errors.Is(got[0], ErrSlowConsumer) {
			t.Fatalf("Send to a peer that does not read: got %v, want ErrSlowConsumer", got[0])
		}
		if !errors.Is(got[1], ErrClosed) {
			t.Errorf("Send after the slow-consumer close: got %v, want ErrClosed", got[1])
		}
		disc.waitTotal(t, 1, "OnDisconnect")
		c.expectEOF(t)
	})
}

// TestPanicAfterSend: a callback that Sends and then panics closes its
// connection at once; the rest of the batch is not delivered, and the
// other connections are served on.
func TestPanicAfterSend(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		var logs logSink
		after := make(chan string, 10)
		s := serve(t, eng, func(s *Server) {
			s.OnMessage(func(c *Conn, msg []byte) {
				switch string(msg) {
				case "boom":
					_ = c.Send([]byte("partial"))
					panic("boom")
				case "after":
					after <- "after"
				}
				_ = c.Send(msg)
			})
		}, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		victim := dial(t, s)
		if _, err := victim.Write([]byte("x\nboom\nafter\n")); err != nil {
			t.Fatal(err)
		}
		victim.expectEOF(t)
		logs.waitFor(t, "panic in OnMessage callback")
		c := dial(t, s)
		c.send(t, "still serving")
		if got := c.line(t); got != "still serving" {
			t.Fatalf("after the panic: got %q", got)
		}
		select {
		case m := <-after:
			t.Fatalf("message %q delivered after the panic", m)
		default:
		}
	})
}
