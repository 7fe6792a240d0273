//go:build linux

package main

import (
	"bytes"

	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// test is one load pattern.
type test struct {
	name    string
	unit    string
	latency bool
	setup   func(addr string) (state, error)
}

// state is a prepared test: connections are open, nothing is timed yet.
type state interface {
	// run performs the timed part and returns the number of messages (or
	// connections) completed and, for ping-pong, the latencies.
	run() (int, []time.Duration, error)
	close()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// message returns one 64-byte message: 63 bytes and '\n'.
func message() []byte {
	m := bytes.Repeat([]byte("m"), msgSize)
	m[msgSize-1] = '\n'
	return m
}

func tests(dur time.Duration) []test {
	return []test{
		{name: "connection rate", unit: "conn/s", setup: func(addr string) (state, error) {
			return &connRate{addr: addr, dur: dur, workers: 16}, nil
		}},
		{name: "1-client ping-pong 64 B", unit: "msg/s", latency: true, setup: func(addr string) (state, error) {
			return newPingPong(addr, 1, dur, true)
		}},
		{name: "100 conns ping-pong 64 B", unit: "msg/s", setup: func(addr string) (state, error) {
			return newPingPong(addr, 100, dur, false)
		}},
		{name: "100 clients x 500 msgs, 1 write/msg (x4 rounds)", unit: "msg/s", setup: func(addr string) (state, error) {
			return newStream(addr, 100, 500, 1, 4)
		}},
		{name: "pipelined: 100 clients, 50 msgs/write, 50K msgs each", unit: "msg/s", setup: func(addr string) (state, error) {
			return newStream(addr, 100, 50000, 50, 1)
		}},
	}
}

func dialAll(addr string, n int) ([]net.Conn, error) {
	cs := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// connRate: workers each dial, exchange one message, and close with an RST
// (SO_LINGER 0, so the client's ports do not pile up in TIME_WAIT).
type connRate struct {
	addr    string
	dur     time.Duration
	workers int
}

func (t *connRate) close() {}

func (t *connRate) run() (int, []time.Duration, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(t.dur)
	var wg sync.WaitGroup
	for w := 0; w < t.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := message()
			buf := make([]byte, msgSize)
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", t.addr)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				_, err = c.Write(msg)
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, nil, err
	}
	return int(n.Load()), nil, nil
}

// pingPong: each connection sends one message and waits for its echo.
type pingPong struct {
	cs      []net.Conn
	dur     time.Duration
	latency bool
}

func newPingPong(addr string, conns int, dur time.Duration, latency bool) (state, error) {
	cs, err := dialAll(addr, conns)
	if err != nil {
		return nil, err
	}
	t := &pingPong{cs: cs, dur: dur, latency: latency}
	// Warm up every connection.
	msg, buf := message(), make([]byte, msgSize)
	for _, c := range cs {
		for i := 0; i < 10; i++ {
			if _, err := c.Write(msg); err != nil {
				t.close()
				return nil, err
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.close()
				return nil, err
			}
		}
	}
	return t, nil
}

func (t *pingPong) close() { closeAll(t.cs) }

func (t *pingPong) run() (int, []time.Duration, error) {
	deadline := time.Now().Add(t.dur)
	var n atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	errc := make(chan error, len(t.cs))
	var wg sync.WaitGroup
	for _, c := range t.cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, buf := message(), make([]byte, msgSize)
			var local []time.Duration
			if t.latency {
				local = make([]time.Duration, 0, 1<<16)
			}
			cnt := 0
			for {
				now := time.Now()
				if now.After(deadline) {
					break
				}
				if _, err := c.Write(msg); err != nil {
					errc <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errc <- err
					return
				}
				if t.latency {
					local = append(local, time.Since(now))
				}
				cnt++
			}
			n.Add(int64(cnt))
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, nil, err
	}
	return int(n.Load()), lat, nil
}

// stream: every client writes msgs messages, perWrite per write call, while
// a reader drains the echoes; repeated rounds times.
type stream struct {
	cs       []net.Conn
	msgs     int
	perWrite int
	rounds   int
}

func newStream(addr string, conns, msgs, perWrite, rounds int) (state, error) {
	cs, err := dialAll(addr, conns)
	if err != nil {
		return nil, err
	}
	return &stream{cs: cs, msgs: msgs, perWrite: perWrite, rounds: rounds}, nil
}

func (t *stream) close() { closeAll(t.cs) }

func (t *stream) run() (int, []time.Duration, error) {
	batch := bytes.Repeat(message(), t.perWrite)
	total := t.msgs * msgSize
	for r := 0; r < t.rounds; r++ {
		var wg sync.WaitGroup
		errc := make(chan error, 2*len(t.cs))
		for _, c := range t.cs {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for sent := 0; sent < t.msgs; sent += t.perWrite {
					if _, err := c.Write(batch); err != nil {
						errc <- err
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 64<<10)
				got := 0
				c.SetReadDeadline(time.Now().Add(60 * time.Second))
				for got < total {
					n, err := c.Read(buf[:min(len(buf), total-got)])
					got += n
					if err != nil {
						errc <- fmt.Errorf("read after %d of %d bytes: %w", got, total, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return 0, nil, err
		}
	}
	return t.msgs * len(t.cs) * t.rounds, nil, nil
}
