package sdk

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// Request deadlines used when the context has none.
const (
	// DefaultTimeout bounds one request when the context has no deadline,
	// except the requests that stop runtimes or wait for them (see
	// DefaultStopTimeout). It matches the 5 s receive timeout of the C++
	// clients.
	DefaultTimeout = control.DefaultTimeout
	// DefaultStopTimeout bounds Stop, Restart and Remove when the context
	// has no deadline; Add, Start and Restart with StartOptions.Wait get
	// StartOptions.Timeout on top. A stop waits for the runtime's own stop
	// timeout (10 s unless it was added with another, up to 5 min) after
	// SIGTERM, then SIGKILLs it, and the daemon bounds the whole stop by
	// twice that plus 10 s: with this deadline the client never gives up
	// on a stop the daemon is still carrying out, as a 5 s one would.
	DefaultStopTimeout = control.DefaultStopTimeout
)

// Client drives one socketley daemon: the requests of the CLI's commands,
// over the same socket and the same client code as the CLI. Create one with
// NewClient. A Client is safe for concurrent use: each request has its own
// connection.
//
// Every method takes a context: its deadline bounds the request, and
// without one the request gets DefaultTimeout (DefaultStopTimeout for the
// methods that stop runtimes). An error matches ErrUnreachable, ErrRefused
// or ErrDaemon with errors.Is, and a refusal or failure also the sentinel of
// its class (ErrNotFound, ErrExists, …). A command that acted on several
// runtimes and failed for some returns the runtimes the daemon reported
// together with the error, with Runtime.Failed set on those it failed for.
type Client struct {
	c control.Client
}

// NewClient returns a client for the daemon at socket; an empty socket is
// resolved as the package documentation describes. No connection is made
// until a request.
func NewClient(socket string) *Client {
	return &Client{c: control.Client{Socket: paths.Socket(socket, paths.Auto)}}
}

// Socket returns the control socket path the client dials.
func (c *Client) Socket() string { return c.c.Socket }

// runtimes sends req and returns the runtimes of the reply, also with an
// error when the daemon reported some.
func (c *Client) runtimes(ctx context.Context, req wire.Request) ([]Runtime, error) {
	res, err := c.c.Do(ctx, req)
	if res == nil {
		return nil, err
	}
	return res.Runtimes, err
}

// StartOptions says whether Add, Start and Restart wait for the runtimes to
// run. The zero value returns as soon as the daemon has asked systemd to
// start them.
type StartOptions struct {
	// Wait makes the call return only once the runtimes are running (and
	// attached, for those added with ExpectAttach), or fail with the reason
	// (errors.Is ErrFailed).
	Wait bool
	// Timeout bounds Wait; zero means the daemon's default (10 s).
	Timeout time.Duration
}

func (o StartOptions) request(cmd string, names []string) wire.Request {
	return wire.Request{Cmd: cmd, Names: names, Wait: o.Wait, Timeout: wire.Duration(o.Timeout)}
}

// List returns every runtime, sorted by name (socketley ls).
func (c *Client) List(ctx context.Context) ([]Runtime, error) {
	return c.runtimes(ctx, wire.Request{Cmd: wire.CmdList})
}

// PS returns the runtimes that run or should: every runtime with a live
// process, and every managed runtime wanted running that is between a crash
// and its restart (socketley ps).
func (c *Client) PS(ctx context.Context) ([]Runtime, error) {
	return c.runtimes(ctx, wire.Request{Cmd: wire.CmdPS})
}

// Show returns the runtimes matching names (names or glob patterns such as
// "web-*"), with every detail the caller may see (socketley show).
func (c *Client) Show(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.runtimes(ctx, wire.Request{Cmd: wire.CmdShow, Names: names})
}

// Add registers a managed runtime, and starts it when spec.Start is set;
// with o.Wait it returns once the runtime is running, or fails with the
// reason. A relative spec.Path, spec.WorkDir, env file or credential path is resolved against this
// process's working directory (the daemon, which runs elsewhere, needs
// absolute paths). A runtime whose first start fails stays registered: the
// error comes with the runtime.
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
	if len(spec.Credentials) > 0 {
		creds := slices.Clone(spec.Credentials)
		for i := range creds {
			if creds[i].Path == "" || filepath.IsAbs(creds[i].Path) {
				continue
			}
			abs, err := filepath.Abs(creds[i].Path)
			if err != nil {
				return Runtime{}, fmt.Errorf("add %s: resolve %s: %w", spec.Name, creds[i].Path, err)
			}
			creds[i].Path = abs
		}
		spec.Credentials = creds
	}
	if len(spec.EnvFiles) > 0 {
		files := slices.Clone(spec.EnvFiles)
		for i, f := range files {
			if f == "" || filepath.IsAbs(f) {
				continue
			}
			abs, err := filepath.Abs(f)
			if err != nil {
				return Runtime{}, fmt.Errorf("add %s: resolve %s: %w", spec.Name, f, err)
			}
			files[i] = abs
		}
		spec.EnvFiles = files
	}
	req := o.request(wire.CmdAdd, nil)
	req.Add = &spec
	return c.one(ctx, "add "+spec.Name, req)
}

// one sends req, which acts on one runtime, and returns that runtime, also
// with an error when the daemon reported it.
func (c *Client) one(ctx context.Context, what string, req wire.Request) (Runtime, error) {
	rts, err := c.runtimes(ctx, req)
	switch {
	case len(rts) > 0:
		return rts[0], err
	case err != nil:
		return Runtime{}, err
	}
	return Runtime{}, fmt.Errorf("%s: the daemon returned no runtime", what)
}

// Start starts the runtimes matching names; with o.Wait it returns once
// they run. A runtime that is already running is left alone.
func (c *Client) Start(ctx context.Context, o StartOptions, names ...string) ([]Runtime, error) {
	return c.runtimes(ctx, o.request(wire.CmdStart, names))
}

// Stop stops the runtimes matching names and returns once their units are
// inactive: after SIGTERM, a runtime gets its stop timeout (10 s by
// default) before SIGKILL. An attached process is sent SIGTERM. Without a
// deadline in ctx the request is bounded by DefaultStopTimeout, which
// outlasts any stop the daemon allows.
func (c *Client) Stop(ctx context.Context, names ...string) ([]Runtime, error) {
	return c.runtimes(ctx, wire.Request{Cmd: wire.CmdStop, Names: names})
}

// Restart stops, waits for, then starts the runtimes matching names; with
// o.Wait it returns once they run again. Its deadline is as for Stop, plus
// the wait.
func (c *Client) Restart(ctx context.Context, o StartOptions, names ...string) ([]Runtime, error) {
	return c.runtimes(ctx, o.request(wire.CmdRestart, names))
}

// Upgrade switches the managed runtime name to the executable path and
// restarts it; a runtime added with AddSpec.Listen keeps its socket
// meanwhile, so clients connecting during the upgrade wait instead of being
// refused. A relative path is resolved against this process's working
// directory. It returns once the new process runs (attached, when the
// runtime attaches) within timeout (0: the daemon's default, 10 s);
// otherwise the daemon switches back to the old executable and starts it
// again, and the error (errors.Is ErrRefused) says why. The switch is
// persisted before anything is restarted. Without a deadline in ctx the
// request is bounded by twice DefaultStopTimeout (the stop of the old
// process, and of the new one when it switches back) plus twice the wait
// (the new executable's, then the old one's).
func (c *Client) Upgrade(ctx context.Context, name, path string, timeout time.Duration) (Runtime, error) {
	if path != "" && !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return Runtime{}, fmt.Errorf("upgrade %s: %w", name, err)
		}
		path = abs
	}
	return c.one(ctx, "upgrade "+name, wire.Request{Cmd: wire.CmdUpgrade, Names: []string{name}, Path: path, Timeout: wire.Duration(timeout)})
}

// Remove stops and forgets the runtimes matching names (deadline as for
// Stop): a managed runtime's unit is stopped, an attached process is sent
// SIGTERM (unless the caller is that process: then it is only forgotten, as
// with Detach). The daemon reports no runtimes for a removal, hence only
// an error.
func (c *Client) Remove(ctx context.Context, names ...string) error {
	_, err := c.c.Do(ctx, wire.Request{Cmd: wire.CmdRemove, Names: names})
	return err
}

// DaemonVersion returns the daemon's build information.
func (c *Client) DaemonVersion(ctx context.Context) (VersionInfo, error) {
	res, err := c.c.Do(ctx, wire.Request{Cmd: wire.CmdVersion})
	if err != nil {
		return VersionInfo{}, err
	}
	if res.Version == nil {
		return VersionInfo{}, fmt.Errorf("version: the daemon returned none")
	}
	return *res.Version, nil
}
