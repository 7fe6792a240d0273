package metrics

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// roundTrip sends req on a new connection to addr and returns the whole
// response (the server closes after it).
func roundTrip(t *testing.T, addr, req string) (status string, headers map[string]string, body string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%q: no status line: %v", req, err)
	}
	status = strings.TrimSpace(strings.TrimPrefix(line, "HTTP/1.1 "))
	headers = map[string]string{}
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ": ")
		headers[k] = v
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return status, headers, string(b)
}

// TestServe: GET /metrics answers the scrape with the text format's
// content type and length; other paths, methods and garbage get 404, 405
// and 400; Serve returns once its context ends.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !Loopback(ln) {
		t.Errorf("Loopback(%s) = false", ln.Addr())
	}
	src := &Source{Runtimes: func() ([]wire.Runtime, bool) { return fixedView(), true }, Requests: &Requests{}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, src, slog.New(slog.DiscardHandler)) }()
	addr := ln.Addr().String()

	for _, tt := range []struct {
		name, req, status, body string
	}{
		{"scrape", "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", "200 OK", `socketley_runtime_up{name="api",mode="unit"} 1`},
		{"query string", "GET /metrics?x=1 HTTP/1.0\r\n\r\n", "200 OK", "socketley_build_info"},
		{"head", "HEAD /metrics HTTP/1.1\r\n\r\n", "200 OK", ""},
		{"other path", "GET / HTTP/1.1\r\n\r\n", "404 Not Found", "/metrics"},
		{"post", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405 Method Not Allowed", "use GET"},
		{"garbage", "hello\r\n\r\n", "400 Bad Request", "bad request"},
		{"head too long", "GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", maxHead) + "\r\n\r\n", "400 Bad Request", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := roundTrip(t, addr, tt.req)
			if status != tt.status {
				t.Fatalf("status %q, want %q", status, tt.status)
			}
			if !strings.Contains(body, tt.body) {
				t.Errorf("body does not contain %q:\n%.500s", tt.body, body)
			}
			if tt.status == "200 OK" && h["Content-Type"] != ContentType {
				t.Errorf("Content-Type %q, want %q", h["Content-Type"], ContentType)
			}
			if tt.name == "head" && (h["Content-Length"] == "" || h["Content-Length"] == "0") {
				t.Errorf("HEAD: Content-Length %q, want the scrape's", h["Content-Length"])
			}
		})
	}
	t.Run("idle connections do not block a scrape", func(t *testing.T) {
		for range maxScrapes + 2 { // accepted before the scrape: the backlog is FIFO
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		if status, _, _ := roundTrip(t, addr, "GET /metrics HTTP/1.0\r\n\r\n"); status != "200 OK" {
			t.Fatalf("scrape with %d idle connections open: %q", maxScrapes+2, status)
		}
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts after Serve returned")
	}
}

// addrListener is a net.Listener that only has an address.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// TestLoopback: only loopback addresses pass for loopback; the daemon
// warns about every other (the metrics name every user's runtimes).
func TestLoopback(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true},
		{"0.0.0.0", false}, {"::", false}, {"192.0.2.7", false}, {"2001:db8::1", false},
	} {
		t.Run(tt.ip, func(t *testing.T) {
			ln := addrListener{addr: &net.TCPAddr{IP: net.ParseIP(tt.ip), Port: 9559}}
			if got := Loopback(ln); got != tt.want {
				t.Errorf("Loopback(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}
