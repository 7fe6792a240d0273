package control

import (
	"errors"
	"fmt"

	"github.com/socketley/socketley/internal/wire"
)

// Errors of a request; package sdk re-exports them.
var (
	// ErrUnreachable means the daemon's control socket could not be reached.
	ErrUnreachable = errors.New("socketley daemon unreachable")
	// ErrRefused means the daemon answered and refused the request (reply
	// code 1): bad input, unknown runtime, duplicate name, permission
	// denied, a limit, or a runtime that failed to run.
	ErrRefused = errors.New("refused by the socketley daemon")
	// ErrDaemon means the daemon failed while serving the request (reply
	// code 2): a systemd, D-Bus or I/O error on its side.
	ErrDaemon = errors.New("socketley daemon failed")
)

// ReplyError is the error of a reply with a non-zero code. Its message is
// the daemon's own words; errors.Is matches ErrRefused (code 1) or
// ErrDaemon (2), and the class error of Class (wire.ErrNotFound, …).
type ReplyError struct {
	// Code is the reply code: 1 (refused) or 2 (failed).
	Code int
	// Message is the daemon's words.
	Message string
	// Class is the kind of error, as the daemon classed it; empty for a
	// reply to a C++-format request line.
	Class wire.ErrorClass
}

// Error returns the daemon's words (Message).
func (e *ReplyError) Error() string { return e.Message }

// Is reports whether target is the sentinel for e's code or class.
func (e *ReplyError) Is(target error) bool {
	switch target {
	case ErrRefused:
		return e.Code == int(wire.CodeInvalid)
	case ErrDaemon:
		return e.Code != int(wire.CodeInvalid)
	}
	return e.Class != "" && target == wire.ClassError(e.Class)
}

// UnreachableError says which socket could not be reached and why.
type UnreachableError struct {
	// Socket is the path that was dialed.
	Socket string
	// Err is the dial error.
	Err error
}

// Error says which socket could not be reached, and why.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the socketley daemon at %s: %v", e.Socket, e.Err)
}

// Unwrap returns the dial error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }
