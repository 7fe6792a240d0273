package server

import (
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDefaultLogger: with no WithLogger, connection-level events go to
// slog.Default().
func TestDefaultLogger(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		var logs logSink
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
		t.Cleanup(func() { slog.SetDefault(prev) })
		s := serve(t, eng, echo, WithMaxMessage(16))
		c := dial(t, s)
		c.send(t, strings.Repeat("x", 64))
		c.expectEOF(t)
		logs.waitFor(t, "message too large")
	})
}

// TestPanicInCallback: a panicking callback closes its own connection, is
// logged with its stack, and every other connection is served on.
func TestPanicInCallback(t *testing.T) {
	tests := []struct {
		name     string
		callback string
		setup    func(s *Server, first *atomic.Uint64)
		trigger  func(t *testing.T, c *client)
	}{
		{"OnMessage", "OnMessage", func(s *Server, _ *atomic.Uint64) {
			s.OnMessage(func(c *Conn, msg []byte) {
				if string(msg) == "boom" {
					_ = c.Get("never set").(int) // the counter pattern on a missing key
				}
				_ = c.Send(msg)
			})
		}, func(t *testing.T, c *client) { c.send(t, "boom") }},
		{"OnConnect", "OnConnect", func(s *Server, first *atomic.Uint64) {
			s.OnConnect(func(c *Conn) {
				if first.CompareAndSwap(0, c.ID()) {
					panic("connect failed")
				}
			})
			echo(s)
		}, func(*testing.T, *client) {}},
		{"OnDisconnect", "OnDisconnect", func(s *Server, _ *atomic.Uint64) {
			s.OnDisconnect(func(c *Conn) { panic("disconnect failed") })
			s.OnMessage(func(c *Conn, msg []byte) {
				if string(msg) == "bye" {
					_ = c.Close()
					return
				}
				_ = c.Send(msg)
			})
		}, func(t *testing.T, c *client) { c.send(t, "bye") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allEngines(t, func(t *testing.T, eng Engine) {
				var logs logSink
				var first atomic.Uint64
				s := serve(t, eng, func(s *Server) { tt.setup(s, &first) },
					WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
				victim := dial(t, s)
				tt.trigger(t, victim)
				victim.expectEOF(t)
				logs.waitFor(t, "panic in "+tt.callback+" callback")
				logs.waitFor(t, "robustness_test.go") // the stack
				for i := range 3 {
					c := dial(t, s)
					c.send(t, "still serving")
					if got := c.line(t); got != "still serving" {
						t.Fatalf("connection %d after the panic: got %q", i, got)
					}
				}
			})
		})
	}
}

func TestValue(t *testing.T) {
	c := &Conn{}
	c.Set("count", 3)
	c.Set("name", "ann")
	tests := []struct {
		name string
		got  func() (any, bool)
		want any
		ok   bool
	}{
		{"set, right type", func() (any, bool) { return Value[int](c, "count") }, 3, true},
		{"set, wrong type", func() (any, bool) { return Value[int](c, "name") }, 0, false},
		{"never set", func() (any, bool) { return Value[int](c, "missing") }, 0, false},
		{"string", func() (any, bool) { return Value[string](c, "name") }, "ann", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.got()
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v, %t; want %v, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestUnterminatedFinalLine: the bytes after the last '\n' of a stream are
// delivered flagged by Conn.Unterminated, or dropped with
// WithDropUnterminated.
func TestUnterminatedFinalLine(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{"delivered and flagged", nil, []string{"a false", "b true"}},
		{"dropped", []Option{WithDropUnterminated()}, []string{"a false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allEngines(t, func(t *testing.T, eng Engine) {
				done := make(chan []string, 1)
				s := serve(t, eng, func(s *Server) {
					s.OnMessage(func(c *Conn, msg []byte) {
						got, _ := Value[[]string](c, "got")
						c.Set("got", append(got, string(msg)+" "+map[bool]string{true: "true", false: "false"}[c.Unterminated()]))
					})
					s.OnDisconnect(func(c *Conn) {
						got, _ := Value[[]string](c, "got")
						done <- got
					})
				}, tt.opts...)
				c := dial(t, s)
				if _, err := c.Write([]byte("a\nb")); err != nil {
					t.Fatal(err)
				}
				if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
				got := receive(t, done, "OnDisconnect")
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Fatalf("messages: got %q, want %q", got, tt.want)
				}
			})
		})
	}
}
