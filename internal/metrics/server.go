package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the HTTP endpoint: each connection gets one request, read
// within readTimeout (a head of at most maxHead bytes) and answered within
// writeTimeout; at most maxConns are open at once (more are closed
// unanswered), and at most maxScrapes of them build a scrape at once (the
// others wait for their turn): idle connections hold no scrape slot, so a
// few of them cannot lock Prometheus out.
const (
	readTimeout  = 5 * time.Second
	writeTimeout = 10 * time.Second
	maxHead      = 8 << 10
	maxConns     = 64
	maxScrapes   = 4
	// ContentType is the text exposition format's media type.
	ContentType = "text/plain; version=0.0.4; charset=utf-8"
)

// ParseAddr checks a --metrics-listen address: HOST:PORT with a numeric
// port (0 picks a free one) and HOST an IP address, a name, or empty for
// every interface.
func ParseAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q of %q is not a number from 0 to 65535", port, addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q of %q is not an address or a name", host, addr)
	}
	return nil
}

// Loopback reports whether a listener accepts connections from this
// machine only.
func Loopback(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// Serve answers GET (and HEAD) /metrics on ln with s's scrape until ctx
// ends, then closes ln and waits for the scrapes in flight. It returns
// ln's accept error, or nil when ctx ended.
func Serve(ctx context.Context, ln net.Listener, s *Source, log *slog.Logger) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	slots := make(chan struct{}, maxConns)
	scrapes := make(chan struct{}, maxScrapes)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: back off rather than spin (connections
			// wait in the backlog meanwhile).
			log.Error("metrics: accept", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			_ = c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			serveConn(c, s, scrapes)
		}()
	}
}

// serveConn answers one request on c and closes it; a scrape takes one of
// scrapes for as long as it is built.
func serveConn(c net.Conn, s *Source, scrapes chan struct{}) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(readTimeout))
	method, path, ok := readHead(bufio.NewReaderSize(&limited{c: c, n: maxHead}, 1024))
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	switch {
	case !ok:
		reply(c, "400 Bad Request", "text/plain; charset=utf-8", nil, []byte("bad request\n"))
		// Closing with the client's bytes unread would reset the
		// connection before it reads the reply: read what it still
		// sends, briefly.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		}
	case path != "/metrics":
		reply(c, "404 Not Found", "text/plain; charset=utf-8", nil, []byte("not found: the metrics are at /metrics\n"))
	case method != "GET" && method != "HEAD":
		reply(c, "405 Method Not Allowed", "text/plain; charset=utf-8", []string{"Allow: GET, HEAD"}, []byte("use GET\n"))
	default:
		scrapes <- struct{}{}
		body := s.Scrape()
		<-scrapes
		if method == "HEAD" {
			replyHead(c, "200 OK", ContentType, nil, len(body))
			return
		}
		reply(c, "200 OK", ContentType, nil, body)
	}
}

// limited reads at most n bytes of c.
type limited struct {
	c net.Conn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request head too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

// readHead reads an HTTP/1.x request head and returns its method and path
// (the query dropped); ok is false for anything else.
func readHead(r *bufio.Reader) (method, path string, ok bool) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", "", false
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", "", false
	}
	method, path = f[0], f[1]
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return "", "", false
		}
		if strings.TrimRight(h, "\r\n") == "" {
			return method, path, true
		}
	}
}

// head returns a response head for a body of n bytes; the connection
// closes after it.
func head(status, ctype string, extra []string, n int) []byte {
	b := fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n", status, ctype, n)
	for _, h := range extra {
		b = append(b, h+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

func replyHead(c net.Conn, status, ctype string, extra []string, n int) {
	_, _ = c.Write(head(status, ctype, extra, n))
}

func reply(c net.Conn, status, ctype string, extra []string, body []byte) {
	bufs := net.Buffers{head(status, ctype, extra, len(body)), body}
	_, _ = bufs.WriteTo(c)
}
