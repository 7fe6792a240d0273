package sdk

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
)

// Environment variables the daemon sets in every managed unit.
const (
	// EnvManaged is "1" in a managed unit: Managed reports it, and Attach
	// then re-attaches the unit's entry.
	EnvManaged = "SOCKETLEY_MANAGED"
	// EnvName is the runtime's name in a managed unit; Attach uses it
	// instead of the name it is given.
	EnvName = "SOCKETLEY_NAME"
	// EnvSocket is the daemon's control socket. Set in a managed unit, and
	// by `eval "$(socketley env)"` in a shell; it takes precedence over
	// the system and user sockets, for Attach and NewClient("") alike.
	EnvSocket = paths.EnvSocket
)

// Runtime types a process attaches as (Attach's typ, the TYPE column of
// ls); the daemon accepts these four, as from the C++ SDK.
const (
	// TypeServer is a process that serves on its port.
	TypeServer = wire.AttachServer
	// TypeClient is a client process.
	TypeClient = wire.AttachClient
	// TypeProxy is a proxy.
	TypeProxy = wire.AttachProxy
	// TypeCache is a cache.
	TypeCache = wire.AttachCache
)

// DefaultAttachWait is how long Attach keeps retrying a daemon that is
// not there yet when its context has no deadline.
const DefaultAttachWait = 5 * time.Second

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
// (TypeServer, TypeClient, TypeProxy, TypeCache) serving port, so that ls
// shows it and the daemon health-checks the port. When SOCKETLEY_NAME is
// set it overrides name; when SOCKETLEY_MANAGED is set (Managed) the attach
// is sent as a managed re-attach of that unit's entry, which the daemon
// accepts only from a process inside socketley-NAME.service; otherwise the
// daemon adds an entry of mode attach for this pid. The daemon is found at
// $SOCKETLEY_SOCKET, else as the package documentation describes. A bad
// name, type or port is refused before connecting, with an error that
// matches ErrInvalid (the daemon's own rules). Other errors wrap
// ErrUnreachable or ErrRefused (a *ReplyError) and say why; a program may
// serve on without being attached.
//
// A daemon that is not there yet (its socket is missing or refuses the
// connection: the daemon is starting, restarting or being upgraded) is
// retried with backoff, 10 ms doubling to 500 ms, until ctx's deadline, or
// for DefaultAttachWait when ctx has none. A reply from the daemon, even a
// refusal, is never retried.
//
// Attach has no process-wide side effect: it installs no signal handler,
// starts no goroutine that outlives it and changes no environment, so a
// program's own SIGTERM handling (signal.NotifyContext, then a graceful
// shutdown) works as written. It only remembers an unmanaged attach, for
// Detach: the program calls Detach itself when it stops serving, typically
// deferred in main or right after its server returns. A program that exits
// without Detach is not harmed: the daemon notices that the attached pid is
// gone. A managed process needs no Detach (the unit is the entry).
func Attach(ctx context.Context, name, typ string, port int) error {
	if env := os.Getenv(EnvName); env != "" {
		name = env
	}
	// The daemon's own rules (type, name, port), checked before connecting;
	// the error is of class invalid (errors.Is(err, ErrInvalid)).
	if err := (&wire.AttachSpec{Type: typ, Name: name, Port: port, PID: os.Getpid()}).Check(); err != nil {
		return err
	}
	managed := Managed()
	line := fmt.Sprintf("attach %s %s %d --pid %d", typ, name, port, os.Getpid())
	if managed {
		line += " --managed"
	}
	c := control.Client{Socket: paths.Socket(os.Getenv(EnvSocket), paths.Auto)}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultAttachWait)
		defer cancel()
	}
	code, text, err := c.LineRetrying(ctx, line, nil)
	if err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("attach %s: %w", name, &ReplyError{Code: code, Message: strings.TrimSpace(text)})
	}
	if !managed {
		current.mu.Lock()
		current.name, current.socket, current.attached = name, c.Socket, true
		current.mu.Unlock()
	}
	return nil
}

// Detach undoes an unmanaged Attach: the daemon forgets the entry and does
// not signal this process. It is a no-op for a managed process (the unit is
// the entry) and when nothing is attached. Without a deadline in ctx it is
// bounded by DefaultTimeout.
func Detach(ctx context.Context) error {
	current.mu.Lock()
	name, socket, attached := current.name, current.socket, current.attached
	current.mu.Unlock()
	if !attached {
		return nil
	}
	c := control.Client{Socket: socket}
	code, text, err := c.Line(ctx, "remove "+name)
	if err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("detach %s: %w", name, &ReplyError{Code: code, Message: strings.TrimSpace(text)})
	}
	// Only a detach the daemon confirmed is done: a failed one may be
	// tried again.
	current.mu.Lock()
	if current.name == name && current.socket == socket {
		current.attached = false
	}
	current.mu.Unlock()
	return nil
}
