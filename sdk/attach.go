package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables set by the daemon in every managed unit.
const (
	EnvManaged = "SOCKETLEY_MANAGED"
	EnvName    = "SOCKETLEY_NAME"
	EnvSocket  = "SOCKETLEY_SOCKET"
)

// Runtime types accepted by Attach.
const (
	TypeServer = "server"
	TypeClient = "client"
	TypeProxy  = "proxy"
	TypeCache  = "cache"
)

// Managed reports whether this process runs as a socketley-managed unit
// (SOCKETLEY_MANAGED is set and non-empty).
func Managed() bool { return os.Getenv(EnvManaged) != "" }

// attachState remembers an unmanaged attach so Detach can undo it.
type attachState struct {
	mu       sync.Mutex
	name     string
	socket   string
	attached bool
}

// A process attaches as itself, once, like the C++ SDK; this is the one piece
// of process-wide state the SDK keeps, so that Detach can undo Attach.
var current attachState

// Attach reports this process to the daemon as a runtime of type typ
// (server, client, proxy, cache) listening on port. It is AttachContext with a
// background context, so it retries for DefaultAttachWait (see AttachContext).
// It installs no signal handler; call Detach when the program stops serving.
func Attach(name, typ string, port int) error {
	return AttachContext(context.Background(), name, typ, port)
}

// AttachContext reports this process to the daemon. When SOCKETLEY_NAME is
// set it overrides name; when SOCKETLEY_MANAGED is set the attach is sent as
// a managed (re-)attach of that unit. Errors wrap ErrUnreachable or
// ErrRefused and say why.
//
// Attaching has no process-wide side effect: it installs no signal handler
// and never re-raises a signal, so a program's own SIGTERM handling (say
// signal.NotifyContext followed by a graceful shutdown) works as written.
// An unmanaged attach is undone by Detach, which the program calls itself
// when it stops serving, typically `defer sdk.Detach()` in main or right
// after its server returns. A program that exits without Detach is not
// harmed: the daemon notices that the attached pid is gone. A managed
// process needs no Detach (the unit is the entry).
//
// A daemon that is not there yet (its socket is missing or refuses the
// connection: the daemon is starting, restarting or being upgraded) is
// retried with backoff, 10 ms doubling to 500 ms, until ctx's deadline, or
// for DefaultAttachWait when ctx has none. A reply from the daemon, even a
// refusal, is never retried.
func AttachContext(ctx context.Context, name, typ string, port int) error {
	if env := os.Getenv(EnvName); env != "" {
		name = env
	}
	if name == "" {
		return fmt.Errorf("attach: empty name: %w", ErrRefused)
	}
	if strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(typ, " \t\r\n") {
		return fmt.Errorf("attach %q: name and type may not contain spaces: %w", name, ErrRefused)
	}
	managed := Managed()
	line := fmt.Sprintf("attach %s %s %d --pid %d", typ, name, port, os.Getpid())
	if managed {
		line += " --managed"
	}
	c := NewClient(os.Getenv(EnvSocket))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultAttachWait)
		defer cancel()
	}
	code, text, err := lineRetrying(ctx, c, line, nil)
	if err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("attach %s: %w", name, &ReplyError{Code: code, Message: strings.TrimSpace(text)})
	}
	if !managed {
		current.mu.Lock()
		current.name, current.socket, current.attached = name, c.Socket(), true
		current.mu.Unlock()
	}
	return nil
}

// Attach retries: DefaultAttachWait bounds the retries when the context has
// no deadline; the delay between two tries starts at attachRetryMin and
// doubles up to attachRetryMax.
const (
	// DefaultAttachWait is how long Attach keeps retrying a daemon that is
	// not there yet when the context has no deadline.
	DefaultAttachWait = 5 * time.Second
	attachRetryMin    = 10 * time.Millisecond
	attachRetryMax    = 500 * time.Millisecond
)

// lineRetrying sends line, retrying with backoff while the daemon's socket
// is missing or refuses connections, until ctx ends. retried, when not nil,
// is called with the error of each try that will be retried (for tests).
func lineRetrying(ctx context.Context, c *Client, line string, retried func(error)) (int, string, error) {
	delay := attachRetryMin
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
		delay = min(delay*2, attachRetryMax)
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

// Detach undoes an unmanaged Attach: the daemon forgets the entry and does not
// signal this process. It is a no-op for managed processes (the unit is the
// entry) and when nothing is attached.
func Detach() error {
	return DetachContext(context.Background())
}

// DetachContext is Detach with a context.
func DetachContext(ctx context.Context) error {
	current.mu.Lock()
	name, socket, attached := current.name, current.socket, current.attached
	current.attached = false
	current.mu.Unlock()
	if !attached {
		return nil
	}
	code, text, err := (&Client{socket: socket}).Line(ctx, "remove "+name)
	if err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("detach %s: %w", name, &ReplyError{Code: code, Message: strings.TrimSpace(text)})
	}
	return nil
}
