package sdk

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
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
	stopSig  func()
	attached bool
}

// A process attaches as itself, once, like the C++ SDK; this is the one piece
// of process-wide state the SDK keeps, so that Detach can undo Attach.
var current attachState

// Attach reports this process to the daemon as a runtime of type typ
// (server, client, proxy, cache) listening on port. It is AttachContext with a
// background context bounded by DefaultTimeout.
func Attach(name, typ string, port int) error {
	return AttachContext(context.Background(), name, typ, port)
}

// AttachContext reports this process to the daemon. When SOCKETLEY_NAME is
// set it overrides name; when SOCKETLEY_MANAGED is set the attach is sent as
// a managed (re-)attach of that unit. An unmanaged attach is undone by Detach,
// and automatically on SIGINT/SIGTERM (the signal is then re-raised with its
// default action unless the program handles the signal itself). Go cannot run
// code at a normal exit, so a program that attaches unmanaged should also
// `defer sdk.Detach()` in main. Errors wrap ErrUnreachable or ErrRefused and say why.
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
	code, text, err := c.Line(ctx, line)
	if err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("attach %s: %w", name, &ReplyError{Code: code, Message: strings.TrimSpace(text)})
	}
	if !managed {
		current.mu.Lock()
		current.name, current.socket, current.attached = name, c.Socket(), true
		if current.stopSig == nil {
			current.stopSig = detachOnSignal()
		}
		current.mu.Unlock()
	}
	return nil
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

// detachOnSignal detaches on SIGINT/SIGTERM, then re-raises the signal with
// its default disposition so the process still terminates as it would have.
func detachOnSignal() func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			_ = Detach()
			// Stop only our channel: a handler the program installed itself keeps
			// working; without one the default action (terminate) is restored.
			signal.Stop(ch)
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
		case <-done:
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
