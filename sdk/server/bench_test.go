package server

import (
	"bytes"
	"testing"
)

// nopEngine satisfies engine for benchmarks of the send path alone.
type nopEngine struct{ netEngine }

func (*nopEngine) kick(*Conn, bool, bool) {}

func BenchmarkSendLine64(b *testing.B) {
	s := &Server{cfg: defaultConfig()}
	c := &Conn{srv: s, eng: &nopEngine{}}
	msg := bytes.Repeat([]byte("m"), 63)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := c.Send(msg); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			c.mu.Lock()
			for _, ch := range c.pending {
				s.putChunk(ch)
			}
			c.pending, c.queued, c.kicked = c.pending[:0], 0, false
			c.mu.Unlock()
		}
	}
}

func BenchmarkSplitter(b *testing.B) {
	data := bytes.Repeat(append(bytes.Repeat([]byte("m"), 63), '\n'), 128)
	s := splitter{max: 1 << 20}
	n := 0
	emit := func([]byte) bool { n++; return true }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s.feed(data, emit)
	}
}
