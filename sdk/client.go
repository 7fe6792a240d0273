package sdk

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
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

// DefaultTimeout bounds one request when the context has no deadline. It
// matches the 5 s receive timeout of the C++ clients.
const DefaultTimeout = 5 * time.Second

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

// NewClientMode returns a client for the user or system daemon, honouring
// $SOCKETLEY_SOCKET first.
func NewClientMode(user bool) *Client {
	m := paths.System
	if user {
		m = paths.User
	}
	return &Client{socket: paths.Socket("", m)}
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
// becomes a *ReplyError (errors.Is ErrRefused or ErrDaemon).
func (c *Client) Do(ctx context.Context, req wire.Request) (*wire.Result, error) {
	if req.Version == "" {
		req.Version = c.Version
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	code, payload, err := c.roundTrip(ctx, append(b, '\n'))
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
		return &res, &ReplyError{Code: code, Message: msg}
	}
	return &res, nil
}

func (c *Client) roundTrip(ctx context.Context, req []byte) (int, []byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
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

func (c *Client) names(ctx context.Context, cmd string, names []string, wait bool, timeout time.Duration) ([]Runtime, error) {
	res, err := c.Do(ctx, wire.Request{Cmd: cmd, Names: names, Wait: wait, Timeout: wire.Duration(timeout)})
	if err != nil {
		return nil, err
	}
	return res.Runtimes, nil
}

// List returns every runtime, sorted by name (ls).
func (c *Client) List(ctx context.Context) ([]Runtime, error) {
	return c.names(ctx, wire.CmdList, nil, false, 0)
}

// PS returns the runtimes that are running (ps).
func (c *Client) PS(ctx context.Context) ([]Runtime, error) {
	return c.names(ctx, wire.CmdPS, nil, false, 0)
}

// Show returns the runtimes matching names (names or glob patterns).
func (c *Client) Show(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdShow, names, false, 0)
}

// Add registers a managed runtime (and starts it when spec.Start is set).
// With wait, it returns once the runtime is running, or fails with the reason.
func (c *Client) Add(ctx context.Context, spec AddSpec, wait bool, timeout time.Duration) (Runtime, error) {
	res, err := c.Do(ctx, wire.Request{Cmd: wire.CmdAdd, Add: &spec, Wait: wait, Timeout: wire.Duration(timeout)})
	if err != nil {
		return Runtime{}, err
	}
	if len(res.Runtimes) == 0 {
		return Runtime{}, fmt.Errorf("add %s: daemon returned no runtime", spec.Name)
	}
	return res.Runtimes[0], nil
}

// Start starts the runtimes matching names; with wait, it returns once they run.
func (c *Client) Start(ctx context.Context, wait bool, timeout time.Duration, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdStart, names, wait, timeout)
}

// Stop stops the runtimes matching names and returns once their units are inactive.
func (c *Client) Stop(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdStop, names, false, 0)
}

// Restart stops, waits for, then starts the runtimes matching names.
func (c *Client) Restart(ctx context.Context, wait bool, timeout time.Duration, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdRestart, names, wait, timeout)
}

// Remove stops and forgets the runtimes matching names.
func (c *Client) Remove(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.names(ctx, wire.CmdRemove, names, false, 0)
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
