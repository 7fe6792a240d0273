package sdk

import (
	"errors"
	"fmt"

	"github.com/socketley/socketley/internal/wire"
)

// Errors returned by the SDK; test them with errors.Is.
var (
	// ErrUnreachable means the daemon's control socket could not be reached.
	ErrUnreachable = errors.New("socketley daemon unreachable")
	// ErrRefused means the daemon answered and refused the request (reply code 1):
	// bad input, unknown runtime, duplicate name or permission denied.
	ErrRefused = errors.New("refused by the socketley daemon")
	// ErrDaemon means the daemon failed while serving the request (reply code 2):
	// a systemd, D-Bus or I/O error on its side.
	ErrDaemon = errors.New("socketley daemon failed")
)

// The kind of a refusal or failure, as the daemon classed it (the reply's
// class); a *ReplyError matches exactly one of them with errors.Is, besides
// ErrRefused or ErrDaemon. Replies to the C++ line format carry no class.
var (
	// ErrInvalid: bad input (a malformed name, path, flag or request).
	ErrInvalid = wire.ErrInvalid
	// ErrNotFound: an unknown runtime, or a pattern that matches none.
	ErrNotFound = wire.ErrNotFound
	// ErrExists: the name is taken.
	ErrExists = wire.ErrExists
	// ErrDenied: the caller may not do this (another user's runtime).
	ErrDenied = wire.ErrDenied
	// ErrLimit: a limit is reached (runtimes per user).
	ErrLimit = wire.ErrLimit
	// ErrBusy: the runtime is in the middle of another operation (an
	// upgrade); try again once it has finished.
	ErrBusy = wire.ErrBusy
	// ErrFailed: the runtime did not reach "running" (its process exited,
	// or --wait timed out).
	ErrFailed = wire.ErrFailed
	// ErrUnavailable: the daemon cannot reach systemd.
	ErrUnavailable = wire.ErrUnavailable
	// ErrInternal: any other failure of the daemon.
	ErrInternal = wire.ErrInternal
)

// ReplyError is the error for a non-zero reply code. Its message is the
// daemon's own words; errors.Is matches ErrRefused (code 1) or ErrDaemon
// (2), and the sentinel of its Class (ErrNotFound, ErrLimit, …).
type ReplyError struct {
	Code    int
	Message string
	// Class is the daemon's class of the error ("not-found", "limit", …;
	// see the ErrInvalid… sentinels); empty for a C++-format reply.
	Class string
}

func (e *ReplyError) Error() string { return e.Message }

// Is reports whether target is the sentinel for e's code or class.
func (e *ReplyError) Is(target error) bool {
	switch target {
	case ErrRefused:
		return e.Code == int(wire.CodeInvalid)
	case ErrDaemon:
		return e.Code != int(wire.CodeInvalid)
	}
	return e.Class != "" && target == wire.ClassError(wire.ErrorClass(e.Class))
}

// UnreachableError says which socket could not be reached and why.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the socketley daemon at %s: %v", e.Socket, e.Err)
}

// Unwrap returns the dial error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }
