// Package control is the client side of the daemon's control socket: one
// request and its reply over a fresh connection (or, with Client.Reuse,
// the previous request's), in the framing of
// package wire, with the deadlines a request gets when its context has none
// and the retry of a daemon that is not listening yet.
//
// Two packages use it. The public SDK (package sdk) wraps it in typed,
// context-first methods and re-exports its errors; the CLI (internal/cli)
// uses it directly, because it words its replies from the daemon's whole
// answer ([wire.Result]: the runtimes, their failure marks and the message),
// which the SDK does not expose. It imports only wire and nothing of the
// daemon, the SDK or the CLI (internal/deps guards that).
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// Request deadlines used when the context has none.
const (
	// DefaultTimeout bounds one request when the context has no deadline,
	// except the requests that stop runtimes or wait for them (see
	// DefaultStopTimeout). It matches the 5 s receive timeout of the C++
	// clients.
	DefaultTimeout = 5 * time.Second
	// DefaultStopTimeout bounds stop, restart and remove when the context
	// has no deadline; add, start and restart with Wait get their Timeout
	// on top. A stop waits for the runtime's own stop timeout (10 s unless
	// it was added with another, up to 5 min) after SIGTERM, then SIGKILLs
	// it, and the daemon bounds the whole stop by twice that plus 10 s: with
	// this deadline the client never gives up on a stop the daemon is still
	// carrying out, as a 5 s one would.
	DefaultStopTimeout = 15 * time.Minute
)

// Client sends requests to the daemon listening on Socket. The zero value
// with Socket set is ready to use, and a Client is safe for concurrent use:
// each request has its own connection, unless Reuse lends it an idle one.
type Client struct {
	// Socket is the path of the daemon's control socket, used as it is.
	Socket string
	// Version, when set, is sent with each JSON request so that the daemon
	// can log a client of another version.
	Version string
	// Dial, when set, opens each connection instead of dialing Socket,
	// which then only names the daemon in errors (the CLI's -H dials
	// through ssh). An error of Dial is returned as an *UnreachableError.
	Dial func(ctx context.Context) (net.Conn, error)
	// Reuse keeps the connection of a request that was answered open for
	// the next one, which then skips the dial (the daemon serves further
	// request lines on a connection): over ssh each dial is a login. One
	// idle connection is kept, for at most ReuseIdle; never one whose
	// request could not be sent or answered, or was cancelled. Before it
	// is used, a look (no wait) tells whether the daemon has closed it
	// meanwhile (its idle limit, a restart, a refusal that ends the
	// connection): then the request goes on a new connection. A request is
	// never sent twice once a byte of it was written. Close closes the
	// kept connection.
	Reuse bool

	mu     sync.Mutex
	idle   *kept
	idleAt time.Time
	closed bool
}

// ReuseIdle is how long a Reuse client keeps an idle connection: well
// within the 10 s the daemon waits for the next request on a connection
// before it closes it (wire.IdleLimit).
const ReuseIdle = wire.IdleLimit * 2 / 5

// kept is a connection with the reader of its replies.
type kept struct {
	conn net.Conn
	r    *bufio.Reader
}

func newKept(conn net.Conn) *kept { return &kept{conn: conn, r: bufio.NewReader(conn)} }

// take returns the idle connection, if there is one young enough.
func (c *Client) take() *kept {
	c.mu.Lock()
	k, at := c.idle, c.idleAt
	c.idle = nil
	c.mu.Unlock()
	if k != nil && time.Since(at) >= ReuseIdle {
		_ = k.conn.Close()
		return nil
	}
	return k
}

// keep makes k the idle connection, closing the one it replaces (or k,
// once the Client is closed).
func (c *Client) keep(k *kept) {
	_ = k.conn.SetDeadline(time.Time{})
	c.mu.Lock()
	drop := c.idle
	if c.closed {
		drop = k
	} else {
		c.idle, c.idleAt = k, time.Now()
	}
	c.mu.Unlock()
	if drop != nil {
		_ = drop.conn.Close()
	}
}

// Close closes the connection Reuse kept, if any (over ssh: ends the ssh
// process). The Client stays usable, but keeps no connection from now on.
func (c *Client) Close() error {
	c.mu.Lock()
	k := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	if k == nil {
		return nil
	}
	return k.conn.Close()
}

// dial opens one connection to the daemon.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if c.Dial != nil {
		conn, err := c.Dial(ctx)
		if err != nil {
			return nil, &UnreachableError{Socket: c.Socket, Err: err}
		}
		return conn, nil
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, &UnreachableError{Socket: c.Socket, Err: err}
	}
	return conn, nil
}

// Line sends one request line in the C++ SDK's format and returns the
// reply's code and text, within DefaultTimeout when ctx has no deadline. A
// non-zero code is not an error here.
func (c *Client) Line(ctx context.Context, line string) (int, string, error) {
	code, payload, err := c.roundTrip(ctx, DefaultTimeout, []byte(strings.TrimRight(line, "\r\n")+"\n"))
	return code, string(payload), err
}

// Do sends a JSON request and decodes the JSON reply. A non-zero reply
// code becomes a *ReplyError (errors.Is ErrRefused or ErrDaemon, and the
// sentinel of its class), returned together with the reply the daemon sent
// (nil when it sent none that decodes): a command that failed for some of
// its runtimes marks those with Runtime.Failed. Without a deadline in ctx
// the request is bounded by requestTimeout(req).
func (c *Client) Do(ctx context.Context, req wire.Request) (*wire.Result, error) {
	if req.Version == "" {
		req.Version = c.Version
	}
	// AppendJSON writes json.Marshal's bytes without its reflection, whose
	// first use would cost a CLI command more than the rest of its request.
	b, err := req.AppendJSON(make([]byte, 0, 256))
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	code, payload, err := c.roundTrip(ctx, requestTimeout(req), append(b, '\n'))
	if err != nil {
		return nil, err
	}
	var res wire.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		if code != 0 {
			return nil, &ReplyError{Code: code, Message: strings.TrimSpace(string(payload))}
		}
		return nil, fmt.Errorf("decode reply from %s: %w", c.Socket, err)
	}
	if code != 0 {
		msg := res.Error
		if msg == "" {
			msg = fmt.Sprintf("request failed with code %d", code)
		}
		return &res, &ReplyError{Code: code, Message: msg, Class: res.Class}
	}
	return &res, nil
}

// roundTrip sends req and reads the reply, within d when ctx has no
// deadline.
func (c *Client) roundTrip(ctx context.Context, d time.Duration, req []byte) (int, []byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var k *kept
	if c.Reuse {
		k = c.take()
	}
	if k != nil && !alive(k) {
		// The daemon closed it meanwhile (its idle limit, a restart, a
		// refusal that ends the connection).
		_ = k.conn.Close()
		k = nil
	}
	if k != nil {
		code, payload, sent, err := c.exchange(ctx, k, req)
		if err == nil || sent || ctx.Err() != nil {
			return code, payload, err
		}
		// Not a byte of the request was written: once more, on a new
		// connection.
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return 0, nil, err
	}
	code, payload, _, err := c.exchange(ctx, newKept(conn), req)
	return code, payload, err
}

// alive reports, without waiting, whether the kept connection k is still
// open at the daemon's end: nothing to read and no end of file. A request
// the daemon may have read is never sent twice, so this is the one look
// before a kept connection is used.
func alive(k *kept) bool {
	if k.r.Buffered() > 0 {
		return false // bytes no request asked for
	}
	if k.conn.SetReadDeadline(time.Now()) != nil {
		return false // no deadlines: the look could block
	}
	_, err := k.r.Peek(1)
	_ = k.conn.SetReadDeadline(time.Time{})
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// exchange sends req on k and reads the reply; with Reuse, k is kept for
// the next request once answered, else closed. sent reports whether the
// daemon may have read req: false only when writing it failed.
func (c *Client) exchange(ctx context.Context, k *kept, req []byte) (code int, payload []byte, sent bool, err error) {
	conn := k.conn
	done := false
	defer func() {
		if done && c.Reuse {
			c.keep(k)
			return
		}
		_ = conn.Close()
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if n, err := conn.Write(req); err != nil {
		return 0, nil, n > 0, fmt.Errorf("send request to %s: %w", c.Socket, err)
	}
	rc, payload, err := wire.ReadReply(k.r)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, true, fmt.Errorf("request to %s: %w", c.Socket, ctx.Err())
		}
		return 0, nil, true, fmt.Errorf("request to %s: %w", c.Socket, err)
	}
	// Kept only if the deadline cannot have fired (stop ran first).
	done = stop() && ctx.Err() == nil
	return int(rc), payload, true, nil
}

// requestTimeout is the deadline of req when the caller's context has none:
// DefaultTimeout, DefaultStopTimeout for the commands that stop runtimes,
// plus the wait of a waiting request.
func requestTimeout(req wire.Request) time.Duration {
	d := DefaultTimeout
	switch req.Cmd {
	case wire.CmdStop, wire.CmdRestart, wire.CmdRemove:
		d = DefaultStopTimeout
	case wire.CmdUpgrade:
		// A restart, the wait, and maybe a switch back: a restart and a wait again.
		return 2*DefaultStopTimeout + 2*max(time.Duration(req.Timeout), wire.DefaultWaitTimeout)
	}
	if req.Wait {
		// The daemon waits up to wire.DefaultWaitTimeout when no timeout is given.
		d += max(time.Duration(req.Timeout), wire.DefaultWaitTimeout)
	}
	return d
}

// Retries of a daemon that is not there yet: the delay between two tries
// starts at retryMin and doubles up to retryMax.
const (
	retryMin = 10 * time.Millisecond
	retryMax = 500 * time.Millisecond
)

// LineRetrying is Line, retried with backoff (10 ms doubling to 500 ms)
// while the daemon's socket is missing or refuses connections, as when the
// daemon is starting, restarting or being upgraded, until ctx ends. A reply,
// even a refusal, is never retried. retried, when not nil, is called with
// the error of each try that will be retried (for tests).
func (c *Client) LineRetrying(ctx context.Context, line string, retried func(error)) (int, string, error) {
	delay := retryMin
	tries := 0
	for {
		code, text, err := c.Line(ctx, line)
		tries++
		if err == nil || !daemonNotThere(err) {
			return code, text, err
		}
		if retried != nil {
			retried(err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, "", fmt.Errorf("%w (tried %d times until %v)", err, tries, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, retryMax)
	}
}

// daemonNotThere reports whether err is a dial failure that a daemon
// starting up explains: no socket file yet, nobody listening on it, or a
// full listen backlog.
func daemonNotThere(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue) &&
		(errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EAGAIN))
}
