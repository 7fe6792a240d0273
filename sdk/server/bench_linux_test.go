//go:build linux

package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// BenchmarkDeliverPipelined measures the io_uring loop's per-message work
// for a pipelined echo, without the kernel: one 8 KiB receive buffer of
// 64-byte lines is cut into messages, each is passed to an OnMessage that
// Sends it back (the loop's own Send), and the batch is flushed to the
// send queue, which is then emptied. BENCH_LOCKED=1 makes every Send take
// the locked path of other goroutines instead, for comparison.
func BenchmarkDeliverPipelined(b *testing.B) {
	s := &Server{cfg: defaultConfig()}
	s.pauseHigh = pauseMax
	var h handlers
	h.rawMessage = func(c *Conn, msg []byte) { _ = c.Send(msg) }
	h.recover = true
	l := &loop{srv: s, h: h, g: curg()}
	c := &Conn{srv: s}
	c.eng = &nopEngine{}
	c.u = uringConn{l: l}
	c.u.split.max = s.cfg.maxMessage
	c.u.emit = func(m []byte) bool {
		h.rawMessage(c, m)
		return !c.stopped.Load()
	}
	if os.Getenv("BENCH_LOCKED") == "" {
		c.loopG.Store(l.g)
	}
	line := append(bytes.Repeat([]byte("m"), 63), '\n')
	data := bytes.Repeat(line, bufSize/len(line))
	msgs := len(data) / len(line)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		l.deliver(c, data)
		l.flushDirty()
		clear(l.kicks)
		l.kicks = l.kicks[:0]
		c.mu.Lock()
		c.kicked = false
		for _, ch := range c.pending {
			s.putChunk(ch)
		}
		c.pending, c.queued = c.pending[:0], 0
		c.mu.Unlock()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*msgs), "ns/msg")
}

// BenchmarkEchoPipelined measures a pipelined echo end to end on each
// engine: 16 clients each write batches of 50 64-byte lines over loopback
// while reading the echoes back. It reports ns/msg of wall time (client and
// server share the machine); bench/ compares the server's CPU per message
// with other servers. The server raises GOMAXPROCS (WithRaiseGOMAXPROCS),
// as a busy server should: the figures are those of the tuned server.
func BenchmarkEchoPipelined(b *testing.B) {
	for _, eng := range []Engine{EngineURing, EngineNet} {
		b.Run(string(eng), func(b *testing.B) {
			s, err := New("127.0.0.1:0", WithEngine(eng), WithoutAttach(), WithRaiseGOMAXPROCS())
			if err != nil {
				testenv.Skipf(b, "New: %v", err)
			}
			s.OnMessage(func(c *Conn, msg []byte) { _ = c.Send(msg) })
			errc := make(chan error, 1)
			go func() { errc <- s.Run(context.Background()) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = s.Shutdown(ctx)
				<-errc
			}()
			const conns, perWrite = 16, 50
			addr := "127.0.0.1:" + strconv.Itoa(s.Port())
			cs := make([]net.Conn, conns)
			for i := range cs {
				if cs[i], err = net.Dial("tcp", addr); err != nil {
					b.Fatal(err)
				}
				defer cs[i].Close()
			}
			line := append(bytes.Repeat([]byte("m"), 63), '\n')
			batch := bytes.Repeat(line, perWrite)
			// b.N messages in all, rounded up to whole batches per client.
			writes := (b.N + conns*perWrite - 1) / (conns * perWrite)
			b.SetBytes(int64(len(line)))
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make(chan error, 2*conns)
			for _, c := range cs {
				wg.Add(2)
				go func() {
					defer wg.Done()
					for range writes {
						if _, err := c.Write(batch); err != nil {
							errs <- err
							return
						}
					}
				}()
				go func() {
					defer wg.Done()
					if _, err := io.CopyN(io.Discard, c, int64(writes*len(batch))); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		})
	}
}
