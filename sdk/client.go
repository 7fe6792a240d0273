package sdk

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// Runtime is one registry entry as the daemon reports it (ls, ps, show).
type Runtime = wire.Runtime

// AddSpec describes a managed runtime to register (Client.Add).
type AddSpec = wire.AddSpec

// VersionInfo describes a build of socketley.
type VersionInfo = wire.VersionInfo

// Duration is a time.Duration that encodes as "1.5s" in JSON.
type Duration = wire.Duration

// Request deadlines used when the context has none.
const (
	// DefaultTimeout bounds one request when the context has no deadline,
	// except the requests that stop runtimes or wait for them (see
	// DefaultStopTimeout). It matches the 5 s receive timeout of the C++
	// clients.
	DefaultTimeout = 5 * time.Second
	// DefaultStopTimeout bounds Stop, Restart and Remove when the context
	// has no deadline; Add, Start and Restart with StartOptions.Wait get
	// StartOptions.Timeout on top. A stop waits for the runtime's own stop
	// timeout (10 s unless it was added with another, up to 5 min) after
	// SIGTERM, then SIGKILLs it, and the daemon bounds the whole stop by
	// twice that plus 10 s: with this deadline the client never gives up
	// on a stop the daemon is still carrying out, as a 5 s one would.
	DefaultStopTimeout = 15 * time.Minute
)

// Client talks to one socketley daemon. The zero value is not usable; create
// one with NewClient. A Client is safe for concurrent use: each request uses
// its own connection.
type Client struct {
	socket string
	// Version is sent with each request so the daemon can log a mismatch.
	Version string
}

// NewClient returns a client for the daemon at socket; an empty socket is
// resolved as the package documentation describes.
func NewClient(socket string) *Client {
	return &Client{socket: paths.Socket(socket, paths.Auto)}
}

// Socket returns the control socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// Line sends one legacy request line (the C++ SDK's format) and returns the
// reply's code and text. A non-zero code is not an error here.
func (c *Client) Line(ctx context.Context, line string) (int, string, error) {
	code, payload, err := c.roundTrip(ctx, []byte(strings.TrimRight(line, "\r\n")+"\n"))
	return code, string(payload), err
}

// Do sends a JSON request and decodes the JSON result. A non-zero reply code
// becomes a *ReplyError (errors.Is ErrRefused or ErrDaemon). Without a
// deadline in ctx the request is bounded by DefaultTimeout, or by
// DefaultStopTimeout (plus the wait) for the commands that stop or wait.
func (c *Client) Do(ctx context.Context, req wire.Request) (*wire.Result, error) {
	if req.Version == "" {
		req.Version = c.Version
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	code, payload, err := c.roundTripWithin(ctx, requestTimeout(req), append(b, '\n'))
	if err != nil {
		return nil, err
	}
	var res wire.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		if code != 0 {
			return nil, &ReplyError{Code: code, Message: strings.TrimSpace(string(payload))}
		}
		return nil, fmt.Errorf("decode reply from %s: %w", c.socket, err)
	}
	if code != 0 {
		msg := res.Error
		if msg == "" {
			msg = fmt.Sprintf("request failed with code %d", code)
		}
		return &res, &ReplyError{Code: code, Message: msg, Class: string(res.Class)}
	}
	return &res, nil
}

func (c *Client) roundTrip(ctx context.Context, req []byte) (int, []byte, error) {
	return c.roundTripWithin(ctx, DefaultTimeout, req)
}

// roundTripWithin sends req and reads the reply, within d when ctx has no
// deadline.
func (c *Client) roundTripWithin(ctx context.Context, d time.Duration, req []byte) (int, []byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return 0, nil, &UnreachableError{Socket: c.socket, Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return 0, nil, fmt.Errorf("send request to %s: %w", c.socket, err)
	}
	code, payload, err := wire.ReadReply(bufio.NewReader(conn))
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("request to %s: %w", c.socket, ctx.Err())
		}
		return 0, nil, fmt.Errorf("request to %s: %w", c.socket, err)
	}
	return int(code), payload, nil
}

// requestTimeout is the deadline of req when the caller's context has none.
func requestTimeout(req wire.Request) time.Duration {
	d := DefaultTimeout
	switch req.Cmd {
	case wire.CmdStop, wire.CmdRestart, wire.CmdRemove:
		d = DefaultStopTimeout
	case wire.CmdUpgrade:
		// A restart, the wait, and maybe a switch back: a restart and a wait again.
		return 2*DefaultStopTimeout + 2*max(time.Duration(req.Timeout), 10*time.Second)
	}
	if req.Wait {
		// The daemon waits up to 10 s when no timeout is given.
		d += max(time.Duration(req.Timeout), 10*time.Second)
	}
	return d
}

// StartOptions says whether Add, Start and Restart wait for the runtimes to
// run. The zero value returns as soon as the daemon has asked systemd to
// start them.
type StartOptions struct {
	// Wait makes the call return only once the runtimes are running (and
	// attached, for those added with ExpectAttach), or fail with the reason.
	Wait bool
	// Timeout bounds Wait; zero means the daemon's default (10 s).
	Timeout time.Duration
}

func (c *Client) names(ctx context.Context, cmd string, names []string, o StartOptions) ([]Runtime, error) {
	res, err := c.Do(ctx, wire.Request{Cmd: cmd, Names: names, Wait: o.Wait, Timeout: wire.Duration(o.Timeout)})
	if err != nil {
		return nil, err
	}
	return res.Runtimes, nil
}

// List returns every runtime, sorted by name (ls).
func (c *Client) List(ctx context.Context) ([]Runtime, error) {
	return c.names(ctx, wire.CmdList, nil, StartOptions{})
}

// PS returns the runtimes that are running (ps).
func (c *Client) PS(ctx context.Context) ([]Runtime, error) {
	return c.names(ctx, wire.CmdPS, nil, StartOptions{})
}

// Show returns the runtimes matching names (names or glob patterns).
func (c *Client) Show(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdShow, names, StartOptions{})
}

// Add registers a managed runtime, and starts it when spec.Start is set;
// with o.Wait it returns once the runtime is running, or fails with the
// reason. A relative spec.Path or spec.WorkDir is resolved against this
// process's working directory (the daemon, which runs elsewhere, needs
// absolute paths).
func (c *Client) Add(ctx context.Context, spec AddSpec, o StartOptions) (Runtime, error) {
	for _, p := range []*string{&spec.Path, &spec.WorkDir} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return Runtime{}, fmt.Errorf("add %s: resolve %s: %w", spec.Name, *p, err)
		}
		*p = abs
	}
	res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &spec, Wait: o.Wait, Timeout: wire.Duration(o.Timeout)})
	if err != nil {
		return Runtime{}, err
	}
	if len(res.Runtimes) == 0 {
		return Runtime{}, fmt.Errorf("add %s: daemon returned no runtime", spec.Name)
	}
	return res.Runtimes[0], nil
}

// Start starts the runtimes matching names; with o.Wait it returns once
// they run.
func (c *Client) Start(ctx context.Context, o StartOptions, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdStart, names, o)
}

// Stop stops the runtimes matching names and returns once their units are
// inactive: after SIGTERM, a runtime gets its stop timeout (10 s by
// default) before SIGKILL. Without a deadline in ctx the request is bounded
// by DefaultStopTimeout, which outlasts any stop the daemon allows.
func (c *Client) Stop(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdStop, names, StartOptions{})
}

// Restart stops, waits for, then starts the runtimes matching names; with
// o.Wait it returns once they run again. Its deadline is as for Stop, plus
// the wait.
func (c *Client) Restart(ctx context.Context, o StartOptions, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdRestart, names, o)
}

// Upgrade switches the managed runtime name to the executable path and
// restarts it; a runtime added with --listen keeps its socket meanwhile, so
// clients connecting during the upgrade wait instead of being refused. A
// relative path is resolved against this process's working directory. It
// returns once the new process runs (attached, when the runtime attaches)
// within timeout (0: the daemon's default, 10 s); otherwise the daemon
// switches back to the old executable and starts it again, and the error
// (a *ReplyError, errors.Is ErrRefused) says why. The switch is persisted
// before anything is restarted. Without a deadline in ctx the request is
// bounded by twice DefaultStopTimeout (the stop of the old process, and of
// the new one when it switches back) plus twice the wait (the new
// executable's, then the old one's).
func (c *Client) Upgrade(ctx context.Context, name, path string, timeout time.Duration) (Runtime, error) {
	if path != "" && !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return Runtime{}, fmt.Errorf("upgrade %s: %w", name, err)
		}
		path = abs
	}
	res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdUpgrade, Names: []string{name}, Path: path, Timeout: wire.Duration(timeout)})
	if err != nil {
		if res != nil && len(res.Runtimes) > 0 {
			return res.Runtimes[0], err
		}
		return Runtime{}, err
	}
	if len(res.Runtimes) == 0 {
		return Runtime{}, fmt.Errorf("upgrade %s: the daemon returned no runtime", name)
	}
	return res.Runtimes[0], nil
}

// Remove stops and forgets the runtimes matching names (deadline as for Stop).
func (c *Client) Remove(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdRemove, names, StartOptions{})
}

// DaemonVersion returns the daemon's build information.
func (c *Client) DaemonVersion(ctx context.Context) (VersionInfo, error) {
	res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdVersion})
	if err != nil {
		return VersionInfo{}, err
	}
	if res.Version == nil {
		return VersionInfo{}, fmt.Errorf("version: daemon returned none")
	}
	return *res.Version, nil
}
