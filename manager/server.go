package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/activation"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// Limits of the control socket.
const (
	maxConns = 128 // concurrent connections
	// maxConnsPerUID is the most connections one non-root uid may hold.
	maxConnsPerUID = 16
	// rootReserve slots of maxConns are kept for root, and attachReserve
	// for attach requests (a starting runtime's), which other users'
	// connections may not take: idle clients never lock out root or an
	// attach. The rest (maxSharedConns) is shared by everyone.
	rootReserve    = 8
	attachReserve  = 16
	maxSharedConns = maxConns - rootReserve - attachReserve
	// writeDeadline bounds writing one reply to a client that stopped reading.
	writeDeadline = 10 * time.Second
)

// readDeadline is the idle limit of a connection: how long the daemon
// waits for the next complete request after accepting the connection or
// answering the previous one. Empty lines and partial lines do not reset it
// (a variable for tests).
var readDeadline = wire.IdleLimit

// Shutdown: the daemon stops accepting, gives each open connection drainIdle
// to send a request, answers requests in flight for up to drainWait, then
// closes what is left. Connections not yet accepted stay in the socket's
// backlog for the next daemon (socketley.socket holds it).
const (
	drainIdle = 500 * time.Millisecond
	drainWait = 10 * time.Second
)

// controlSocket is the daemon's listening control socket.
type controlSocket struct {
	ln net.Listener
	// inherited is set when systemd passed the socket (socketley.socket):
	// systemd owns the file and keeps listening while the daemon restarts.
	inherited bool
	// path, dev and ino identify the file this daemon bound, so that on
	// exit it removes its own socket and never a successor's.
	path     string
	dev, ino uint64
}

// close closes the listener and removes the socket file this daemon bound,
// if it is still that file.
func (s *controlSocket) close() {
	_ = s.ln.Close()
	if s.inherited {
		return
	}
	var st unix.Stat_t
	if unix.Lstat(s.path, &st) == nil && st.Dev == s.dev && st.Ino == s.ino {
		_ = os.Remove(s.path)
	}
}

// listen takes the control socket: the one systemd passed (socket
// activation: LISTEN_FDS, matched by path), else one bound here.
func (m *Manager) listen() (*controlSocket, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("sockets passed by systemd: %w", err)
	}
	var found net.Listener
	var passed []string
	for _, ln := range lns {
		if ln == nil {
			continue
		}
		if a, ok := ln.Addr().(*net.UnixAddr); ok && a.Name == m.cfg.Socket && found == nil {
			found = ln
			continue
		}
		passed = append(passed, ln.Addr().String())
		_ = ln.Close()
	}
	if found != nil {
		return &controlSocket{ln: found, inherited: true, path: m.cfg.Socket}, nil
	}
	if len(passed) > 0 {
		return nil, fmt.Errorf("systemd passed the socket(s) %s but not the control socket %s: make ListenStream= of socketley.socket and the daemon's --socket agree",
			strings.Join(passed, ", "), m.cfg.Socket)
	}
	return m.bind()
}

// bind creates the control socket the way tailscale's safesocket does:
// refuse when a daemon answers on it, remove a stale socket, bind, then
// tighten the mode. The directory must be a real directory of this daemon's
// user that nobody else may write to (or is created here, private first), so
// nobody can swap the socket for a symlink before the chown and chmod.
func (m *Manager) bind() (*controlSocket, error) {
	sock := m.cfg.Socket
	if err := m.socketDir(filepath.Dir(sock)); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("a socketley daemon is already listening on %s; stop it first (or pass --socket)", sock)
	}
	if fi, err := os.Lstat(sock); err == nil && fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%s exists and is not a socket (%s); refusing to replace it: remove it or pass another --socket", sock, fi.Mode().Type())
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", sock, err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	cs := &controlSocket{ln: ln, path: sock}
	var st unix.Stat_t
	if err := unix.Lstat(sock, &st); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("stat %s: %w", sock, err)
	}
	cs.dev, cs.ino = st.Dev, st.Ino
	mode := os.FileMode(0o600)
	if m.cfg.Mode == paths.System {
		mode = 0o660
		if gid := m.socketGID(); gid >= 0 {
			if err := os.Lchown(sock, 0, gid); err != nil {
				cs.close()
				return nil, fmt.Errorf("chown %s: %w", sock, err)
			}
		} else {
			m.log.Warn("group missing: only root can use the control socket", "group", m.cfg.SocketGroup)
		}
	}
	if err := os.Chmod(sock, mode); err != nil {
		cs.close()
		return nil, fmt.Errorf("chmod %s: %w", sock, err)
	}
	return cs, nil
}

// socketDir makes sure dir may hold the control socket: a missing directory
// is created (0700, or 0750 root:GROUP in system mode); an existing one must
// be a real directory (not a symlink) owned by this daemon's user and not
// writable by group or others. It is never chowned or chmodded.
func (m *Manager) socketDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		perm := os.FileMode(0o700)
		if m.cfg.Mode == paths.System {
			perm = 0o750
		}
		if err := os.MkdirAll(filepath.Dir(dir), perm); err != nil {
			return fmt.Errorf("create socket directory: %w", err)
		}
		if err := os.Mkdir(dir, perm); err != nil {
			return fmt.Errorf("create socket directory: %w", err)
		}
		if m.cfg.Mode == paths.System {
			if gid := m.socketGID(); gid >= 0 {
				_ = os.Lchown(dir, 0, gid)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	return checkSocketDir(dir, fi, os.Geteuid())
}

// checkSocketDir refuses a socket directory that is a symlink, not a
// directory, owned by another user than uid, or writable by group or others.
func checkSocketDir(dir string, fi os.FileInfo, uid int) error {
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return errorf(ErrInvalid, "socket directory %s is a symlink; refusing to use it (pass a --socket in a real directory)", dir)
	case !fi.IsDir():
		return errorf(ErrInvalid, "socket directory %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errorf(ErrInvalid, "socket directory %s: cannot read its owner", dir)
	}
	if int(st.Uid) != uid {
		return errorf(ErrInvalid, "socket directory %s is owned by uid %d, not by this daemon's uid %d; refusing to use it (pass a --socket in a directory you own)", dir, st.Uid, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return errorf(ErrInvalid, "socket directory %s is writable by group or others (mode %04o); refusing to use it (chmod go-w %s, or pass another --socket)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// socketGID resolves the socket group (-1 when it does not exist). A group
// that was found is cached; a missing one is looked up again next time, so
// a group created after the daemon started takes effect. Safe for
// concurrent use (connections authorize in parallel).
func (m *Manager) socketGID() int {
	m.groupMu.Lock()
	defer m.groupMu.Unlock()
	if m.group >= 0 {
		return m.group
	}
	g, err := lookupGroup(m.cfg.SocketGroup)
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	m.group = gid
	return gid
}

// serve accepts connections until ctx ends, then waits for them. Each
// connection is admitted by its caller's uid (see connSlots) or refused
// with the reason.
func (m *Manager) serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	slots := newConnSlots()
	refusing := make(chan struct{}, 16)
	credOf := m.credOf
	if credOf == nil {
		credOf = peerCred
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				m.log.Error("accept", "err", err)
				// A backoff, not a poll: accept fails this way when the
				// daemon is out of file descriptors (EMFILE, ENFILE) or
				// memory, and retrying at once would spin and flood the
				// log; connections wait in the backlog meanwhile.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
		uc := c.(*net.UnixConn)
		caller, err := credOf(uc)
		if err != nil {
			m.log.Error("peer credentials", "err", err)
			_ = c.Close()
			continue
		}
		kind, why := slots.admit(caller)
		if why != "" {
			// Refuse with a reason, from a few goroutines at most; past
			// that, a flood is just closed.
			select {
			case refusing <- struct{}{}:
				go func() {
					defer func() { <-refusing }()
					refuse(c, bufio.NewReader(c), why)
				}()
			default:
				_ = c.Close()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer slots.release(caller, kind)
			m.handleConn(ctx, uc, caller, kind)
		}()
	}
	wg.Wait()
}

// slotKind is the kind of slot a connection holds.
type slotKind int

const (
	slotShared slotKind = iota // any request
	slotRoot                   // root's reserve: any request
	slotAttach                 // the attach reserve: one attach request only
)

// connSlots counts the open connections, in total, per uid and per kind of
// slot. Safe for concurrent use.
type connSlots struct {
	mu     sync.Mutex
	open   int         // every connection held
	shared int         // non-root connections in the shared slots
	attach int         // connections in the attach reserve
	perUID map[int]int // non-root connections by uid
}

func newConnSlots() *connSlots { return &connSlots{perUID: map[int]int{}} }

// admit takes a slot for caller, or returns why there is none. Root may
// use every slot; any other uid at most maxConnsPerUID, in the shared
// slots, or, when they are full, one of the attach reserve (which then
// serves one attach request only).
func (s *connSlots) admit(caller Caller) (slotKind, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const busy = "too many connections to the socketley daemon; try again"
	if s.open >= maxConns {
		return 0, busy
	}
	if caller.root() {
		s.open++
		return slotRoot, ""
	}
	if s.perUID[caller.UID] >= maxConnsPerUID {
		return 0, fmt.Sprintf("uid %d already has %d connections open to the socketley daemon (the per-user limit); close some and try again",
			caller.UID, maxConnsPerUID)
	}
	var kind slotKind
	switch {
	case s.shared < maxSharedConns:
		kind = slotShared
		s.shared++
	case s.attach < attachReserve:
		kind = slotAttach
		s.attach++
	default:
		return 0, busy
	}
	s.open++
	s.perUID[caller.UID]++
	return kind, ""
}

// release gives back the slot admit took.
func (s *connSlots) release(caller Caller, kind slotKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	switch kind {
	case slotRoot:
		return
	case slotShared:
		s.shared--
	case slotAttach:
		s.attach--
	}
	if s.perUID[caller.UID]--; s.perUID[caller.UID] <= 0 {
		delete(s.perUID, caller.UID)
	}
}

// errAttachOnly refuses a request other than attach on a connection in the
// attach reserve.
var errAttachOnly = wire.Error(ErrInvalid, "too many connections to the socketley daemon; only attach is served now: try again")

// handleConn serves one connection of caller: one reply per complete
// request line until the client closes, is idle for readDeadline (only a
// complete request resets it) or, in the attach reserve, has had its one
// request.
func (m *Manager) handleConn(ctx context.Context, c *net.UnixConn, caller Caller, kind slotKind) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReaderSize(c, 4096)
	if err := m.authorizeConn(caller); err != nil {
		refuse(c, r, err.Error())
		return
	}
	var allow func(wire.Request) error
	if kind == slotAttach {
		allow = func(req wire.Request) error {
			if req.Cmd != wire.CmdAttach {
				return errAttachOnly
			}
			return nil
		}
	}
	draining := m.gate.drainChan()
	if draining != nil {
		// On shutdown a connection gets drainIdle to send its request (an
		// accepted client is answered, not reset), then closes after the reply.
		stopDrain := make(chan struct{})
		defer close(stopDrain)
		go func() {
			select {
			case <-draining:
				_ = c.SetReadDeadline(time.Now().Add(drainIdle))
			case <-stopDrain:
			}
		}()
	}
	_ = c.SetReadDeadline(time.Now().Add(readDeadline))
	if closed(draining) {
		_ = c.SetReadDeadline(time.Now().Add(drainIdle))
	}
	for {
		line, err := wire.ReadLine(r)
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
				_ = wire.WriteReply(c, wire.CodeInvalid, fmt.Appendf(nil, "request line longer than %d bytes\n", wire.MaxLine))
			}
			return
		}
		if strings.TrimSpace(line) == "" {
			continue // not a request: the idle limit runs on
		}
		if req, ok := followRequest(line); ok && allow == nil {
			m.followEvents(ctx, c, r, caller, req) // events -f: the connection is the stream's
			return
		}
		code, payload := m.dispatchIf(ctx, caller, line, allow)
		_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
		if err := wire.WriteReply(c, code, payload); err != nil {
			return
		}
		if ctx.Err() != nil || kind == slotAttach || closed(draining) {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(readDeadline))
		if closed(draining) {
			_ = c.SetReadDeadline(time.Now().Add(drainIdle))
		}
	}
}

// closed reports whether ch is closed (false for nil).
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// refuse answers a connection's first request with msg (code 1) and closes
// it. It reads the request first (for at most a second): closing before the
// client has written would hand it a broken pipe instead of the reason.
func refuse(c net.Conn, r *bufio.Reader, msg string) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = wire.ReadLine(r)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_ = wire.WriteReply(c, wire.CodeInvalid, []byte(msg+"\n"))
}

// dispatch runs one request line in either form and builds the reply.
func (m *Manager) dispatch(ctx context.Context, caller Caller, line string) (byte, []byte) {
	return m.dispatchIf(ctx, caller, line, nil)
}

// dispatchIf is dispatch with allow, when not nil, deciding on the parsed
// request before it runs (an error is the reply).
func (m *Manager) dispatchIf(ctx context.Context, caller Caller, line string, allow func(wire.Request) error) (byte, []byte) {
	var req wire.Request
	var err error
	if m.cfg.OnRequest != nil {
		defer func(start time.Time) { m.cfg.OnRequest(req.Cmd, wire.ClassOf(err), time.Since(start)) }(time.Now())
	}
	req, form, err := wire.ParseRequest(line)
	reply := textReply
	if form == wire.FormJSON {
		reply = func(_ wire.Request, res *wire.Result, err error) (byte, []byte) { return jsonReply(res, err) }
	}
	if err != nil {
		return reply(req, nil, err)
	}
	if allow != nil {
		if err = allow(req); err != nil {
			return reply(req, nil, err)
		}
	}
	res, err := m.handleGated(ctx, caller, req)
	return reply(req, res, err)
}

// handleGated runs req once the daemon has started far enough for it (see
// bootGate.await).
func (m *Manager) handleGated(ctx context.Context, caller Caller, req wire.Request) (*wire.Result, error) {
	if err := m.gate.await(ctx, req); err != nil {
		return nil, err
	}
	return m.handle(ctx, caller, req)
}

func jsonReply(res *wire.Result, err error) (byte, []byte) {
	if res == nil {
		res = &wire.Result{}
	}
	code := wire.CodeOK
	if err != nil {
		res.Class = wire.ClassOf(err)
		code = res.Class.Code()
		res.Error = err.Error()
	}
	// About 400 bytes a runtime: one allocation for an ls of any size.
	b, merr := res.AppendJSON(make([]byte, 0, 256+512*len(res.Runtimes)))
	if merr != nil {
		return wire.CodeFatal, []byte(`{"error":"encode reply"}`)
	}
	return code, b
}

// replyCode maps an error to the wire's exit code through its class
// (wire.ErrorClass.Code: 1 for what the caller can act on, 2 for the
// daemon's own failures).
func replyCode(err error) byte { return wire.ClassOf(err).Code() }
