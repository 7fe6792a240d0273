package manager

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// Limits of the control socket.
const (
	maxConns = 128 // concurrent connections
	// writeDeadline bounds writing one reply to a client that stopped reading.
	writeDeadline = 10 * time.Second
)

// readDeadline bounds the wait for each request line (a variable for tests).
var readDeadline = 10 * time.Second

// listen creates the control socket the way tailscale's safesocket does:
// refuse when a daemon answers on it, remove a stale file, bind, then tighten
// the mode. The directory is created private first, so the socket is never
// reachable with a wider mode.
func (m *Manager) listen() (net.Listener, error) {
	sock := m.cfg.Socket
	dir := filepath.Dir(sock)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		perm := os.FileMode(0o700)
		if m.cfg.Mode == paths.System {
			perm = 0o750
		}
		if err := os.MkdirAll(dir, perm); err != nil {
			return nil, fmt.Errorf("create socket directory: %w", err)
		}
		if m.cfg.Mode == paths.System {
			if gid := m.socketGID(); gid >= 0 {
				_ = os.Chown(dir, 0, gid)
			}
		}
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("a socketley daemon is already listening on %s; stop it first (or pass --socket)", sock)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", sock, err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	mode := os.FileMode(0o600)
	if m.cfg.Mode == paths.System {
		mode = 0o660
		if gid := m.socketGID(); gid >= 0 {
			if err := os.Chown(sock, 0, gid); err != nil {
				_ = ln.Close()
				return nil, fmt.Errorf("chown %s: %w", sock, err)
			}
		} else {
			m.log.Warn("group missing: only root can use the control socket", "group", m.cfg.SocketGroup)
		}
	}
	if err := os.Chmod(sock, mode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", sock, err)
	}
	return ln, nil
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
	g, err := user.LookupGroup(m.cfg.SocketGroup)
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

// serve accepts connections until ctx ends, then waits for them.
func (m *Manager) serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConns)
	refusing := make(chan struct{}, 16)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				m.log.Error("accept", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			// Refuse with a reason, from a few goroutines at most; past
			// that, a flood is just closed.
			select {
			case refusing <- struct{}{}:
				go func() {
					defer func() { <-refusing }()
					refuse(c, bufio.NewReader(c), "too many connections to the socketley daemon; try again")
				}()
			default:
				_ = c.Close()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.handleConn(ctx, c.(*net.UnixConn))
		}()
	}
	wg.Wait()
}

// handleConn serves one connection: identity once at accept, then one reply
// per request line until the client closes.
func (m *Manager) handleConn(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	caller, err := peerCred(c)
	if err != nil {
		m.log.Error("peer credentials", "err", err)
		return
	}
	r := bufio.NewReaderSize(c, 4096)
	if err := m.authorizeConn(caller); err != nil {
		refuse(c, r, err.Error())
		return
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(readDeadline))
		line, err := wire.ReadLine(r)
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
				_ = wire.WriteReply(c, wire.CodeInvalid, fmt.Appendf(nil, "request line longer than %d bytes\n", wire.MaxLine))
			}
			return
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		code, payload := m.dispatch(ctx, caller, line)
		_ = c.SetWriteDeadline(time.Now().Add(writeDeadline))
		if err := wire.WriteReply(c, code, payload); err != nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
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
	if strings.HasPrefix(strings.TrimLeft(line, " \t"), "{") {
		var req wire.Request
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return jsonReply(nil, errorf(ErrInvalid, "malformed JSON request: %v", err))
		}
		if dec.More() {
			return jsonReply(nil, errorf(ErrInvalid, "trailing data after the JSON request"))
		}
		res, err := m.handle(ctx, caller, req)
		return jsonReply(res, err)
	}
	req, err := parseLegacy(line)
	if err != nil {
		return wire.CodeInvalid, []byte(err.Error() + "\n")
	}
	res, err := m.handle(ctx, caller, req)
	return textReply(req, res, err)
}

func jsonReply(res *wire.Result, err error) (byte, []byte) {
	if res == nil {
		res = &wire.Result{}
	}
	code := wire.CodeOK
	if err != nil {
		code = replyCode(err)
		res.Error = err.Error()
	}
	b, merr := json.Marshal(res)
	if merr != nil {
		return wire.CodeFatal, []byte(`{"error":"encode reply"}`)
	}
	return code, b
}

// replyCode maps an error to the wire's exit code: 1 for the caller's
// mistakes (invalid, not found, exists, denied), 2 for everything else.
func replyCode(err error) byte {
	if err == nil {
		return wire.CodeOK
	}
	if errorsIsAny(err, ErrInvalid, ErrNotFound, ErrExists, ErrDenied, ErrFailed) {
		return wire.CodeInvalid
	}
	return wire.CodeFatal
}
