package units

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/internal/wire"
)

// Default deadlines, applied when the caller's context has none.
const (
	jobTimeout   = 10 * time.Second // Start, Stop: the call and the job
	queryTimeout = 3 * time.Second  // one query (Status, ResetFailed, UnitByPID, …)
	listTimeout  = 10 * time.Second // Subscribe, Resync: several queries
	pingTimeout  = time.Second      // each attempt of Dial's first call
	pingAttempts = 3
)

// Conn is a connection to one systemd manager. Its methods are safe for
// concurrent use. Every call has a deadline: the context's, or a default
// (10 s for Start and Stop, 3 s for a query).
type Conn struct {
	scope Scope
	addr  string // session bus address (User scope); "" for the system bus
	sd    *sdbus.Conn
	end   context.CancelFunc // ends the lifetime context of sd's connections
}

// Dial connects to the manager of scope and checks that systemd answers.
//
// System uses the system bus ($DBUS_SYSTEM_BUS_ADDRESS or
// /run/dbus/system_bus_socket). User uses $DBUS_SESSION_BUS_ADDRESS, else
// unix:path=$XDG_RUNTIME_DIR/bus when that socket exists; with neither it
// fails at once. ctx bounds only the dial (default 3 s), not the life of the
// connection. Errors wrap ErrNoBus when systemd cannot be reached. The caller
// must Close the Conn.
func Dial(ctx context.Context, scope Scope) (*Conn, error) {
	prefix := "dial " + scope.String() + " manager"
	if scope != System && scope != User {
		return nil, fmt.Errorf("%s: %w: unknown scope", prefix, ErrInvalid)
	}
	var addr string
	where := "the system bus"
	if scope == User {
		a, err := sessionBusAddress()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		addr, where = a, "the session bus "+a
	}
	ctx, cancel := withDefault(ctx, queryTimeout)
	defer cancel()

	// godbus ties a connection's life to the context given at dial time, so
	// the connection gets its own context, cut loose from ctx's deadline.
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	sd, err := connect(ctx, end, func() (*sdbus.Conn, error) {
		if scope == System {
			return sdbus.NewSystemConnectionContext(life)
		}
		return sdbus.NewConnection(func() (*godbus.Conn, error) {
			return dialBus(life, scope, addr)
		})
	}, (*sdbus.Conn).Close)
	if err != nil {
		end()
		return nil, fmt.Errorf("%s: %w", prefix, noBus("connect to "+where, err))
	}
	if err := ping(ctx, sd); err != nil {
		sd.Close()
		end()
		return nil, fmt.Errorf("%s: %w", prefix, noBus("systemd does not answer on "+where, err))
	}
	return &Conn{scope: scope, addr: addr, sd: sd, end: end}, nil
}

// Close closes the connection. A Watch from Subscribe has its own connection
// and stays open. Close always returns nil.
func (c *Conn) Close() error {
	c.sd.Close()
	c.end()
	return nil
}

// Scope returns the scope the Conn was dialed with.
func (c *Conn) Scope() Scope { return c.scope }

// Start creates the transient unit Name(spec.Name) from spec and starts it
// (job mode "fail"), then waits for the job. Results:
//   - nil: the job is done; with Type=exec the binary has been executed.
//   - errors.Is(err, ErrInvalid): spec cannot be turned into a unit.
//   - errors.Is(err, ErrUnitExists): a unit of that name is active or busy.
//     A failed or inactive leftover is cleared (ResetFailed) and the start
//     retried once before this is returned.
//   - *JobError: the job ended otherwise: a binary that cannot be executed
//     ("failed", Result exit-code, ExecMainStatus 203), or a program that
//     exited before systemd saw its exec. The error carries the unit's
//     Status. The unit is left as systemd has it — failed, or about to be
//     restarted under Restart= — never stopped: a failed start of a runtime
//     that should run stays systemd's (and its supervisor's) to retry. Stop
//     and ResetFailed drop it.
//   - a context error if the job does not end in time: the unit may still
//     start; check with Status.
func (c *Conn) Start(ctx context.Context, spec Spec) error {
	unit := Name(spec.Name)
	props, err := properties(spec, c.scope)
	if err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	ctx, cancel := withDefault(ctx, jobTimeout)
	defer cancel()

	result, err := c.startTransient(ctx, unit, props)
	if errors.Is(err, ErrUnitExists) {
		// A failed unit stays loaded (CollectMode=inactive) and blocks the
		// name; clearing it lets the manager collect it before the retry.
		if rerr := mapErr(c.sd.ResetFailedUnitContext(ctx, unit)); rerr != nil && !errors.Is(rerr, ErrNoSuchUnit) {
			return c.wrap("start", unit, rerr)
		}
		result, err = c.startTransient(ctx, unit, props)
	}
	if err != nil {
		return c.wrap("start", unit, err)
	}
	if result == JobDone {
		return nil
	}
	je := &JobError{Unit: unit, Job: "start", Result: result}
	// The caller's ctx may be spent: read the outcome on a short deadline
	// of our own.
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
	defer qcancel()
	if st, err := c.Status(qctx, spec.Name); err == nil {
		je.Status = st
	}
	return je
}

// startTransient starts unit and waits for its job result.
func (c *Conn) startTransient(ctx context.Context, unit string, props []sdbus.Property) (JobResult, error) {
	ch := make(chan string, 1) // buffered: go-systemd's dispatcher must never block
	if _, err := c.sd.StartTransientUnitContext(ctx, unit, "fail", props, ch); err != nil {
		return "", mapErr(err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the start job: %w", ctx.Err())
	}
}

// Stop stops the runtime's unit (job mode "replace", which also cancels a
// pending start or automatic restart) and waits until the stop job is done:
// the unit is then inactive, and a transient unit is unloaded right after.
// Results: nil; ErrNoSuchUnit when no unit is loaded (already stopped); a
// *JobError; a context error. A unit whose process exits non-zero on SIGTERM,
// or is killed after the stop timeout, ends failed and stays loaded: call
// ResetFailed to clear it. The job can take up to StopWait(stop timeout): a
// ctx deadline shorter than that (the default is 10 s) can end the wait
// while the unit is still stopping.
func (c *Conn) Stop(ctx context.Context, name string) error {
	return c.runJob(ctx, "stop", name, c.sd.StopUnitContext)
}

// runJob queues a job (verb: "start" or "stop") on the runtime's unit in
// mode "replace" through queue (go-systemd's StartUnitContext or
// StopUnitContext) and waits for its result: nil when done; a *JobError
// with the unit's status after the job otherwise; a context error when ctx
// (default jobTimeout) ends first.
func (c *Conn) runJob(ctx context.Context, verb, name string, queue func(ctx context.Context, unit, mode string, ch chan<- string) (int, error)) error {
	unit, err := unitOf(verb, name)
	if err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx, jobTimeout)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := queue(ctx, unit, "replace", ch); err != nil {
		return c.wrap(verb, unit, err)
	}
	select {
	case r := <-ch:
		if r == JobDone {
			return nil
		}
		je := &JobError{Unit: unit, Job: verb, Result: r}
		if st, err := c.Status(ctx, name); err == nil {
			je.Status = st
		}
		return je
	case <-ctx.Done():
		return fmt.Errorf("%s %s: waiting for the %s job: %w", verb, unit, verb, ctx.Err())
	}
}

// ResetFailed clears the failed state of the runtime's unit (and its start
// rate limit); a failed transient unit is then unloaded. Results: nil (also
// for a unit that is loaded but not failed); ErrNoSuchUnit when no unit is
// loaded.
func (c *Conn) ResetFailed(ctx context.Context, name string) error {
	unit, err := unitOf("reset-failed", name)
	if err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx, queryTimeout)
	defer cancel()
	if err := c.sd.ResetFailedUnitContext(ctx, unit); err != nil {
		return c.wrap("reset-failed", unit, err)
	}
	return nil
}

// Status reads the runtime's unit in one GetAll round trip (Unit and Service
// interfaces). Results: the Status; ErrNoSuchUnit when the unit is not loaded
// (LoadState not-found); an error when a property has an unexpected type.
//
// Asking about a unit that is not loaded makes systemd load a "not-found"
// stub for a moment (UnitNew, then UnitRemoved); a Watch ignores those.
func (c *Conn) Status(ctx context.Context, name string) (Status, error) {
	unit, err := unitOf("status", name)
	if err != nil {
		return Status{}, err
	}
	ctx, cancel := withDefault(ctx, queryTimeout)
	defer cancel()
	props, err := c.sd.GetAllPropertiesContext(ctx, unit)
	if err != nil {
		return Status{}, c.wrap("status", unit, err)
	}
	return statusFrom(unit, props)
}

// statusFrom decodes the GetAll result of unit.
func statusFrom(unit string, props map[string]any) (Status, error) {
	return statusFromLookup(unit, mapLookup(props))
}

// statusFromLookup decodes the GetAll result of unit, read through get.
func statusFromLookup(unit string, get lookup) (Status, error) {
	st, err := decodeReply(get)
	if err != nil {
		return Status{}, fmt.Errorf("status %s: %w", unit, err)
	}
	return st, nil
}

// decodeReply decodes a GetAll result read through get: ErrNoSuchUnit for a
// unit that is not loaded (LoadState not-found).
func decodeReply(get lookup) (Status, error) {
	if ls, _ := get("LoadState"); ls == LoadNotFound {
		return Status{}, ErrNoSuchUnit
	}
	return decodeLookup(get)
}

// UnitByPID returns the name of the unit whose cgroup holds pid (any unit,
// not only socketley's: use RuntimeName on the result). Results: the unit
// name; ErrNoSuchUnit when pid belongs to no unit of this manager (or does
// not exist); ErrInvalid for pid ≤ 0.
func (c *Conn) UnitByPID(ctx context.Context, pid int) (string, error) {
	if pid <= 0 || pid > 1<<31-1 {
		return "", fmt.Errorf("unit of pid %d: %w: not a pid", pid, ErrInvalid)
	}
	ctx, cancel := withDefault(ctx, queryTimeout)
	defer cancel()
	path, err := c.sd.GetUnitByPID(ctx, uint32(pid))
	if err != nil {
		return "", c.wrap("unit of pid", strconv.Itoa(pid), err)
	}
	unit, ok := unitFromPath(path)
	if !ok {
		return "", fmt.Errorf("unit of pid %d: unexpected object path %s", pid, path)
	}
	return unit, nil
}

// Subscribe opens a Watch on a connection of its own to the same bus, filled
// with the current units before it returns (ctx bounds that, default 10 s).
// The caller must Close the Watch.
func (c *Conn) Subscribe(ctx context.Context) (*Watch, error) {
	return subscribe(ctx, c.scope, c.addr)
}

// wrap prefixes a call error with the operation and the subject, maps D-Bus
// error names to sentinels, and marks errors of a dead connection ErrNoBus.
func (c *Conn) wrap(op, subject string, err error) error {
	err = mapErr(err)
	if !errors.Is(err, ErrNoBus) && !isCtxErr(err) && !c.sd.Connected() {
		err = noBus("connection lost", err)
	}
	return fmt.Errorf("%s %s: %w", op, subject, err)
}

// unitOf validates a runtime name and returns its unit.
func unitOf(op, name string) (string, error) {
	unit := Name(name)
	if !validRuntime(name) {
		return "", fmt.Errorf("%s %s: %w: runtime name %q", op, unit, ErrInvalid, name)
	}
	return unit, nil
}

// withDefault returns ctx with a deadline d from now unless it has one.
func withDefault(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// sessionBusAddress finds the user's session bus.
func sessionBusAddress() (string, error) {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return a, nil
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		p := filepath.Join(dir, "bus")
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == fs.ModeSocket {
			return "unix:path=" + godbus.EscapeBusAddressValue(p), nil
		}
	}
	return "", noBus("no user D-Bus session bus: set DBUS_SESSION_BUS_ADDRESS or XDG_RUNTIME_DIR "+
		"(log in with a systemd user session, or run scripts/systemd-sandbox.sh)", nil)
}

// dialBus opens, authenticates and registers (Hello) a private connection to
// the bus of scope. life ends the connection when cancelled.
func dialBus(life context.Context, scope Scope, addr string, opts ...godbus.ConnOption) (*godbus.Conn, error) {
	opts = append([]godbus.ConnOption{godbus.WithContext(life)}, opts...)
	var (
		conn *godbus.Conn
		err  error
	)
	if scope == System {
		conn, err = godbus.SystemBusPrivate(opts...)
	} else {
		conn, err = godbus.Dial(addr, opts...)
	}
	if err != nil {
		return nil, err
	}
	// EXTERNAL with the numeric uid: no user database lookup.
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// connect runs open (which blocks without a deadline of its own) and returns
// its result, or ctx's error when ctx ends first; then end is called to
// abort open, and whatever open still returns is closed.
func connect[T any](ctx context.Context, end context.CancelFunc, open func() (T, error), closeFn func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := open()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		end()
		go func() {
			if r := <-ch; r.err == nil {
				closeFn(r.v)
			}
		}()
		var zero T
		return zero, ctx.Err()
	}
}

// ping waits until systemd answers a property read; the first call on a
// fresh connection can go unanswered, so each attempt gets a short deadline.
func ping(ctx context.Context, sd *sdbus.Conn) error {
	var err error
	for range pingAttempts {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		_, err = sd.SystemStateContext(pctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return mapErr(err)
}

// SetLimits changes the cgroup limits of the runtime's loaded unit at once
// (SetUnitProperties with runtime=true: until the unit goes away, which is
// what a transient unit's properties last anyway): MemoryMax, MemoryHigh,
// CPUQuota, CPUWeight and TasksMax, those that l sets. l.NOFILE is
// refused (ErrInvalid): systemd cannot change LimitNOFILE= on a loaded
// unit ("Cannot set property LimitNOFILE"); it takes effect when a unit is
// created with it (Start). Results: nil; ErrNoSuchUnit when no unit is
// loaded; systemd's error otherwise. Nothing to set is nil, without a call. properties are
// -p settings (canonical KEY=VALUE); only the live ones (wire.PropertyRule.Live:
// IOWeight, MemorySwapMax) are sent.
func (c *Conn) SetLimits(ctx context.Context, name string, l wire.Limits, properties []string) error {
	unit, err := unitOf("set limits of", name)
	if err != nil {
		return err
	}
	if l.NOFILE != 0 {
		return fmt.Errorf("set limits of %s: %w: LimitNOFILE cannot change on a loaded unit", unit, ErrInvalid)
	}
	props := limitProperties(l)
	live, err := liveProperties(properties)
	if err != nil {
		return fmt.Errorf("set limits of %s: %w", unit, err)
	}
	props = append(props, live...)
	if len(props) == 0 {
		return nil
	}
	ctx, cancel := withDefault(ctx, queryTimeout)
	defer cancel()
	// systemd refuses a unit that is not loaded (NoSuchUnit): no drop-in
	// is left for a unit of that name (checked with systemd 252).
	if err := c.sd.SetUnitPropertiesContext(ctx, unit, true, props...); err != nil {
		return c.wrap("set limits of", unit, err)
	}
	return nil
}

// DefaultLimits returns the limits the manager gives a unit that sets none
// of its own: TasksMax from DefaultTasksMax and NOFILE from
// DefaultLimitNOFILE (the hard limit); wire.Infinity for infinity. Two
// D-Bus round trips with the bus's default timeout.
func (c *Conn) DefaultLimits() (wire.Limits, error) {
	var l wire.Limits
	for _, p := range []struct {
		name string
		out  *uint64
	}{{"DefaultTasksMax", &l.TasksMax}, {"DefaultLimitNOFILE", &l.NOFILE}} {
		v, err := c.sd.GetManagerProperty(p.name)
		if err != nil {
			return wire.Limits{}, c.wrap("read the manager's", p.name, err)
		}
		// The variant's text form: "@t 4915".
		n, err := strconv.ParseUint(strings.TrimPrefix(v, "@t "), 10, 64)
		if err != nil {
			return wire.Limits{}, fmt.Errorf("read the manager's %s: %q is not a number", p.name, v)
		}
		*p.out = n
	}
	return l, nil
}
