package units

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/internal/proc"
)

// The initial fill of a Watch reads the units over systemd's private socket
// when it can, the way systemctl talks to its manager: without the bus daemon
// in between, a Properties.Get costs a fraction of its cost on the bus, and
// ten of them per unit (the properties a Status follows, besides the states
// of the listing) cost less than a third of one GetAll of all ~400
// properties (1,000 units: ~0.45 s instead of ~1.1 s, in the sandbox). The
// signals, Refresh and Resync stay on the bus connection of the Watch.
//
// This is not a workaround for a systemd version and is not gated on it:
// the cost it avoids is the bus daemon's and GetAll's, in every version
// (systemctl does the same). What depends on the version is which
// properties exist (privatePropsFor).

// privateProps are read one by one in a private fill; Id and the load,
// active and sub states come from the listing.
var privateProps = [...][2]string{
	{serviceIface, "Result"}, {serviceIface, "Restart"}, {serviceIface, "RestartUSec"},
	{serviceIface, "MainPID"}, {serviceIface, "NRestarts"},
	{serviceIface, "ExecMainCode"}, {serviceIface, "ExecMainStatus"},
	{serviceIface, "ExecMainStartTimestamp"}, {serviceIface, "ExecStart"},
	{unitIface, "ActiveEnterTimestamp"}, {unitIface, "StateChangeTimestamp"},
}

// nativeProps are read too from a manager of NativeBackoffVersion or later
// (older ones answer UnknownProperty, which would send every unit to the
// slower read over the bus).
var nativeProps = [...][2]string{
	{serviceIface, "RestartSteps"}, {serviceIface, "RestartUSecNext"},
}

// privatePropsFor returns the properties a private fill reads from a
// manager of the given major version (0: unknown, the older set).
func privatePropsFor(version int) [][2]string {
	props := privateProps[:]
	if version >= NativeBackoffVersion {
		props = append(slices.Clone(props), nativeProps[:]...)
	}
	return props
}

// privateInFlight bounds the calls a private fill keeps pending (there is no
// bus daemon, and no limit of its own, in between).
const privateInFlight = 128

var (
	// noPrivateFill is set by tests, to exercise the fill over the bus.
	noPrivateFill atomic.Bool
	// privateFills counts the fills done over the private socket (tests).
	privateFills atomic.Int64
)

// privateSocket returns the path of the private socket of the manager of
// scope ("" when unknown).
func privateSocket(scope Scope) string {
	if scope == System {
		return "/run/systemd/private"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "systemd", "private")
	}
	return ""
}

// dialPrivate connects to the private socket at path, and checks that the
// process at the other end is pid (systemd's on the bus): a private socket
// of another manager must not be read. life ends the connection.
func dialPrivate(ctx, life context.Context, path string, pid uint32) (*godbus.Conn, *bufferedConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, nil, err
	}
	uc := c.(*net.UnixConn)
	cred, err := proc.PeerCred(uc, nil)
	switch {
	case err != nil:
		c.Close()
		return nil, nil, fmt.Errorf("peer credentials: %w", err)
	case cred.Pid <= 0 || uint32(cred.Pid) != pid:
		c.Close()
		return nil, nil, fmt.Errorf("%s belongs to pid %d, systemd on the bus is pid %d", path, cred.Pid, pid)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl) // for the handshake
	}
	bc := &bufferedConn{UnixConn: uc, r: bufio.NewReaderSize(uc, 64<<10)}
	conn, err := godbus.NewConn(bc, godbus.WithContext(life))
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	// EXTERNAL with the numeric uid; a direct connection has no Hello.
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	bc.buffer()
	return conn, bc, nil
}

// bufferedConn reads a connection through a buffer and, once buffer is
// called, writes through one too: godbus writes each message with a call
// of its own, and a burst of calls then goes out with one write. The
// caller must flush before it waits for replies.
type bufferedConn struct {
	*net.UnixConn
	r  *bufio.Reader
	mu sync.Mutex
	w  *bufio.Writer // nil: write through
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return c.UnixConn.Write(p)
	}
	return c.w.Write(p)
}

func (c *bufferedConn) buffer() {
	c.mu.Lock()
	c.w = bufio.NewWriterSize(c.UnixConn, 64<<10)
	c.mu.Unlock()
}

func (c *bufferedConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil
	}
	return c.w.Flush()
}

// readPrivate reads the listed units (loaded socketley units) over conn: the
// states from the listing, props with Properties.Get calls, pipelined. It returns the units that were read, and the names of those
// that could not be (to be read over the bus).
func readPrivate(ctx context.Context, conn *godbus.Conn, bc *bufferedConn, rows []listedUnit, props [][2]string) ([]Status, []string) {
	sts := make([]Status, len(rows))
	bad := make([]bool, len(rows))
	index := make(map[godbus.ObjectPath]int, len(rows))
	for i, u := range rows {
		name, _ := RuntimeName(u.Name)
		sts[i] = Status{Unit: own(u.Name), Name: own(name), LoadState: own(u.LoadState),
			ActiveState: own(u.ActiveState), SubState: own(u.SubState)}
		index[u.Path] = i
	}
	apply := func(call *godbus.Call) {
		i, ok := index[call.Path]
		if !ok {
			return
		}
		var v godbus.Variant
		if call.Err != nil || len(call.Args) != 2 || godbus.Store(call.Body, &v) != nil {
			bad[i] = true
			return
		}
		prop, _ := call.Args[1].(string)
		if _, err := applyProp(&sts[i], prop, v.Value()); err != nil {
			bad[i] = true
		}
	}
	total := len(rows) * len(props)
	ch := make(chan *godbus.Call, min(privateInFlight, total))
	for sent, recv := 0, 0; recv < total; {
		for sent < total && sent-recv < cap(ch) {
			i, p := sent/len(props), props[sent%len(props)]
			conn.Object(busName, rows[i].Path).GoWithContext(ctx, propertiesIface+".Get", 0, ch, p[0], p[1])
			sent++
		}
		if err := bc.flush(); err != nil {
			conn.Close() // every pending call is then delivered with an error
		}
		// Each call is delivered once (see readUnits). Take every reply
		// that is in, so that the next calls go out together.
		apply(<-ch)
		recv++
		for more := true; more && recv < total; {
			select {
			case call := <-ch:
				apply(call)
				recv++
			default:
				more = false
			}
		}
	}
	out := sts[:0]
	var missing []string
	for i, st := range sts {
		if bad[i] {
			missing = append(missing, st.Name)
			continue
		}
		derive(&st)
		out = append(out, st)
	}
	return out, missing
}
